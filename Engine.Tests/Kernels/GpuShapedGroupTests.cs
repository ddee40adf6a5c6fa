// The ILGPU kernels size their groups from the device: up to 16x16 threads (128x128 GEMM tiles) and 256-thread
// per-channel reductions on a GPU, tiny groups on the default CPU accelerator. This fixture runs the shared-memory
// kernels on a CPU accelerator shaped like a GPU (256 threads per group) so the GPU tiling itself — tile edges,
// staging loops, the reduction tree — is checked in CI against the default device's results. Sizes stay tiny:
// every barrier wakes 256 simulated threads.
using Engine.Core;
using Engine.Kernels.Ilgpu;
using ILGPU.Runtime.CPU;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

[NonParallelizable]
public sealed class GpuShapedGroupTests
{
    private Device? _gpuShaped, _default;
    private TensorScope? _scope;

    [OneTimeSetUp]
    public void CreateDevices()
    {
        var backend = IlgpuBackend.Create(IlgpuKind.Cpu, new CPUDevice(32, 8, 1));
        Assert.That(backend.MaxGroupSize, Is.EqualTo(256));
        _gpuShaped = Device.FromBackend(backend);
        _default = Device.Create("ilgpu-cpu");
    }

    [OneTimeTearDown]
    public void DisposeDevices()
    {
        _gpuShaped?.Dispose();
        _default?.Dispose();
    }

    [SetUp]
    public void OpenScope() => _scope = TensorScope.Begin();

    [TearDown]
    public void CloseScope() => _scope?.Dispose();

    private (Tensor<double> OnGpuShaped, Tensor<double> OnDefault) Pair(Shape shape, int seed) =>
        (Tensor.RandomNormal<double>(shape, seed, device: _gpuShaped), Tensor.RandomNormal<double>(shape, seed, device: _default));

    [Test]
    public void ConvolutionForwardAndBackwardAgree()
    {
        // 70 output pixels and 9 output channels: a 128 × 16 tile, ragged on both sides.
        var (x1, x2) = Pair([2, 5, 7, 5], 1);
        var (w1, w2) = Pair([9, 5, 3, 3], 2);
        var (b1, b2) = Pair([9], 3);
        foreach (var t in new[] { x1, x2, w1, w2, b1, b2 }) t.RequiresGrad = true;
        var y1 = x1.Conv2d(w1, b1, stride: 1, padding: 1);
        var y2 = x2.Conv2d(w2, b2, stride: 1, padding: 1);
        Reference.AssertClose(y2.ToArray(), y1.ToArray(), 1e-12, 1e-12, "forward");
        y1.Sum().Backward();
        y2.Sum().Backward();
        Reference.AssertClose(x2.Grad!.ToArray(), x1.Grad!.ToArray(), 1e-12, 1e-12, "dx");
        Reference.AssertClose(w2.Grad!.ToArray(), w1.Grad!.ToArray(), 1e-12, 1e-12, "dw");
        Reference.AssertClose(b2.Grad!.ToArray(), b1.Grad!.ToArray(), 1e-12, 1e-12, "dbias");
    }

    [Test]
    public void DilatedGroupedConvolutionForwardAndBackwardAgree()
    {
        // 2 groups of 3 filters over 70 output pixels (a ragged second tile per group), taps 2 rows and 3 columns
        // apart, stride 2 along the width.
        var (x1, x2) = Pair([2, 4, 7, 9], 11);
        var (w1, w2) = Pair([6, 2, 3, 3], 12);
        var (b1, b2) = Pair([6], 13);
        foreach (var t in new[] { x1, x2, w1, w2, b1, b2 }) t.RequiresGrad = true;
        var y1 = x1.Conv2d(w1, b1, 1, 2, 2, 2, 3, 3, 2, 3, 2);
        var y2 = x2.Conv2d(w2, b2, 1, 2, 2, 2, 3, 3, 2, 3, 2);
        Assert.That(y1.Shape, Is.EqualTo(new Shape(2, 6, 7, 5)));
        Reference.AssertClose(y2.ToArray(), y1.ToArray(), 1e-12, 1e-12, "forward");
        (y1 * y1).Sum().Backward();
        (y2 * y2).Sum().Backward();
        Reference.AssertClose(x2.Grad!.ToArray(), x1.Grad!.ToArray(), 1e-12, 1e-12, "dx");
        Reference.AssertClose(w2.Grad!.ToArray(), w1.Grad!.ToArray(), 1e-12, 1e-12, "dw");
        Reference.AssertClose(b2.Grad!.ToArray(), b1.Grad!.ToArray(), 1e-12, 1e-12, "dbias");
    }

    [Test]
    public void BatchNormTrainingAndBackwardAgree()
    {
        var (x1, x2) = Pair([3, 4, 5, 5], 4);
        var (g1, g2) = Pair([4], 5);
        var (b1, b2) = Pair([4], 6);
        var (m1, m2) = Pair([4], 7);
        var (v1, v2) = (Tensor.Ones<double>([4], _gpuShaped), Tensor.Ones<double>([4], _default));
        foreach (var t in new[] { x1, x2, g1, g2 }) t.RequiresGrad = true;
        var y1 = x1.BatchNorm(g1, b1, m1, v1, training: true);
        var y2 = x2.BatchNorm(g2, b2, m2, v2, training: true);
        Reference.AssertClose(y2.ToArray(), y1.ToArray(), 1e-12, 1e-12, "forward");
        Reference.AssertClose(v2.ToArray(), v1.ToArray(), 1e-12, 1e-12, "running variance");
        (y1 * y1).Sum().Backward();
        (y2 * y2).Sum().Backward();
        Reference.AssertClose(x2.Grad!.ToArray(), x1.Grad!.ToArray(), 1e-12, 1e-12, "dx");
        Reference.AssertClose(g2.Grad!.ToArray(), g1.Grad!.ToArray(), 1e-12, 1e-12, "dgamma");
    }

