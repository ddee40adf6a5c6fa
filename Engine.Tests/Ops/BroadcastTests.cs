// NumPy broadcasting: Add and Multiply over many shape pairs (scalar, per-channel, row against column, different
// ranks, six axes), BroadcastTo and SumTo, in float32 and float64 against a plain-loop float64 reference on random
// non-zero data; every backward by the float64 gradient check; equal shapes keep their single elementwise launch;
// incompatible shapes are rejected naming both. The strided kernels also run on a GPU-shaped CPU accelerator.
using System.Numerics;
using Engine.Core;
using Engine.Kernels;
using Engine.Kernels.Ilgpu;
using ILGPU.Runtime.CPU;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class BroadcastTests(string kind) : DeviceFixture(kind)
{
    public static readonly int[][][] ShapePairs =
    [
        [[], [2, 3]],
        [[3, 1, 1], [2, 3, 4, 5]],
        [[1, 4], [3, 1]],
        [[5], [2, 3, 5]],
        [[2, 1, 4], [3, 1]],
        [[1], [4, 1, 3]],
        [[2, 3, 4], [2, 1, 4]],
        [[2, 1, 3, 1, 2, 1], [3, 4, 1, 1]],
        [[7, 1], [1, 9]],
    ];

    public static IEnumerable<TestCaseData> Pairs() => ShapePairs.Select(pair =>
        new TestCaseData(pair[0], pair[1]).SetArgDisplayNames($"{new Shape(pair[0])} {new Shape(pair[1])}"));

    private static Tensor<T> Apply<T>(string op, Tensor<T> a, Tensor<T> b)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        op switch { "add" => a + b, "multiply" => a * b, _ => a - b };

    private static double Expected(string op, double a, double b) =>
        op switch { "add" => a + b, "multiply" => a * b, _ => a - b };

    [Test]
    public void Float32AndFloat64MatchTheReference([Values("add", "multiply", "subtract")] string op)
    {
        foreach (var pair in ShapePairs)
            foreach (var (first, second) in new[] { (pair[0], pair[1]), (pair[1], pair[0]) })
            {
                var shape = BroadcastReference.Shape(first, second);
                string what = $"{op} {new Shape(first)} {new Shape(second)}";
                var a = Normal<float>(first, 1);
                var b = Normal<float>(second, 2);
                var y = Apply(op, a, b);
                Assert.That(y.Shape, Is.EqualTo(new Shape(shape)), what);
                var expected = BroadcastReference.Zip(Reference.ToDouble(a.ToArray()), first,
                    Reference.ToDouble(b.ToArray()), second, (u, v) => Expected(op, u, v));
                Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-6, 1e-6, what + " float32");

                var a64 = Normal<double>(first, 3);
                var b64 = Normal<double>(second, 4);
                var expected64 = BroadcastReference.Zip(a64.ToArray(), first, b64.ToArray(), second,
                    (u, v) => Expected(op, u, v));
                Reference.AssertClose(expected64, Apply(op, a64, b64).ToArray(), 1e-15, 1e-15, what + " float64");
            }
    }

    [TestCaseSource(nameof(Pairs))]
    public void AddAndMultiplyPassGradientCheck(int[] first, int[] second)
    {
        var a = Variable(first, 5);
        var b = Variable(second, 6);
        GradCheck.Run(() => a + b, [a, b]).EnsurePassed();
        GradCheck.Run(() => a * b, [a, b]).EnsurePassed();
        GradCheck.Run(() => b * a - a, [a, b]).EnsurePassed();
    }

    [TestCaseSource(nameof(Pairs))]
    public void BroadcastToAndSumToMatchTheReference(int[] first, int[] second)
    {
        var target = BroadcastReference.Shape(first, second);
        var x = Normal<float>(first, 7);
        var expanded = x.BroadcastTo(target);
        var expected = BroadcastReference.Expand(Reference.ToDouble(x.ToArray()), first, target);
        Assert.That(expanded.ToArray(), Is.EqualTo(Reference.ToFloat(expected)), "broadcast is an exact copy");

        var big = Normal<double>(target, 8);
        var summed = big.SumTo(first);
        Assert.That(summed.Shape, Is.EqualTo(new Shape(first)));
        Reference.AssertClose(BroadcastReference.SumTo(big.ToArray(), target, first), summed.ToArray(), 1e-13, 1e-13,
            "sum to");
        var big32 = Normal<float>(target, 9);
        Reference.AssertClose(BroadcastReference.SumTo(Reference.ToDouble(big32.ToArray()), target, first),
            Reference.ToDouble(big32.SumTo(first).ToArray()), 1e-5, 1e-5, "sum to float32");
    }

    [Test]
    public void BroadcastToAndSumToPassGradientCheck()
    {
        var x = Variable([3, 1, 2], 10);
        GradCheck.Run(() => x.BroadcastTo([2, 3, 4, 2]), [x]).EnsurePassed();
        var y = Variable([2, 3, 4, 2], 11);
        GradCheck.Run(() => y.SumTo([3, 1, 2]), [y]).EnsurePassed();
        GradCheck.Run(() => y.SumTo([]), [y]).EnsurePassed();
    }

    [Test]
    public void SumToGivesTheSameBitsEveryRun()
    {
        var x = Normal<float>([64, 3, 33], 12);
        var first = x.SumTo([3, 1]).ToArray();
        for (int run = 0; run < 3; run++)
            Assert.That(x.SumTo([3, 1]).ToArray(), Is.EqualTo(first));
    }

    [Test]
    public void EqualShapesKeepOneElementwiseLaunchAndBroadcastingUsesTheStridedOps()
    {
        var ops = new List<string>();
        var observer = new OpRecorder(ops);
        var a = Normal<float>([2, 3], 1);
        var b = Normal<float>([2, 3], 2);
        var row = Normal<float>([3], 3);
        a.RequiresGrad = b.RequiresGrad = row.RequiresGrad = true;
        Device.Backend.Observer = observer;
        try
        {
            (a + b).Sum().Backward();
            (a * b).Sum().Backward();
            Assert.That(ops, Has.None.StartsWith("Strided"), string.Join(", ", ops));
            ops.Clear();
            _ = a + b;
            _ = a * b;
            Assert.That(ops, Is.EqualTo(new[] { "Add", "Multiply" }));
            ops.Clear();
            (a + row).Sum().Backward();
            Assert.That(ops, Does.Contain("StridedZip").And.Contain("StridedSum"));
        }
        finally
        {
            Device.Backend.Observer = null;
        }
    }

    [Test]
    public void EmptyShapesBroadcast()
    {
        var a = Tensor.Zeros<float>([0, 3], Device);
        var b = Normal<float>([1, 3], 1);
        Assert.That((a + b).Shape, Is.EqualTo(new Shape(0, 3)));
        var c = Tensor.Zeros<double>([2, 0, 3], Device);
        c.RequiresGrad = true;
        var d = Variable([3], 2);
        (c * d).Sum().Backward();
        Assert.That(d.Grad!.ToArray(), Is.EqualTo(new double[3]), "a sum over nothing is 0");
    }

    [Test]
    public void IncompatibleShapesAreRejectedNamingBoth()
    {
        var a = Normal<float>([2, 3], 1);
        var b = Normal<float>([4, 1, 2], 2);
        var error = Assert.Throws<ArgumentException>(() => _ = a + b)!;
        Assert.That(error.Message, Does.StartWith("add").And.Contain("[2, 3]").And.Contain("[4, 1, 2]"));
        error = Assert.Throws<ArgumentException>(() => _ = a * Normal<float>([2], 3))!;
        Assert.That(error.Message, Does.StartWith("multiply").And.Contain("[2, 3]").And.Contain("[2]"));
        error = Assert.Throws<ArgumentException>(() => a.BroadcastTo([3, 3]))!;
        Assert.That(error.Message, Does.Contain("[2, 3]").And.Contain("[3, 3]"));
        Assert.Throws<ArgumentException>(() => Normal<float>([2, 3, 4], 4).BroadcastTo([3, 4]));
        Assert.Throws<ArgumentException>(() => a.SumTo([2, 3, 1]));
        error = Assert.Throws<ArgumentException>(() => _ = Normal<float>([1, 1, 1, 1, 1, 1, 2], 5) + a)!;
        Assert.That(error.Message, Does.Contain("at most 6"));
    }

    private sealed class OpRecorder(List<string> ops) : IBackendObserver
    {
        public void OnOpStarting(string op) => ops.Add(op);
    }
}

