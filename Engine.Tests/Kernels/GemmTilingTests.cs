// The tiled GEMM's tile choice (GemmTiling.Plan) and every tile shape it picks, run in float32 against the float64
// reference on a CPU accelerator shaped like a GPU (256-thread groups) and on the default 2-thread one: extents that
// are not multiples of the block tile, of the 8-deep K stage or of the 4-element quads, every transpose, aligned
// operands (vector loads) and unaligned ones (scalar), and the convolution passes on a CIFAR stage's shape. Sizes
// stay small: every barrier wakes 256 simulated threads.
using Engine.Kernels;
using Engine.Kernels.Ilgpu;
using ILGPU.Runtime.CPU;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

[NonParallelizable]
public sealed class GemmTilingTests
{
    private IlgpuBackend? _gpuShaped, _default;

    [OneTimeSetUp]
    public void CreateBackends()
    {
        _gpuShaped = IlgpuBackend.Create(IlgpuKind.Cpu, new CPUDevice(32, 8, 1));
        _default = IlgpuBackend.Create(IlgpuKind.Cpu);
    }

    [OneTimeTearDown]
    public void DisposeBackends()
    {
        _gpuShaped?.Dispose();
        _default?.Dispose();
    }

    [TestCase(2048, 2048, 2048, 256, 132, 16, 16, TestName = "large product on a GPU: 128 × 128")]
    [TestCase(1000, 1000, 200, 256, 132, 8, 8,
        TestName = "64 × 128-tiles would leave SMs idle, K too shallow to split: 64 × 64")]
    [TestCase(1000, 1000, 500, 256, 132, 16, 16, TestName = "K deep enough to split instead: 128 × 128")]
    [TestCase(8192, 64, 576, 256, 132, 16, 8, TestName = "CIFAR stage 3 forward on 132 SMs: 128 × 64, split")]
    [TestCase(131072, 16, 144, 256, 132, 16, 2, TestName = "16 channels: a thin 128 × 16 tile")]
    [TestCase(64, 576, 32768, 256, 132, 8, 16,
        TestName = "weight gradient 64 × 576 over 32768 pixels: 64 × 128, split")]
    [TestCase(16, 144, 131072, 256, 132, 2, 16, TestName = "16-filter weight gradient: a warp's 16 × 128, split")]
    [TestCase(20, 12, 5, 256, 132, 4, 2, TestName = "tiny product: 32 × 16")]
    [TestCase(64, 64, 64, 2, 1, 1, 2, TestName = "ILGPU's 2-thread CPU device: 8 × 16")]
    [TestCase(1000, 1000, 1000, 1024, 1, 16, 16, TestName = "never more than 256 threads")]
    public void ChoosesTheTile(int m, int n, int k, int maxThreads, int multiprocessors, int groupX, int groupY) =>
        Assert.That(GemmTiling.Plan(m, n, k, maxThreads, multiprocessors).Tiling,
            Is.EqualTo(new GemmTiling(groupX, groupY)));

    /// <summary>Splits on an H200's 132 multiprocessors (256-thread groups): enough groups for 2 × 256 threads per
    /// multiprocessor, 67,584 in all.</summary>
    [TestCase(64, 576, 32768, 106, TestName = "five 64 × 128 tiles: 106 splits wanted, 256 allowed (128 deep)")]
    [TestCase(16, 144, 32768, 256, TestName = "two 32-thread tiles, 32768 deep: 256 ranges of 128")]
    [TestCase(16, 144, 131072, 512, TestName = "two 32-thread tiles, 131072 deep: capped at 512 splits")]
    [TestCase(8192, 64, 576, 4, TestName = "CIFAR stage 3 forward at batch 128: 64 tiles of 128 threads, 4 splits")]
    [TestCase(1568, 512, 4608, 6, TestName = "ResNet-50 stage 4 forward at batch 32: 52 tiles, 6 splits")]
    [TestCase(1000, 1000, 4608, 5, TestName = "64 tiles of 128 × 128: 5 splits")]
    [TestCase(131072, 16, 144, 1, TestName = "K shallower than two splits: none")]
    public void SplitsFillTwoFullGroupsPerMultiprocessor(int m, int n, int k, int splits) =>
        Assert.That(GemmTiling.Plan(m, n, k, H200Threads, H200Multiprocessors).Splits, Is.EqualTo(splits));

    private const int H200Threads = 256, H200Multiprocessors = 132;

    /// <summary>m, n, k, transposes, and the tile and splits the GPU-shaped device (one multiprocessor)
    /// picks.</summary>
    private static readonly object[] Products =
    [
        new object[] { 130, 131, 19, false, false, 128, 128, 1 }, // ragged in m, n and k; B unaligned (n = 131)
        new object[] { 129, 132, 24, false, false, 128, 128, 1 }, // aligned A and B: vector loads, ragged m
        new object[] { 60, 52, 13, true, true, 64, 64, 1 },       // both transposed, k not a multiple of 4
        new object[] { 64, 36, 20, true, false, 64, 64, 1 },      // A transposed and aligned (m = 64)
        new object[] { 20, 12, 5, false, true, 32, 16, 1 },       // the small tile
        new object[] { 3, 70, 9, false, false, 8, 128, 1 },       // a single row
        new object[] { 20, 12, 1100, false, true, 32, 16, 8 },    // K split 8 ways (7 ranges of 144, one of 92)
        new object[] { 20, 12, 1500, false, true, 32, 16, 11 },   // 11 splits: the sum's eight-wide step and its rest
    ];

