// Max and average pooling over the general geometry (rectangular windows, per-axis strides, asymmetric pads,
// ceil mode with a partial last window, dilation for max pooling, count_include_pad both ways): float32 against a
// float64 plain-loop reference, forward and backward, gradient checks in float64, the divisor rule on hand-worked
// cases, the modules, and the ILGPU kernels on a GPU-shaped CPU accelerator.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Kernels.Ilgpu;
using ILGPU.Runtime.CPU;
using NUnit.Framework;

namespace Engine.Tests.Ops;

/// <summary>One pooling case: input [N, C, H, W] and the window.</summary>
public sealed record Pool(int N, int C, int H, int W, int KH, int KW, int SH, int SW, int PadTop, int PadBottom,
    int PadLeft, int PadRight, int DH = 1, int DW = 1, bool Ceil = false)
{
    public int OH => OutSize(H, KH, SH, PadTop, PadBottom, DH);
    public int OW => OutSize(W, KW, SW, PadLeft, PadRight, DW);
    public int[] InputShape => [N, C, H, W];

    /// <summary>PyTorch's rule: ⌊ or ⌈(in + pads − dilated window) / stride⌉ + 1, and with ceil mode one less when the
    /// last window would start past the input and its padding before.</summary>
    private int OutSize(int input, int k, int s, int before, int after, int d)
    {
        double steps = (double)(input + before + after - (d * (k - 1) + 1)) / s;
        int size = (int)(Ceil ? Math.Ceiling(steps) : Math.Floor(steps)) + 1;
        if (Ceil && (size - 1) * s >= input + before) size--;
        return size;
    }

    public override string ToString() =>
        $"N{N} C{C} {H}x{W} window {KH}x{KW} stride {SH},{SW} pad {PadTop},{PadBottom},{PadLeft},{PadRight} " +
        $"dilation {DH},{DW}{(Ceil ? " ceil" : "")}";

    /// <summary>Calls f(plane, oh, ow, h, w) for every tap of every window, including those in the padding and past
    /// it (h, w may lie outside the input).</summary>
    public void ForEachTap(Action<int, int, int, int, int> f)
    {
        for (int plane = 0; plane < N * C; plane++)
        for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++)
        for (int r = 0; r < KH; r++)
        for (int q = 0; q < KW; q++)
            f(plane, oh, ow, oh * SH - PadTop + r * DH, ow * SW - PadLeft + q * DW);
    }

    public bool Inside(int h, int w) => h >= 0 && h < H && w >= 0 && w < W;

    public int Output(int plane, int oh, int ow) => (plane * OH + oh) * OW + ow;

    public int InputIndex(int plane, int h, int w) => (plane * H + h) * W + w;
}

/// <summary>Plain-loop float64 references for pooling.</summary>
public static class ReferencePooling
{
    /// <summary>Max pooling over the input taps (padding never wins) and the flat input index of each maximum.</summary>
    public static (double[] Y, int[] Argmax) Max(Pool p, double[] x)
    {
        int outputs = p.N * p.C * p.OH * p.OW;
        var y = Enumerable.Repeat(double.NegativeInfinity, outputs).ToArray();
        var argmax = Enumerable.Repeat(-1, outputs).ToArray();
        p.ForEachTap((plane, oh, ow, h, w) =>
        {
            if (!p.Inside(h, w)) return;
            int o = p.Output(plane, oh, ow), i = p.InputIndex(plane, h, w);
            if (x[i] > y[o]) (y[o], argmax[o]) = (x[i], i);
        });
        return (y, argmax);
    }

    /// <summary>Each window's divisor: its taps inside the input, plus with <paramref name="includePad"/> those in
    /// the padding (but not past it).</summary>
    public static double[] Divisors(Pool p, bool includePad)
    {
        var divisor = new double[p.N * p.C * p.OH * p.OW];
        p.ForEachTap((plane, oh, ow, h, w) =>
        {
            bool inPadded = h >= -p.PadTop && h < p.H + p.PadBottom && w >= -p.PadLeft && w < p.W + p.PadRight;
            if (includePad ? inPadded : p.Inside(h, w)) divisor[p.Output(plane, oh, ow)]++;
        });
        return divisor;
    }

