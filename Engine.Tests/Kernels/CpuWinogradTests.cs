// The CPU backend's Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions (Engine.Kernels/Cpu/Winograd.cs: AVX2+FMA or
// AVX-512, F(4x4, 3x3) on AVX-512 only;
// on other machines the same cases check the direct kernels and the GEMM): the forward pass with bias, residual and
// ReLU, the stride-1 data gradient and the weight gradient (Winograd from 4 images: the 16x16 unpadded,
// 8x8 and streamed cases), against the float64 reference, with the same bits on 1, 2 and 3 threads
// (bands of tile rows, runs of images, parts of the output channels and blocks of tiles that differ with the thread
// count) and for each image of a batch alone.
using Engine.Kernels;
using Engine.Kernels.Cpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

[NonParallelizable]
public sealed class CpuWinogradTests
{
    /// <summary>batch, C, H, W, K, pads (top, bottom, left, right), with channel products that take Winograd with AVX2
    /// and with AVX-512 (128² to 256²) and channel counts that leave a last micro-tile of fewer rows on both (6 and 8
    /// rows): a 13x13 map (7 tiles a row: one group of 8 with a tile dropped, and an odd last output row); a 28x28 map
    /// of two groups a row; 16x16 unpadded (a 14x14 output, a tile of each group dropped; the data gradient padded by
    /// 2); a 30x30 map padded by 2 (32x32 out; the data gradient unpadded); uneven pads, 15 wide; and maps 7 or 8 wide,
    /// whose groups hold 4 tiles of each of two tile rows: 8x8, 7x7 (an odd last output row), 5 rows of 8 (3 tile rows:
    /// a last pair with one), and 9x9 unpadded (a 7x7 output; its data gradient, 9 wide, takes another path). Two with
    /// few channels (Winograd with AVX2 only, in blocks of several panels; the direct kernels with AVX-512). Two of 64
    /// to 72 channels on maps 8 and 7 wide, whose images are too small to fill a panel, so that a task takes a run of
    /// images (of 2 or 1, with the thread count). Three whose transformed weights stream (over 2 MiB): 11 images of
    /// 7x7 in runs of 4, 4 and 3 (a run holds at most half of 8 or more images), the output channels split in parts
    /// from two threads; 5 images of 14x14 in one run, the output channels in parts (a block ending in half a panel
    /// with AVX2); and 256 × 256 channels on 7x7, whose data gradient reads the forward's transformed weights on
    /// AVX-512 (planes swapped, tiles read transposed). On AVX-512 the 28x28 map, the 30x30 map's passes
    /// (32 wide out, 30 wide back: the last tiles' columns and rows dropped) and the 16x16 map's data gradient take
    /// F(4x4, 3x3) (the first with its transformed weights streaming), and three more shapes are for it: 60x60, two
    /// groups of 8 tiles of 4 a row (the last one dropped) in bands of tile rows; 12x16, 4 tiles a row in pairs of
    /// tile rows, the last pair with one; and 32 × 36 channels on 32x32, a block of one panel, whose weight gradient
    /// (from 4 images) takes it too, as do two more: 28x28, a row of 7 tiles, and 16x16, pairs of tile rows. Its
    /// forward and data gradient take it from 16 × 16 channels, its weight gradient keeps the direct kernels: 32x32
    /// (ResNet-20's first stage) and 16 × 20 channels on 16x16 (pairs of tile rows). Three write outputs of 2 MiB, whose rows of whole cache
    /// lines go past the caches (CpuBackend.StreamedOutputBytes), each image checked against itself alone, which
    /// stores as usual: 32 channels on 32x32 (F(4x4, 3x3) rows of 32 both ways) and on 16x16 (pairs of tile rows,
    /// rows of 16), and 64 channels on 8x8, whose F(2x2, 3x3) passes write their 4 rows of 8 as one.
    /// </summary>
    private static readonly object[] Shapes =
    [
        new object[] { 2, 128, 13, 13, 130, 1, 1, 1, 1 },
        new object[] { 1, 136, 28, 28, 122, 1, 1, 1, 1 },
        new object[] { 4, 120, 16, 16, 140, 0, 0, 0, 0 },
        new object[] { 1, 140, 30, 30, 118, 2, 2, 2, 2 },
        new object[] { 2, 128, 14, 15, 130, 2, 0, 1, 0 },
        new object[] { 4, 128, 8, 8, 132, 1, 1, 1, 1 },
        new object[] { 1, 120, 7, 7, 140, 1, 1, 1, 1 },
        new object[] { 2, 128, 5, 8, 128, 1, 1, 1, 1 },
        new object[] { 3, 130, 9, 9, 128, 0, 0, 0, 0 },
        new object[] { 2, 16, 13, 13, 32, 1, 1, 1, 1 },
        new object[] { 2, 32, 8, 8, 24, 1, 1, 1, 1 },
        new object[] { 8, 64, 8, 8, 72, 1, 1, 1, 1 },
        new object[] { 6, 72, 7, 7, 64, 1, 1, 1, 1 },
        new object[] { 11, 196, 7, 7, 202, 1, 1, 1, 1 },
        new object[] { 5, 184, 14, 14, 184, 1, 1, 1, 1 },
        new object[] { 2, 256, 7, 7, 256, 1, 1, 1, 1 },
        new object[] { 1, 32, 60, 60, 40, 1, 1, 1, 1 },
        new object[] { 2, 40, 12, 16, 36, 1, 1, 1, 1 },
        new object[] { 4, 32, 32, 32, 36, 1, 1, 1, 1 },
        new object[] { 4, 64, 28, 28, 72, 1, 1, 1, 1 },
        new object[] { 4, 72, 16, 16, 64, 1, 1, 1, 1 },
        new object[] { 2, 16, 32, 32, 16, 1, 1, 1, 1 },
        new object[] { 3, 16, 16, 16, 20, 1, 1, 1, 1 },
        new object[] { 16, 32, 32, 32, 32, 1, 1, 1, 1 },
        new object[] { 64, 32, 16, 16, 32, 1, 1, 1, 1 },
        new object[] { 128, 64, 8, 8, 64, 1, 1, 1, 1 },
    ];