    [TestCaseSource(nameof(Products))]
    public void GemmMatchesTheReference(int m, int n, int k, bool transposeA, bool transposeB, int rows, int columns,
        int splits)
    {
        var (tiling, split) = _gpuShaped!.GemmPlanFor(m, n, k);
        Assert.That((tiling.Rows, tiling.Columns, split), Is.EqualTo((rows, columns, splits)),
            "tile and splits on the GPU-shaped device");
        var random = new Random(m * 1000 + n * 10 + k);
        double[] a = Reference.RandomValues(random, m * k),
            b = Reference.RandomValues(random, k * n),
            c = Reference.RandomValues(random, m * n);
        var expected = ReferenceOps.MatMul(transposeA, transposeB, m, n, k, a, b);
        for (int i = 0; i < expected.Length; i++) expected[i] = 0.5 * expected[i] - 2 * c[i];
        foreach (var backend in new Backend[] { _gpuShaped, _default! })
        {
            using var da = Reference.UploadFloat(backend, a);
            using var db = Reference.UploadFloat(backend, b);
            using var dc = Reference.UploadFloat(backend, c);
            backend.Gemm(transposeA, transposeB, m, n, k, 0.5f, da, db, -2f, dc);
            Reference.AssertClose(expected, Reference.ToDouble(Reference.DownloadFloat(dc)), 1e-4, 1e-4,
                $"{backend.Description}: C = 0.5·AB − 2C");
        }
    }

    /// <summary>A CIFAR stage's shape (16 channels, 8 × 8: 128 × 16 tiles forward), a strided, padded, ragged one,
    /// one whose weight gradient splits its pixels and a strided one whose data gradient splits its deepest stride
    /// phase; all three passes against the reference.</summary>
    [TestCase(2, 16, 8, 8, 16, 1, 1, 1, 1)]
    [TestCase(3, 5, 9, 7, 6, 2, 1, 1, 1)]
    [TestCase(4, 4, 16, 16, 8, 1, 1, 8, 1)] // the weight gradient's 1024 pixels split 8 ways
    [TestCase(1, 4, 6, 6, 256, 2, 1, 1, 8)] // the odd rows' and columns' phase: 4 taps × 256 filters split 8 ways
    public void ConvolutionPassesMatchTheReference(int n, int c, int h, int w, int k, int stride, int pad,
        int weightGradientSplits, int dataGradientSplits)
    {
        var g = new ConvGeometry(n, c, h, w, k, 3, 3, stride, stride, pad, pad, pad, pad);
        var r = new ReferenceOps.Conv(n, c, h, w, k, 3, 3, stride, stride, pad, pad, pad, pad);
        Assert.That(_gpuShaped!.GemmPlanFor(k, c * 9, n * r.OH * r.OW).Splits, Is.EqualTo(weightGradientSplits),
            "weight gradient's splits on the GPU-shaped device");
        // The data gradient's deepest stride phase: every tap at stride 1; at stride 2 with padding 1, the odd rows
        // and columns, reached by 2 × 2 taps.
        var (phasePixels, phaseTaps) = stride == 1 ? (n * h * w, 9) : (n * (h / 2) * (w / 2), 4);
        Assert.That(_gpuShaped.GemmPlanFor(phasePixels, c, k * phaseTaps).Splits, Is.EqualTo(dataGradientSplits),
            "data gradient's splits on the GPU-shaped device");
        var random = new Random(n + c + h + w + k);
        double[] x = Reference.RandomValues(random, n * c * h * w),
            weights = Reference.RandomValues(random, k * c * 9),
            bias = Reference.RandomValues(random, k);
        double[] dy = Reference.RandomValues(random, n * k * r.OH * r.OW);
        foreach (var backend in new Backend[] { _gpuShaped!, _default! })
        {
            var (y, gradX, gradW) = Reference.ConvPasses(backend, g, x, weights, bias, dy);
            string on = $"{backend.Description}, {r}";
            Reference.AssertClose(ReferenceOps.ConvForward(r, x, weights, bias), Reference.ToDouble(y), 1e-4, 1e-4,
                $"y, {on}");
            Reference.AssertClose(ReferenceOps.ConvBackwardData(r, dy, weights), Reference.ToDouble(gradX), 1e-4,
                1e-4, $"dx, {on}");
            Reference.AssertClose(ReferenceOps.ConvBackwardWeight(r, x, dy), Reference.ToDouble(gradW), 1e-4, 1e-4,
                $"dw, {on}");
        }
    }
}