    public static double[] Average(Pool p, bool includePad, double[] x)
    {
        var divisor = Divisors(p, includePad);
        var y = new double[divisor.Length];
        p.ForEachTap((plane, oh, ow, h, w) =>
        {
            if (p.Inside(h, w)) y[p.Output(plane, oh, ow)] += x[p.InputIndex(plane, h, w)];
        });
        return y.Select((sum, o) => sum / divisor[o]).ToArray();
    }

    public static double[] AverageBackward(Pool p, bool includePad, double[] dy)
    {
        var divisor = Divisors(p, includePad);
        var dx = new double[p.N * p.C * p.H * p.W];
        p.ForEachTap((plane, oh, ow, h, w) =>
        {
            int o = p.Output(plane, oh, ow);
            if (p.Inside(h, w)) dx[p.InputIndex(plane, h, w)] += dy[o] / divisor[o];
        });
        return dx;
    }
}

public sealed class PoolingTests(string kind) : DeviceFixture(kind)
{
    /// <summary>Max-pool cases: ResNet's stem, rectangular windows and strides, asymmetric pads, ceil mode with a
    /// partial last window and with the dropped window, dilation 2, and pads over half the window (ONNX allows any
    /// that leave every window an input element).</summary>
    public static IEnumerable<Pool> MaxCases() =>
    [
        new(2, 3, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1),
        new(1, 2, 7, 6, 2, 3, 1, 2, 0, 1, 1, 0),
        new(2, 2, 6, 7, 3, 2, 2, 3, 1, 0, 0, 1, Ceil: true),
        new(1, 1, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, Ceil: true),
        new(2, 1, 5, 4, 1, 1, 2, 2, 0, 0, 0, 0, Ceil: true),
        new(1, 2, 7, 7, 3, 3, 1, 1, 2, 2, 2, 2, DH: 2, DW: 2),
        new(1, 3, 8, 9, 2, 3, 2, 2, 1, 0, 1, 1, DH: 2, DW: 1, Ceil: true),
        new(1, 3, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2),
        new(2, 2, 4, 6, 3, 4, 2, 3, 2, 2, 3, 1, Ceil: true),
        new(1, 2, 6, 6, 2, 2, 1, 2, 2, 2, 1, 2, DH: 2, DW: 2),
    ];

    /// <summary>Average-pool cases (no dilation), each run with count_include_pad on and off: a window that ends in
    /// the bottom padding and past it, asymmetric pads, the dropped ceil window, windows wider than the stride, pads
    /// over half the window.</summary>
    public static IEnumerable<TestCaseData> AverageCases() =>
        new Pool[]
        {
            new(2, 3, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1),
            new(1, 2, 7, 6, 2, 3, 1, 2, 0, 1, 1, 0),
            new(2, 2, 6, 7, 3, 2, 2, 3, 1, 0, 0, 1, Ceil: true),
            new(1, 2, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1, Ceil: true),
            new(1, 1, 5, 5, 2, 2, 2, 2, 1, 1, 1, 1, Ceil: true),
            new(2, 2, 4, 5, 4, 4, 3, 3, 2, 2, 2, 2),
            new(1, 3, 6, 6, 2, 2, 2, 2, 0, 0, 0, 0),
            new(1, 3, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2),
            new(2, 2, 4, 6, 3, 4, 2, 3, 2, 2, 3, 1, Ceil: true),
        }.SelectMany(p => new[] { new TestCaseData(p, true), new TestCaseData(p, false) });