    [TestCase(4, 2, 32, 32)] // quads: 1,024 per channel, 4 ranges of 256 on the GPU-shaped device
    [TestCase(3, 2, 15, 15)] // scalars: 675 per channel, 3 ranges
    public void FusedBatchNormAddReluSplitOverRangesAgrees(int n, int c, int h, int w)
    {
        var (x1, x2) = Pair([n, c, h, w], 21);
        var (r1, r2) = Pair([n, c, h, w], 22);
        var (g1, g2) = Pair([c], 23);
        var (b1, b2) = Pair([c], 24);
        var (m1, m2) = Pair([c], 25);
        var (v1, v2) = (Tensor.Ones<double>([c], _gpuShaped), Tensor.Ones<double>([c], _default));
        foreach (var t in new[] { x1, x2, r1, r2, g1, g2, b1, b2 }) t.RequiresGrad = true;
        var y1 = x1.BatchNorm(g1, b1, m1, v1, training: true, relu: true, residual: r1);
        var y2 = x2.BatchNorm(g2, b2, m2, v2, training: true, relu: true, residual: r2);
        Reference.AssertClose(y2.ToArray(), y1.ToArray(), 1e-12, 1e-12, "forward");
        Reference.AssertClose(m2.ToArray(), m1.ToArray(), 1e-12, 1e-12, "running mean");
        Reference.AssertClose(v2.ToArray(), v1.ToArray(), 1e-12, 1e-12, "running variance");
        (y1 * y1).Sum().Backward();
        (y2 * y2).Sum().Backward();
        Reference.AssertClose(x2.Grad!.ToArray(), x1.Grad!.ToArray(), 1e-11, 1e-11, "dx");
        Reference.AssertClose(r2.Grad!.ToArray(), r1.Grad!.ToArray(), 1e-12, 1e-12, "d(residual)");
        Reference.AssertClose(g2.Grad!.ToArray(), g1.Grad!.ToArray(), 1e-11, 1e-11, "dgamma");
        Reference.AssertClose(b2.Grad!.ToArray(), b1.Grad!.ToArray(), 1e-11, 1e-11, "dbeta");
    }

    [Test]
    public void ShortcutRowGroupsAgree()
    {
        // Rows of 5 (odd width, ragged last column pair), 8 lanes each, 32 rows per group (the backward's last group
        // partly past the rows); 3 → 8 channels, stride 2.
        var (x1, x2) = Pair([2, 3, 7, 9], 31);
        x1.RequiresGrad = x2.RequiresGrad = true;
        var y1 = x1.ZeroPadShortcut(8, 2);
        var y2 = x2.ZeroPadShortcut(8, 2);
        Assert.That(y1.ToArray(), Is.EqualTo(y2.ToArray()), "forward");
        (y1 * y1).Sum().Backward();
        (y2 * y2).Sum().Backward();
        Assert.That(x1.Grad!.ToArray(), Is.EqualTo(x2.Grad!.ToArray()), "backward");
    }

    [Test]
    public void SplitKWeightGradientAgrees()
    {
        // 16 images of 16x16: 4,096 output pixels reduce into a 5 × 27 weight gradient — a single tile, so the
        // K dimension is split (on the GPU-shaped device and on the default one alike, with their own tilings).
        var (x1, x2) = Pair([16, 3, 16, 16], 11);
        var (w1, w2) = Pair([5, 3, 3, 3], 12);
        w1.RequiresGrad = w2.RequiresGrad = true;
        x1.Conv2d(w1, null, stride: 1, padding: 1).Sum().Backward();
        x2.Conv2d(w2, null, stride: 1, padding: 1).Sum().Backward();
        Reference.AssertClose(w2.Grad!.ToArray(), w1.Grad!.ToArray(), 1e-10, 1e-10, "dw");
        Assert.That(((IlgpuBackend)_gpuShaped!.Backend).LoadedKernelNames, Does.Contain(nameof(GemmKernels.SumSplits)),
            "the weight gradient took the split-K path");
        var xs = x1.ToArray();
        var g = new ReferenceOps.Conv(16, 3, 16, 16, 5, 3, 3, 1, 1, 1, 1, 1, 1);
        var expected = ReferenceOps.ConvBackwardWeight(g, xs, Enumerable.Repeat(1.0, 16 * 5 * 256).ToArray());
        Reference.AssertClose(expected, w1.Grad!.ToArray(), 1e-10, 1e-10, "dw against the reference");
    }

    [Test]
    public void GemmAgreesAcrossTileEdges()
    {
        var (a1, a2) = Pair([67, 5], 8);
        var (b1, b2) = Pair([5, 70], 9);
        Reference.AssertClose(Tensor<double>.MatMul(a2, b2).ToArray(), Tensor<double>.MatMul(a1, b1).ToArray(),
            1e-12, 1e-12, "matmul 67x5·5x70");
    }
}
