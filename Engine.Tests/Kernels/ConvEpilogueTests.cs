// The convolution epilogue (Backend.Conv2dForward's residual and relu: y = conv + bias [+ residual], then ReLU):
// float32 on every backend against a float64 plain-loop reference, for every combination of bias, residual and
// ReLU, on strided, padded, grouped and dilated shapes (the CPU's vectorised direct path on the narrow ones), on one
// deep enough for several depth blocks (and, at batch 1 with few output columns, the CPU engine's split-depth GEMM
// slices), and in float64 (the direct loops). The residual
// is a buffer of its own; the contract rejects one of the wrong length or one that is the output.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Kernels;
using NUnit.Framework;
using static Engine.Tests.ReferenceOps;

namespace Engine.Tests.Kernels;

public sealed class ConvEpilogueTests(string kind) : DeviceFixture(kind)
{
    public static readonly Conv[] Shapes =
    [
        new(2, 3, 7, 7, 5, 3, 3, 2, 2, 1, 1, 1, 1),                                 // strided, padded
        new(2, 4, 6, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, Groups: 2),                      // grouped
        new(1, 4, 7, 9, 2, 2, 3, 1, 2, 0, 1, 3, 2, DilationH: 2, DilationW: 3, Groups: 2), // everything per axis
        new(2, 20, 9, 9, 13, 3, 3, 1, 1, 1, 1, 1, 1),                               // edge tiles, 2 depth blocks
        new(1, 256, 4, 4, 72, 3, 3, 1, 1, 1, 1, 1, 1),                              // batch 1, deep: sliced depth
                                                                                    // (72 > 64 channels: AVX2's GEMM)
    ];

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var shape in Shapes)
        foreach (bool bias in new[] { false, true })
        foreach (bool residual in new[] { false, true })
        foreach (bool relu in new[] { false, true })
            yield return new TestCaseData(shape, bias, residual, relu).SetArgDisplayNames(
                $"{shape.N}x{shape.C}x{shape.H}x{shape.W}→{shape.K} g{shape.Groups}",
                bias ? "bias" : "no bias", residual ? "residual" : "no residual", relu ? "relu" : "no relu");
    }

    private static double[] Expected(Conv g, double[] x, double[] w, double[]? bias, double[]? residual, bool relu)
    {
        var y = ConvForward(g, x, w, bias);
        for (int i = 0; i < y.Length; i++)
        {
            if (residual is not null) y[i] += residual[i];
            if (relu) y[i] = Math.Max(y[i], 0);
        }
        return y;
    }

    private (Tensor<T> X, Tensor<T> W, Tensor<T> B, Tensor<T> R) Inputs<T>(Conv g, int seed)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        (Normal<T>(g.InputShape, seed), Normal<T>(g.WeightShape, seed + 1), Normal<T>([g.K], seed + 2),
            Normal<T>(g.OutputShape, seed + 3));

    private static Tensor<T> Run<T>(Conv g, Tensor<T> x, Tensor<T> w, Tensor<T>? b, Tensor<T>? r, bool relu)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        using (GradMode.NoGrad())
            return x.Conv2dFused(w, b, r, relu, g.StrideH, g.StrideW, g.PadTop, g.PadBottom, g.PadLeft, g.PadRight,
                g.DilationH, g.DilationW, g.Groups);
    }

    [TestCaseSource(nameof(Cases))]
    public void Float32EpilogueMatchesReference(Conv g, bool bias, bool residual, bool relu)
    {
        var (x, w, b, r) = Inputs<float>(g, 11);
        var y = Run(g, x, w, bias ? b : null, residual ? r : null, relu).ToArray();
        var expected = Expected(g, Reference.ToDouble(x.ToArray()), Reference.ToDouble(w.ToArray()),
            bias ? Reference.ToDouble(b.ToArray()) : null, residual ? Reference.ToDouble(r.ToArray()) : null, relu);
        // Absolute rounding grows with the sums' size, about √depth for these N(0, 1) inputs: 1e-5 at depth 27.
        double atol = 1e-5 * Math.Max(1, Math.Sqrt(g.C / g.Groups * g.R * g.S / 27.0));
        Reference.AssertClose(expected, Reference.ToDouble(y), atol, 1e-4, $"conv epilogue {g}");
        if (relu) Assert.That(y, Has.Some.EqualTo(0f).And.Some.GreaterThan(0f), "the ReLU clamps some, keeps others");
        else Assert.That(y, Has.Some.LessThan(0f), "no clamp without the ReLU");
    }

    [TestCaseSource(nameof(Shapes))]
    public void Float64EpilogueMatchesReference(Conv g)
    {
        var (x, w, b, r) = Inputs<double>(g, 21);
        var expected = Expected(g, x.ToArray(), w.ToArray(), b.ToArray(), r.ToArray(), relu: true);
        Reference.AssertClose(expected, Run(g, x, w, b, r, relu: true).ToArray(), 1e-12, 1e-12,
            $"conv epilogue float64 {g}");
    }

    [Test]
    public void ContractRejectsAResidualOfTheWrongLengthOrTheOutputItself()
    {
        var g = new ConvGeometry(1, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1);
        var backend = Device.Backend;
        var x = Normal<float>([1, 2, 4, 4], 1);
        var w = Normal<float>([3, 2, 3, 3], 2);
        var y = Tensor.Zeros<float>([1, 3, 4, 4], Device);
        var shortResidual = Tensor.Zeros<float>([1, 3, 4, 3], Device);
        var error = Assert.Throws<ArgumentException>(() =>
            backend.Conv2dForward(g, x.Buffer, w.Buffer, null, y.Buffer, shortResidual.Buffer, relu: true))!;
        Assert.That(error.Message, Does.StartWith("conv2d forward").And.Contain("'residual'").And.Contain("48"));
        error = Assert.Throws<ArgumentException>(() =>
            backend.Conv2dForward(g, x.Buffer, w.Buffer, null, y.Buffer, y.Buffer, relu: false))!;
        Assert.That(error.Message, Does.StartWith("conv2d forward").And.Contain("residual"));
    }

    [Test]
    public void FusedConvolutionRefusesInputsThatRequireGrad()
    {
        var x = Normal<float>([1, 2, 4, 4], 1);
        var w = Normal<float>([3, 2, 3, 3], 2);
        w.RequiresGrad = true;
        var error = Assert.Throws<InvalidOperationException>(() =>
            x.Conv2dFused(w, null, null, relu: true, 1, 1, 1, 1, 1, 1, 1, 1, 1))!;
        Assert.That(error.Message, Does.Contain("inference only"));
    }
}