    [TestCaseSource(nameof(MaxCases))]
    public void MaxPoolMatchesReferenceAndPassesGradientCheck(Pool p)
    {
        var x = Normal<float>(p.InputShape, 21);
        var (expected, argmax) = ReferencePooling.Max(p, Reference.ToDouble(x.ToArray()));
        x.RequiresGrad = true;
        var y = MaxPool(x, p);
        Assert.That(y.Shape, Is.EqualTo(new Shape(p.N, p.C, p.OH, p.OW)));
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 0, 0, "max-pool");
        var dy = Normal<float>(y.Shape, 22);
        y.Backward(dy);
        var dx = new double[x.Length];
        var dys = dy.ToArray();
        for (int o = 0; o < argmax.Length; o++) dx[argmax[o]] += dys[o];
        Reference.AssertClose(dx, Reference.ToDouble(x.Grad!.ToArray()), 1e-6, 1e-6, "max-pool backward");

        var xd = Variable(p.InputShape, 23);
        GradCheck.Run(() => MaxPool(xd, p), [xd]).EnsurePassed();
    }

    [TestCaseSource(nameof(AverageCases))]
    public void AvgPoolMatchesReferenceAndPassesGradientCheck(Pool p, bool includePad)
    {
        var x = Normal<float>(p.InputShape, 31);
        var expected = ReferencePooling.Average(p, includePad, Reference.ToDouble(x.ToArray()));
        x.RequiresGrad = true;
        var y = AvgPool(x, p, includePad);
        Assert.That(y.Shape, Is.EqualTo(new Shape(p.N, p.C, p.OH, p.OW)));
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-6, 1e-5, "avg-pool");
        var dy = Normal<float>(y.Shape, 32);
        y.Backward(dy);
        Reference.AssertClose(ReferencePooling.AverageBackward(p, includePad, Reference.ToDouble(dy.ToArray())),
            Reference.ToDouble(x.Grad!.ToArray()), 1e-6, 1e-5, "avg-pool backward");

        var xd = Variable(p.InputShape, 33);
        GradCheck.Run(() => AvgPool(xd, p, includePad), [xd]).EnsurePassed();
    }

    [Test]
    public void AvgPoolDivisorCountsPaddingOnlyWhenAsked()
    {
        // Ones [3, 3], window 2, stride 2, pad 1: the four windows hold 1, 2, 2 and 4 input cells.
        var x = Tensor.Ones<float>([1, 1, 3, 3], Device);
        Assert.That(x.AvgPool2d(2, 2, 1).ToArray(), Is.EqualTo(new[] { 0.25f, 0.5f, 0.5f, 1f }));
        Assert.That(x.AvgPool2d(2, 2, 1, countIncludePad: false).ToArray(), Is.EqualTo(new[] { 1f, 1f, 1f, 1f }));
    }

    [Test]
    public void AvgPoolCeilWindowDividesByItsPaddedCellsOnly()
    {
        // Ones [6, 6], window 3, stride 2, pad 1, ceil: 4x4 outputs; the last window covers row 5 (input), row 6
        // (bottom padding) and row 7 (past the padded input), so PyTorch divides by 2 per axis, not 3.
        var x = Tensor.Ones<float>([1, 1, 6, 6], Device);
        var y = x.AvgPool2d(3, 2, 1, ceilMode: true).ToArray();
        Assert.That(y, Has.Length.EqualTo(16));
        Assert.That(y[15], Is.EqualTo(0.25f), "1 input cell / (2·2)");
        Assert.That(y[0], Is.EqualTo(4f / 9f).Within(1e-7), "4 input cells / (3·3)");
        Assert.That(x.AvgPool2d(3, 2, 1, ceilMode: true, countIncludePad: false).ToArray(), Is.All.EqualTo(1f));
    }

    [Test]
    public void AvgPoolMatchesPublishedPyTorchAndOnnxAnswersInCeilMode()
    {
        // torch.nn.AvgPool1d(7, 3, 3, ceil_mode=True, count_include_pad=True) on two rows of 9, as printed in
        // onnx/onnx#5276: the last window holds 3 inputs and 3 padding cells, and divides by 6.
        float[] rows =
        [
            2.0903f, 4.6493f, 1.6320f, -3.2051f, 4.6975f, 4.7296f, 3.3653f, -1.5815f, -2.3832f,
            0.9628f, -1.5899f, -2.6820f, 5.7529f, 7.7346f, -0.8910f, -2.0151f, 0.1313f, -0.5374f,
        ];
        var x = Tensor.FromArray(rows, [1, 2, 1, 9], Device);
        var y = x.AvgPool2d(1, 7, 1, 3, 0, 0, 3, 3, ceilMode: true).ToArray();
        Reference.AssertClose([0.7381, 2.5656, 0.8032, -0.0999, 0.3491, 1.0389, 1.4536, -0.4035],
            Reference.ToDouble(y), 1e-4, 0, "PyTorch's printed answer");
        // ONNX AveragePool (onnx.reference and onnxruntime) on [1, 2, 3, 4, 5], kernel 2, stride 2, ceil mode,
        // count_include_pad = 1: the last window covers only 5 and divides by 1.
        var ramp = Tensor.FromArray([1f, 2f, 3f, 4f, 5f], [1, 1, 1, 5], Device);
        Assert.That(ramp.AvgPool2d(1, 2, 1, 2, 0, 0, 0, 0, ceilMode: true).ToArray(),
            Is.EqualTo(new[] { 1.5f, 3.5f, 5f }));
    }

    [Test]
    public void SquareOverloadsBuildTheGeneralGeometry()
    {
        var x = Normal<double>([2, 3, 9, 8], 41);
        Assert.That(x.MaxPool2d(3, 2, 1).ToArray(), Is.EqualTo(x.MaxPool2d(3, 3, 2, 2, 1, 1, 1, 1).ToArray()));
        Assert.That(x.AvgPool2d(3, 2, 1, ceilMode: true).ToArray(),
            Is.EqualTo(x.AvgPool2d(3, 3, 2, 2, 1, 1, 1, 1, ceilMode: true).ToArray()));
    }

    [Test]
    public void ModulesExposeTheirWindowAndPoolWithIt()
    {
        var max = new MaxPool2d<double>(3, 2, 2, 1, 1, 0, 1, 1, dilationHeight: 2, ceilMode: true);
        Assert.That((max.KernelHeight, max.KernelWidth, max.StrideHeight, max.StrideWidth), Is.EqualTo((3, 2, 2, 1)));
        Assert.That((max.PadTop, max.PadBottom, max.PadLeft, max.PadRight), Is.EqualTo((1, 0, 1, 1)));
        Assert.That((max.DilationHeight, max.DilationWidth, max.CeilMode), Is.EqualTo((2, 1, true)));
        var avg = new AvgPool2d<double>(2, 3, 1, 2, 0, 1, 1, 0, ceilMode: true, countIncludePad: false);
        Assert.That((avg.KernelHeight, avg.KernelWidth, avg.StrideHeight, avg.StrideWidth), Is.EqualTo((2, 3, 1, 2)));
        Assert.That((avg.PadTop, avg.PadBottom, avg.PadLeft, avg.PadRight), Is.EqualTo((0, 1, 1, 0)));
        Assert.That((avg.DilationHeight, avg.DilationWidth, avg.CeilMode, avg.CountIncludePad),
            Is.EqualTo((1, 1, true, false)));

        var x = Normal<double>([1, 2, 7, 6], 42);
        Assert.That(max.Forward(x).ToArray(), Is.EqualTo(x.MaxPool2d(3, 2, 2, 1, 1, 0, 1, 1, 2, 1, true).ToArray()));
        Assert.That(avg.Forward(x).ToArray(),
            Is.EqualTo(x.AvgPool2d(2, 3, 1, 2, 0, 1, 1, 0, ceilMode: true, countIncludePad: false).ToArray()));
        var stem = new MaxPool2d<double>(3, 2, 1);
        Assert.That((stem.KernelHeight, stem.KernelWidth, stem.StrideHeight, stem.StrideWidth, stem.PadTop,
            stem.PadRight, stem.DilationHeight, stem.CeilMode), Is.EqualTo((3, 3, 2, 2, 1, 1, 1, false)));
    }

    internal static Tensor<T> MaxPool<T>(Tensor<T> x, Pool p) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        x.MaxPool2d(p.KH, p.KW, p.SH, p.SW, p.PadTop, p.PadBottom, p.PadLeft, p.PadRight, p.DH, p.DW, p.Ceil);

    internal static Tensor<T> AvgPool<T>(Tensor<T> x, Pool p, bool includePad)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        x.AvgPool2d(p.KH, p.KW, p.SH, p.SW, p.PadTop, p.PadBottom, p.PadLeft, p.PadRight, p.Ceil, includePad);
}