/// <summary>The strided kernels on a CPU accelerator shaped like a GPU (256-thread groups) against the default
/// ILGPU CPU accelerator (GpuShapedGroupTests' pattern), at small sizes.</summary>
[NonParallelizable]
public sealed class StridedGpuShapedTests
{
    [Test]
    public void BroadcastPermuteAndGemmAgreeWithTheDefaultAccelerator()
    {
        using var gpuShaped = Device.FromBackend(IlgpuBackend.Create(IlgpuKind.Cpu, new CPUDevice(32, 8, 1)));
        using var plain = Device.Create("ilgpu-cpu");
        using var scope = TensorScope.Begin();
        double[] Run(Device device)
        {
            var a = Tensor.RandomNormal<double>([3, 1, 5], 1, device: device);
            var b = Tensor.RandomNormal<double>([4, 1], 2, device: device);
            var c = Tensor.RandomNormal<double>([4], 3, device: device);
            a.RequiresGrad = b.RequiresGrad = c.RequiresGrad = true;
            var w = Tensor.RandomNormal<double>([4, 12], 4, device: device);
            var y = (a * b + a).Permute(2, 0, 1).Flatten(1);            // [5, 12]
            var z = Tensor<double>.Gemm(y, w, c, 0.5, 2, transposeB: true).SumTo([1, 4]);
            z.Sum().Backward();
            return [.. z.ToArray(), .. a.Grad!.ToArray(), .. b.Grad!.ToArray(), .. c.Grad!.ToArray()];
        }
        Reference.AssertClose(Run(plain), Run(gpuShaped), 1e-12, 1e-12, "gpu-shaped against default");
    }
}

