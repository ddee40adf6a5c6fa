// How the CPU backend's packed GEMM cuts its work (Engine.Kernels/Cpu/Gemm.cs): A packed once per call and shared
// by every task, or by each task for itself when one or two chunks of columns read it, the rows split when the
// column panels are few (batch 1 on 7x7 maps), and a deep A packed in phases of depth, here across the split-K
// slices of a weight gradient, and a last panel of a few columns summed along the rows; the strided data
// gradient's products over runs of images and blocks of channels; and how the direct convolutions
// (DirectConvolution.cs) split one image's output rows into bands and its output channels over the threads. Each
// cut is checked against the float64 reference and for the same bits on 1, 2 and 3 worker threads (who computes an
// element must never change how).
using Engine.Kernels;
using Engine.Kernels.Cpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

[NonParallelizable]
public sealed class CpuPackedGemmTests
{
    private static readonly int[] ThreadCounts = [1, 2, 3];

    /// <summary>m, n, k, transposes, beta: row parts on a thin C (two panels, A packed by each task), edge panels
    /// of 1 and 3 columns (49 and 35 columns with AVX2's panels of 16; 17 and 3 with AVX-512's 32) with an odd depth
    /// and a last tile of 1 row, a deep A over few panels (600 × 8000, packed by each task over its split-K slice),
    /// and a deep A read by three chunks of AVX2's panels (300 × 14000 floats, over the packing budget: two phases,
    /// each two split-K slices' blocks; two chunks with AVX-512, which pack A themselves).</summary>
    private static readonly object[] Products =
    [
        new object[] { 1000, 20, 300, false, false, 0f },
        new object[] { 1000, 20, 300, true, true, -2f },
        new object[] { 97, 49, 1100, false, true, 0f },
        new object[] { 61, 35, 517, false, true, 0.25f },
        new object[] { 600, 20, 8000, false, false, 0.5f },
        new object[] { 600, 20, 8000, true, false, 0f },
        new object[] { 300, 260, 14000, false, false, 0.5f },
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

    /// <summary>A last panel of a few columns (AVX2: 1, 3 and 4 of 16, summed along the rows over several tiles)
    /// must give each element the bits the micro-kernel gives it in a whole panel: C of 49, 35 and 52 columns
    /// against the same columns of a C of 64, 48 and 64 (the same panel count, so the same split-K slices), over 53
    /// rows (nine tiles, the last of 5 rows), three depth blocks, with alpha and beta.</summary>
    [TestCase(49, 64)]
    [TestCase(35, 48)]
    [TestCase(52, 64)]
    public void NarrowLastPanelHasTheBitsOfAWholePanel(int narrow, int whole)
    {
        const int m = 53, k = 600;
        var random = new Random(narrow);
        double[] a = Reference.RandomValues(random, m * k), bWhole = Reference.RandomValues(random, k * whole),
            cWhole = Reference.RandomValues(random, m * whole);
        double[] bNarrow = new double[k * narrow], cNarrow = new double[m * narrow];
        for (int i = 0; i < k; i++) Array.Copy(bWhole, i * whole, bNarrow, i * narrow, narrow);
        for (int i = 0; i < m; i++) Array.Copy(cWhole, i * whole, cNarrow, i * narrow, narrow);
        foreach (int threads in new[] { 1, 2 })
        {
            using var backend = new CpuBackend(threads);
            var wide = Product(backend, whole, bWhole, cWhole);
            var thin = Product(backend, narrow, bNarrow, cNarrow);
            for (int i = 0; i < m; i++)
                Assert.That(thin[(i * narrow)..((i + 1) * narrow)], Is.EqualTo(wide[(i * whole)..(i * whole + narrow)]),
                    $"row {i} of C, {narrow} columns against {whole}, {threads} thread(s)");
        }

        float[] Product(CpuBackend backend, int n, double[] b, double[] c)
        {
            using var da = Reference.UploadFloat(backend, a);
            using var db = Reference.UploadFloat(backend, b);
            using var dc = Reference.UploadFloat(backend, c);
            backend.Gemm(false, false, m, n, k, 0.5f, da, db, 0.25f, dc);
            return Reference.DownloadFloat(dc);
        }
    }

    /// <summary>Batch-1 ResNet-50 shapes where the GEMM's panels are few (a 7x7 map, four panels of 16, stride 1, and a
    /// strided 14x14 → 7x7 one, whose data gradient is the columns GEMM with one image, with AVX-512 the direct
    /// kernels' phases; with AVX-512 the 49th pixel of each 7x7 map, 3·16 + 1, goes a pixel at a time, the channels in
    /// the lanes); narrow shapes that the direct kernels serve with one image's (or two images') output channels split
    /// into parts (42 channels: a last block of 2 with AVX2's blocks of 4 and AVX-512's of 8; 25 positions: tiles
    /// across two images); and a batch of 20 on an 8x8 map, whose direct weight gradient sums two images per group; and
    /// three 5x5 images of 80 channels on AVX2's GEMM, whose 75 columns make five panels of 16, two of them across
    /// images (9 + 7 and 2 + 14 columns), in one task whose rows are split, so B is packed once for every row part; and
    /// 17 images of a 2x2 map, four images to a panel; and a pointwise (1x1) kernel over three 9x9 images, whose weight
    /// gradient transposes dy and x in place in stretches of 81 positions (an image's) and into a last tile of 2 rows
    /// and a panel of 3 columns; and the direct kernels' bands of output rows at batch 1 and 2 (when images are too few
    /// for the threads): a 13x13 map in bands of 5, 5 and 3 rows whose pixel counts end inside a vector, the same for a
    /// group of two images whose tiles cross from one image to the next within a band, a stride-2 forward whose bands
    /// start at every other source row, and a 5x5 kernel's bands of 5, 5, 5 and 2 rows, each building a halo of 4 rows;
    /// and the image buffer's padded rows (output rows of whole vectors: one plane per channel, each vector read at its
    /// row's start), with a 5x5 kernel in bands of 4 rows, and for three 8x8 images whose tiles cross from one image to
    /// the next in bands of 4 rows; and four 7x7 images, which AVX-512 takes one a task, each image's 49th pixel alone;
    /// and layers of 4 channels or fewer, which AVX-512's direct kernels take in narrow tiles (4 channels × 6 vectors):
    /// a 7x7/2 stem's data gradient onto 3 channels (its phases, in bands at batch 1, in tiles of 3 channels × 8
    /// vectors), a 3-channel 3x3 layer's data gradient, a 4-channel one's forward and a 2-channel one's; and pointwise
    /// layers that the direct kernels read in place, a 13x13 map at batch 1 in bands of 5, 5 and 3 rows (the last
    /// vector of every band reaching past it, the last band's past the tensor), two 7x7 images and three 8x8 ones
    /// (whose weight gradient the direct kernels take, x read in place), and 1x1/2 layers whose data gradient's phase
    /// reads dy in place (a 13x13 dy at batch 1 in bands, three 7x7 ones); and weight gradients whose GEMM reads dy's
    /// rows in place (AVX-512, a task per panel), depth blocks running across images of 13x13 positions: 9 panels (in
    /// place on 1 to 3 threads), and 9 panels over 22 images in two split-K slices (packed on one thread, in place on
    /// more: the same bits); and direct weight gradients of 11 terms a row (a last step of 5 of its 6), written by each
    /// task at batch 1 and summed over three images' partials; and 48 small 3-channel images of 20x20 (16 KB buffers,
    /// 25 vectors, a last tile of one), three a task on 1 and 2 threads (tiles across images) and one on 3, whose
    /// weight gradient's kernel calls each sum three images (DirectWeightJob.LongPixelRun). All three passes, the
    /// forward with bias, residual and ReLU.
    /// </summary>
    [TestCase(1, 512, 7, 512, 1)]
    [TestCase(3, 80, 5, 72, 1)]
    [TestCase(17, 80, 2, 72, 1)]
    [TestCase(1, 256, 14, 512, 2)]
    [TestCase(1, 24, 8, 42, 1)]
    [TestCase(2, 24, 9, 42, 2)]
    [TestCase(20, 4, 8, 6, 1)]
    [TestCase(3, 35, 9, 20, 1, 1)]
    [TestCase(1, 16, 13, 20, 1)]
    [TestCase(2, 16, 13, 20, 1)]
    [TestCase(1, 16, 26, 20, 2)]
    [TestCase(1, 8, 17, 12, 1, 5)]
    [TestCase(1, 8, 16, 12, 1, 5)]
    [TestCase(3, 16, 8, 20, 1)]
    [TestCase(4, 24, 7, 20, 1)]
    [TestCase(1, 3, 32, 16, 2, 7)]
    [TestCase(2, 3, 20, 4, 1)]
    [TestCase(2, 5, 16, 2, 1)]
    [TestCase(1, 16, 13, 20, 1, 1)]
    [TestCase(2, 40, 7, 12, 1, 1)]
    [TestCase(3, 24, 8, 20, 1, 1)]
    [TestCase(1, 16, 26, 20, 2, 1)]
    [TestCase(3, 24, 14, 40, 2, 1)]
    [TestCase(3, 32, 26, 64, 2)]
    [TestCase(22, 32, 26, 64, 2)]
    [TestCase(1, 11, 16, 12, 1, 1)]
    [TestCase(3, 11, 16, 12, 1, 1)]
    [TestCase(48, 3, 20, 5, 1)]
    public void ConvolutionMatchesTheReferenceWithTheSameBitsOnEveryThreadCount(int batch, int c, int size, int k,
        int stride, int kernel = 3)
    {
        int pad = kernel / 2;
        var g = new ConvGeometry(batch, c, size, size, k, kernel, kernel, stride, stride, pad, pad, pad, pad);
        var r = new ReferenceOps.Conv(batch, c, size, size, k, kernel, kernel, stride, stride, pad, pad, pad, pad);
        var random = new Random(c + size + k);
        double[] x = Reference.RandomValues(random, batch * c * size * size),
            weights = Reference.RandomValues(random, k * c * kernel * kernel), bias = Reference.RandomValues(random, k);
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

    /// <summary>The strided data gradient multiplies a run of images' columns a block of input channels at a time
    /// and runs col2im from them: five images of 64 channels on a 14x14 → 7x7 3x3/2 map, 49 columns an image, go
    /// two images a run with AVX2 (2 + 2 + 1: a short last run; 98 columns, a last panel of 2 summed along the
    /// rows) and five with AVX-512, in blocks of channels; 272 output channels make two depth blocks (one
    /// with two groups). Each image's dx must match the float64 reference and have the bits of that image's
    /// gradient computed alone, on 1 and 2 threads alike.</summary>
    [TestCase(1)]
    [TestCase(2)]
    public void StridedDataGradientOfABatchHasTheBitsOfEachImageAlone(int groups)
    {
        const int batch = 5, c = 64, size = 14, k = 272;
        var r = new ReferenceOps.Conv(batch, c, size, size, k, 3, 3, 2, 2, 1, 1, 1, 1, Groups: groups);
        var random = new Random(groups);
        double[] weights = Reference.RandomValues(random, k * (c / groups) * 9),
            dy = Reference.RandomValues(random, batch * k * r.OH * r.OW);
        var expected = ReferenceOps.ConvBackwardData(r, dy, weights);
        int imageIn = c * size * size, imageOut = k * r.OH * r.OW;
        float[]? first = null;
        foreach (int threads in new[] { 1, 2 })
        {
            using var backend = new CpuBackend(threads);
            var whole = DataGradient(backend, batch, groups, weights, dy);
            Reference.AssertClose(expected, Reference.ToDouble(whole), 2e-3, 1e-4, $"dx, {r}, {threads} thread(s)");
            first ??= whole;
            Assert.That(whole, Is.EqualTo(first), $"dx bits, {threads} thread(s) against 1");
            for (int n = 0; n < batch; n++)
            {
                var alone = DataGradient(backend, 1, groups, weights, dy[(n * imageOut)..((n + 1) * imageOut)]);
                Assert.That(whole[(n * imageIn)..((n + 1) * imageIn)], Is.EqualTo(alone),
                    $"image {n} of {batch} against alone, {threads} thread(s)");
            }
        }

        static float[] DataGradient(CpuBackend backend, int images, int groups, double[] weights, double[] dy)
        {
            var g = new ConvGeometry(images, c, size, size, k, 3, 3, 2, 2, 1, 1, 1, 1, Groups: groups);
            using var w = Reference.UploadFloat(backend, weights);
            using var gradient = Reference.UploadFloat(backend, dy);
            using var dx = backend.Allocate<float>(g.InputLength);
            backend.Conv2dBackwardData(g, gradient, w, dx);
            return Reference.DownloadFloat(dx);
        }
    }
}