/// <summary>The pooling kernels on a CPU accelerator shaped like a GPU (256 threads per group, see
/// GpuShapedGroupTests), against the float64 reference: rows narrower than a group, and rows wider than the largest
/// group, whose threads step along the row (the backward's covering windows then advance by a step that leaves a
/// remainder modulo the stride).</summary>
[NonParallelizable]
public sealed class PoolingGpuShapedTests
{
    private Device? _device;
    private TensorScope? _scope;

    [OneTimeSetUp]
    public void CreateDevice() =>
        _device = Device.FromBackend(IlgpuBackend.Create(IlgpuKind.Cpu, new CPUDevice(32, 8, 1)));

    [OneTimeTearDown]
    public void DisposeDevice() => _device?.Dispose();

    [SetUp]
    public void OpenScope() => _scope = TensorScope.Begin();

    [TearDown]
    public void CloseScope() => _scope?.Dispose();

    [Test]
    public void MaxAndAveragePoolAgreeWithTheReference()
    {
        // 540 outputs (more than one group of 256) from 10 planes of 7x8; a dilated case with 2 groups' worth; rows
        // of 600 and 900 inputs (stride 1: 600 outputs; stride 3: 300) for groups of 256, plain and dilated.
        foreach (var p in new Pool[]
                 {
                     new(5, 2, 7, 8, 3, 2, 1, 1, 1, 0, 1, 1, Ceil: true),
                     new(1, 3, 8, 9, 2, 3, 2, 2, 1, 0, 1, 1, DH: 2, DW: 1, Ceil: true),
                     new(1, 2, 3, 600, 2, 3, 1, 1, 1, 0, 1, 1),
                     new(1, 2, 4, 900, 3, 5, 2, 3, 1, 1, 2, 1, Ceil: true),
                     new(1, 2, 5, 900, 2, 3, 1, 3, 1, 0, 2, 1, DH: 2, DW: 2, Ceil: true),
                 })
        {
            var x = Tensor.RandomNormal<double>(p.InputShape, 51, device: _device);
            var xs = x.ToArray();
            x.RequiresGrad = true;
            var (expected, argmax) = ReferencePooling.Max(p, xs);
            var y = PoolingTests.MaxPool(x, p);
            Reference.AssertClose(expected, y.ToArray(), 0, 0, $"max-pool {p}");
            var dy = Tensor.RandomNormal<double>(y.Shape, 52, device: _device);
            y.Backward(dy);
            var dx = new double[xs.Length];
            var dys = dy.ToArray();
            for (int o = 0; o < argmax.Length; o++) dx[argmax[o]] += dys[o];
            Reference.AssertClose(dx, x.Grad!.ToArray(), 1e-12, 1e-12, $"max-pool backward {p}");

            if (p.DH != 1) continue;
            var x2 = Tensor.FromArray(xs, p.InputShape, _device);
            x2.RequiresGrad = true;
            var average = PoolingTests.AvgPool(x2, p, includePad: true);
            Reference.AssertClose(ReferencePooling.Average(p, true, xs), average.ToArray(), 1e-12, 1e-12,
                $"avg-pool {p}");
            average.Backward(dy);
            Reference.AssertClose(ReferencePooling.AverageBackward(p, true, dys), x2.Grad!.ToArray(), 1e-12, 1e-12,
                $"avg-pool backward {p}");
        }
    }
}