    [TestCaseSource(nameof(Shapes))]
    public void ForwardAndDataGradientMatchTheReferenceWithTheSameBitsOnEveryThreadCount(int batch, int c, int h,
        int w, int k, int padTop, int padBottom, int padLeft, int padRight)
    {
        var g = new ConvGeometry(batch, c, h, w, k, 3, 3, 1, 1, padTop, padBottom, padLeft, padRight);
        var r = new ReferenceOps.Conv(batch, c, h, w, k, 3, 3, 1, 1, padTop, padBottom, padLeft, padRight);
        var random = new Random(c * 100 + h);
        double[] x = Reference.RandomValues(random, batch * c * h * w),
            weights = Reference.RandomValues(random, k * c * 9), bias = Reference.RandomValues(random, k);
        double[] dy = Reference.RandomValues(random, batch * k * r.OH * r.OW),
            residual = Reference.RandomValues(random, dy.Length);
        var forward = ReferenceOps.ConvForward(r, x, weights, bias);
        for (int i = 0; i < forward.Length; i++) forward[i] = Math.Max(forward[i] + residual[i], 0);
        var dataGradient = ReferenceOps.ConvBackwardData(r, dy, weights);
        var weightGradient = ReferenceOps.ConvBackwardWeight(r, x, dy);
        (float[] Y, float[] DX, float[] DW)? first = null;
        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var backend = new CpuBackend(threads);
            var result = Reference.ConvPasses(backend, g, x, weights, bias, dy, residual, relu: true);
            string on = $"{r}, {threads} thread(s)";
            Reference.AssertClose(forward, Reference.ToDouble(result.Y), 2e-3, 1e-4, $"y, {on}");
            Reference.AssertClose(dataGradient, Reference.ToDouble(result.DX), 2e-3, 1e-4, $"dx, {on}");
            Reference.AssertClose(weightGradient, Reference.ToDouble(result.DW), 2e-3, 1e-4, $"dw, {on}");
            first ??= (result.Y, result.DX, result.DW);
            Assert.That(result.Y, Is.EqualTo(first.Value.Y), $"y bits, {on}");
            Assert.That(result.DX, Is.EqualTo(first.Value.DX), $"dx bits, {on}");
            Assert.That(result.DW, Is.EqualTo(first.Value.DW), $"dw bits, {on}");
            if (threads != 2 || batch == 1) continue;
            int imageIn = c * h * w, imageOut = k * r.OH * r.OW;
            var one = new ConvGeometry(1, c, h, w, k, 3, 3, 1, 1, padTop, padBottom, padLeft, padRight);
            for (int n = 0; n < batch; n++)
            {
                var alone = Reference.ConvPasses(backend, one, x[(n * imageIn)..((n + 1) * imageIn)], weights, bias,
                    dy[(n * imageOut)..((n + 1) * imageOut)], residual[(n * imageOut)..((n + 1) * imageOut)],
                    relu: true);
                Assert.That(result.Y[(n * imageOut)..((n + 1) * imageOut)], Is.EqualTo(alone.Y), $"y of image {n}");
                Assert.That(result.DX[(n * imageIn)..((n + 1) * imageIn)], Is.EqualTo(alone.DX), $"dx of image {n}");
            }
        }
    }
}