/// <summary>Plain-loop float64 references for broadcasting (row-major, shapes aligned from the right).</summary>
public static class BroadcastReference
{
    public static int[] Shape(int[] a, int[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var shape = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int da = Dim(a, d, rank), db = Dim(b, d, rank);
            shape[d] = da == 1 ? db : da;
        }
        return shape;
    }

    /// <summary>The flat index into a tensor of <paramref name="source"/> that output element
    /// <paramref name="index"/> of <paramref name="target"/> reads.</summary>
    public static int SourceIndex(int index, int[] target, int[] source)
    {
        int result = 0, scale = 1;
        for (int d = target.Length - 1; d >= 0; d--)
        {
            int coordinate = index % target[d];
            index /= target[d];
            int axis = d - (target.Length - source.Length);
            if (axis < 0) continue;
            if (source[axis] != 1) result += coordinate * scale;
            scale *= source[axis];
        }
        return result;
    }

    public static double[] Zip(double[] a, int[] aShape, double[] b, int[] bShape, Func<double, double, double> f)
    {
        var shape = Shape(aShape, bShape);
        var y = new double[shape.Aggregate(1, (p, d) => p * d)];
        for (int i = 0; i < y.Length; i++)
            y[i] = f(a[SourceIndex(i, shape, aShape)], b[SourceIndex(i, shape, bShape)]);
        return y;
    }

    public static double[] Expand(double[] x, int[] source, int[] target)
    {
        var y = new double[target.Aggregate(1, (p, d) => p * d)];
        for (int i = 0; i < y.Length; i++) y[i] = x[SourceIndex(i, target, source)];
        return y;
    }

    public static double[] SumTo(double[] x, int[] source, int[] target)
    {
        var y = new double[target.Aggregate(1, (p, d) => p * d)];
        for (int i = 0; i < x.Length; i++) y[SourceIndex(i, source, target)] += x[i];
        return y;
    }

    private static int Dim(int[] shape, int d, int rank)
    {
        int axis = d - (rank - shape.Length);
        return axis < 0 ? 1 : shape[axis];
    }
}
