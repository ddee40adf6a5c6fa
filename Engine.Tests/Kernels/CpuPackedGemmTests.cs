// How the CPU backend's packed GEMM cuts its work (Engine.Kernels/Cpu/Gemm.cs): A packed once per call and shared
// by every task, the rows split when the column panels are few (batch 1 on 7x7 maps), and a deep A packed in
// phases of depth, here across the split-K slices of a weight gradient; and how the direct convolutions
// (DirectConvolution.cs) split one image's output channels over the threads. Each cut is checked against the
// float64 reference and for the same bits on 1, 2 and 3 worker threads (who computes an element must never change
// how).
using Engine.Kernels;
using Engine.Kernels.Cpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

[NonParallelizable]
public sealed class CpuPackedGemmTests
{
    private static readonly int[] ThreadCounts = [1, 2, 3];

    /// <summary>m, n, k, transposes, beta: row parts on a thin C (two panels), edge panels of 1 and 3 columns (49
    /// and 35 columns with AVX2's panels of 16; 17 and 3 with AVX-512's 32) with an odd depth and a last tile of 1
    /// row, and an A deeper than the packing budget (600 × 8000 floats: two phases, the second starting inside a
    /// split-K slice).</summary>
    private static readonly object[] Products =
    [
        new object[] { 1000, 20, 300, false, false, 0f },
        new object[] { 1000, 20, 300, true, true, -2f },
        new object[] { 97, 49, 1100, false, true, 0f },
        new object[] { 61, 35, 517, false, true, 0.25f },
        new object[] { 600, 20, 8000, false, false, 0.5f },
        new object[] { 600, 20, 8000, true, false, 0f },
    ];

    [TestCaseSource(nameof(Products))]
    public void GemmMatchesTheReferenceWithTheSameBitsOnEveryThreadCount(int m, int n, int k, bool transposeA,
        bool transposeB, float beta)
    {
        var random = new Random(m + n + k);
        double[] a = Reference.RandomValues(random, m * k),
            b = Reference.RandomValues(random, k * n),
            c = Reference.RandomValues(random, m * n);
        var expected = ReferenceOps.MatMul(transposeA, transposeB, m, n, k, a, b);
        for (int i = 0; i < expected.Length; i++) expected[i] = 0.5 * expected[i] + beta * c[i];
        float[]? first = null;
        foreach (int threads in ThreadCounts)
        {
            using var backend = new CpuBackend(threads);
            using var da = Reference.UploadFloat(backend, a);
            using var db = Reference.UploadFloat(backend, b);
            using var dc = Reference.UploadFloat(backend, c);
            backend.Gemm(transposeA, transposeB, m, n, k, 0.5f, da, db, beta, dc);
            var result = Reference.DownloadFloat(dc);
            Reference.AssertClose(expected, Reference.ToDouble(result), 2e-3, 1e-4,
                $"C = 0.5·AB + {beta}·C, {m}×{n}×{k}, {threads} thread(s)");
            first ??= result;
            Assert.That(result, Is.EqualTo(first), $"bits with {threads} thread(s) against 1");
        }
    }

    /// <summary>Batch-1 ResNet-50 shapes where the GEMM's panels are few (a 7x7 map, four panels of 16, stride 1,
    /// and a strided 14x14 → 7x7 one whose data gradient runs one GEMM per image on a worker); narrow shapes that
    /// the direct kernels serve with one image's (or two images') output channels split into parts (42 channels:
    /// a last block of 2 with AVX2's blocks of 4 and AVX-512's of 8; 25 positions: tiles across two images); and
    /// a batch of 20 on an 8x8 map, whose direct weight gradient sums two images per group; and three 5x5 images
    /// of 80 channels on AVX2's GEMM, where one task's panels span all three images (a run of a full and a 9-column
    /// panel each) and its rows are split, so B is packed once for every row part. All three passes, the forward
    /// with bias, residual and ReLU.</summary>
    [TestCase(1, 512, 7, 512, 1)]
    [TestCase(3, 80, 5, 72, 1)]
    [TestCase(1, 256, 14, 512, 2)]
    [TestCase(1, 24, 8, 42, 1)]
    [TestCase(2, 24, 9, 42, 2)]
    [TestCase(20, 4, 8, 6, 1)]
    public void ConvolutionMatchesTheReferenceWithTheSameBitsOnEveryThreadCount(int batch, int c, int size, int k,
        int stride)
    {
        var g = new ConvGeometry(batch, c, size, size, k, 3, 3, stride, stride, 1, 1, 1, 1);
        var r = new ReferenceOps.Conv(batch, c, size, size, k, 3, 3, stride, stride, 1, 1, 1, 1);
        var random = new Random(c + size + k);
        double[] x = Reference.RandomValues(random, batch * c * size * size),
            weights = Reference.RandomValues(random, k * c * 9), bias = Reference.RandomValues(random, k);
        double[] dy = Reference.RandomValues(random, batch * k * r.OH * r.OW),
            residual = Reference.RandomValues(random, dy.Length);
        var forward = ReferenceOps.ConvForward(r, x, weights, bias);
        for (int i = 0; i < forward.Length; i++) forward[i] = Math.Max(forward[i] + residual[i], 0);
        var expected = (Y: forward, DX: ReferenceOps.ConvBackwardData(r, dy, weights),
            DW: ReferenceOps.ConvBackwardWeight(r, x, dy));
        (float[] Y, float[] DX, float[] DW)? first = null;
        foreach (int threads in ThreadCounts)
        {
            using var backend = new CpuBackend(threads);
            var result = Reference.ConvPasses(backend, g, x, weights, bias, dy, residual, relu: true);
            string on = $"{r}, {threads} thread(s)";
            Reference.AssertClose(expected.Y, Reference.ToDouble(result.Y), 2e-3, 1e-4, $"y, {on}");
            Reference.AssertClose(expected.DX, Reference.ToDouble(result.DX), 2e-3, 1e-4, $"dx, {on}");
            Reference.AssertClose(expected.DW, Reference.ToDouble(result.DW), 2e-3, 1e-4, $"dw, {on}");
            first ??= result;
            Assert.That(result.Y, Is.EqualTo(first.Value.Y), $"y bits, {on}");
            Assert.That(result.DX, Is.EqualTo(first.Value.DX), $"dx bits, {on}");
            Assert.That(result.DW, Is.EqualTo(first.Value.DW), $"dw bits, {on}");
        }
    }
}
