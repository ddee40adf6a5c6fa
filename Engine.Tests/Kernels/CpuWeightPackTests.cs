// The CPU backend's kept weight packs (Engine.Kernels/Cpu/WeightPacks.cs): a convolution's packed weights are kept
// once the same weights are packed twice and serve until the weight buffer is written. Each way of writing a
// weight (a host copy, an SGD step, Axpy, Copy into it, Scale in place) must retire the kept pack: after it, both
// passes that read the weights (forward and data gradient) match the float64 reference of the new weights and the
// bits of a backend that never packed the old ones, and the backend's kept bytes show the packs kept on the second
// call, read on the third and let go by the write. Shapes: one for the direct kernels (narrow, 3x3) and four for
// the packed GEMM (a pointwise layer and two wide 3x3 ones, which AVX2 sends to the GEMM, and a grouped one, which
// always goes there). The deep 3x3 one at batch 1 splits the forward's depth into slices that do not divide its
// 9 depth blocks evenly, and its pack must still be kept whole. A layer whose data gradient reads the forward's
// Winograd transform keeps it from the first packing, and every write must repack it in place.
using Engine.Kernels;
using Engine.Kernels.Cpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

[NonParallelizable]
public sealed class CpuWeightPackTests
{
    /// <summary>A way to write the weight buffer <c>w</c> between convolutions, given a second buffer <c>other</c>
    /// as long as it.</summary>
    public sealed record WeightWrite(string Name, Action<Backend, DeviceBuffer<float>, DeviceBuffer<float>> Apply)
    {
        public override string ToString() => Name;
    }

    private static readonly WeightWrite[] Writes =
    [
        new("copy from host", (_, w, other) => w.CopyFromHost(Reference.DownloadFloat(other))),
        new("SGD step", (backend, w, other) =>
            backend.SgdStep(new SgdParameters(0.5), w, other, null, firstStep: true)),
        new("axpy", (backend, w, other) => backend.Axpy(-0.75f, other, w)),
        new("copy", (backend, w, other) => backend.Copy(other, w)),
        new("scale in place", (backend, w, _) => backend.Scale(w, -1.5f, w)),
    ];

    /// <summary>batch, C, size, K, kernel, groups: direct (narrow 3x3), GEMM with AVX2 (1x1; wide 3x3; deep 3x3,
    /// depth sliced), GEMM (grouped).</summary>
    private static readonly int[][] Shapes =
        [[2, 16, 8, 24, 3, 1], [1, 96, 7, 80, 1, 1], [1, 96, 7, 80, 3, 1], [1, 512, 7, 80, 3, 1], [2, 32, 6, 48, 3, 2]];

    [Test]
    public void AWriteToTheWeightsRetiresTheirKeptPack([ValueSource(nameof(Writes))] WeightWrite write,
        [Values(0, 1, 2, 3, 4)] int shape)
    {
        int[] s = Shapes[shape];
        int batch = s[0], c = s[1], size = s[2], k = s[3], kernel = s[4], groups = s[5], pad = kernel / 2;
        var g = new ConvGeometry(batch, c, size, size, k, kernel, kernel, 1, 1, pad, pad, pad, pad, Groups: groups);
        var r = new ReferenceOps.Conv(batch, c, size, size, k, kernel, kernel, 1, 1, pad, pad, pad, pad,
            Groups: groups);
        var random = new Random(shape * 7 + 1);
        double[] x = Reference.RandomValues(random, batch * c * size * size),
            weights = Reference.RandomValues(random, k * c / groups * kernel * kernel),
            other = Reference.RandomValues(random, weights.Length),
            dy = Reference.RandomValues(random, batch * k * r.OH * r.OW);

        using var backend = new CpuBackend(2);
        using var dx = Reference.UploadFloat(backend, x);
        using var w = Reference.UploadFloat(backend, weights);
        using var otherW = Reference.UploadFloat(backend, other);
        using var ddy = Reference.UploadFloat(backend, dy);
        using var y = backend.Allocate<float>(dy.Length);
        using var gradX = backend.Allocate<float>(x.Length);

        (float[] Y, float[] DX) Passes()
        {
            backend.Conv2dForward(g, dx, w, null, y);
            backend.Conv2dBackwardData(g, ddy, w, gradX);
            return (Reference.DownloadFloat(y), Reference.DownloadFloat(gradX));
        }

        // Three calls at one version: the second keeps the packs, the third reads them; all give the same bits.
        var first = Passes();
        Assert.That(backend.KeptWeightPackBytes, Is.Zero, "nothing kept after the first packing");
        long kept = 0;
        for (int call = 2; call <= 3; call++)
        {
            var again = Passes();
            Assert.That(again.Y, Is.EqualTo(first.Y), $"y bits, call {call} at one weight version, {r}");
            Assert.That(again.DX, Is.EqualTo(first.DX), $"dx bits, call {call} at one weight version, {r}");
            if (call == 2) kept = backend.KeptWeightPackBytes;
        }
        Assert.That(kept, Is.GreaterThanOrEqualTo(2L * weights.Length * sizeof(float)),
            "both passes' packs kept on the second call");
        Assert.That(backend.KeptWeightPackBytes, Is.EqualTo(kept), "the third call reads the kept packs");

        long before = w.Version;
        write.Apply(backend, w, otherW);
        Assert.That(w.Version, Is.GreaterThan(before), "the write counts on the weights' version");
        var written = Reference.ToDouble(Reference.DownloadFloat(w));
        Assert.That(written, Is.Not.EqualTo(Reference.ToDouble(Reference.ToFloat(weights))), "the weights changed");

        var after = Passes();
        Assert.That(backend.KeptWeightPackBytes, Is.Zero, "the write let the old packs go");
        Reference.AssertClose(ReferenceOps.ConvForward(r, x, written, null), Reference.ToDouble(after.Y), 2e-3, 1e-4,
            $"y after the write, {r}");
        Reference.AssertClose(ReferenceOps.ConvBackwardData(r, dy, written), Reference.ToDouble(after.DX), 2e-3,
            1e-4, $"dx after the write, {r}");

        using var fresh = new CpuBackend(2);
        var unpacked = Reference.ConvPasses(fresh, g, x, written, null, dy);
        Assert.That(after.Y, Is.EqualTo(unpacked.Y), $"y bits against a backend that never packed the old weights");
        Assert.That(after.DX, Is.EqualTo(unpacked.DX), $"dx bits against a backend that never packed the old weights");
    }

    /// <summary>A layer whose data gradient reads the forward's Winograd transform (256² channels on 7x7 with
    /// AVX-512) keeps that transform from the first forward, and each write packs the new weights into the same
    /// memory: the forward and the data gradient after the write match the float64 reference of the new weights and
    /// the bits of a backend that never saw the old ones (a stale transform would give the old weights' results).
    /// Elsewhere nothing is kept after one packing.</summary>
    [Test]
    public void AForwardTransformKeptForTheDataGradientFollowsEveryWrite(
        [ValueSource(nameof(Writes))] WeightWrite write)
    {
        const int batch = 2, c = 256, size = 7, k = 256;
        var g = new ConvGeometry(batch, c, size, size, k, 3, 3, 1, 1, 1, 1, 1, 1);
        var r = new ReferenceOps.Conv(batch, c, size, size, k, 3, 3, 1, 1, 1, 1, 1, 1);
        var random = new Random(11);
        double[] x = Reference.RandomValues(random, batch * c * size * size),
            weights = Reference.RandomValues(random, k * c * 9),
            other = Reference.RandomValues(random, weights.Length),
            dy = Reference.RandomValues(random, batch * k * r.OH * r.OW);

        using var backend = new CpuBackend(2);
        using var dx = Reference.UploadFloat(backend, x);
        using var w = Reference.UploadFloat(backend, weights);
        using var otherW = Reference.UploadFloat(backend, other);
        using var ddy = Reference.UploadFloat(backend, dy);
        using var y = backend.Allocate<float>(dy.Length);
        using var gradX = backend.Allocate<float>(x.Length);

        (float[] Y, float[] DX) Passes()
        {
            backend.Conv2dForward(g, dx, w, null, y);
            backend.Conv2dBackwardData(g, ddy, w, gradX);
            return (Reference.DownloadFloat(y), Reference.DownloadFloat(gradX));
        }

        var first = Passes();
        long kept = backend.KeptWeightPackBytes;
        // F(2x2, 3x3)'s transform: 16 planes of 256 × 256, each a cache line longer, and 16 floats of slack.
        long transform = (16L * (k * c + 16) + 16) * sizeof(float);
        Assert.That(kept, Is.EqualTo(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? transform : 0),
            "the forward's transform kept from the first packing (AVX-512 only)");
        Reference.AssertClose(ReferenceOps.ConvBackwardData(r, dy, weights), Reference.ToDouble(first.DX), 2e-3,
            1e-4, $"dx before the write, {r}");

        write.Apply(backend, w, otherW);
        var written = Reference.ToDouble(Reference.DownloadFloat(w));
        var after = Passes();
        Assert.That(backend.KeptWeightPackBytes, Is.EqualTo(kept), "the new weights packed into the same memory");
        Reference.AssertClose(ReferenceOps.ConvForward(r, x, written, null), Reference.ToDouble(after.Y), 2e-3, 1e-4,
            $"y after the write, {r}");
        Reference.AssertClose(ReferenceOps.ConvBackwardData(r, dy, written), Reference.ToDouble(after.DX), 2e-3,
            1e-4, $"dx after the write, {r}");

        using var fresh = new CpuBackend(2);
        var unpacked = Reference.ConvPasses(fresh, g, x, written, null, dy);
        Assert.That(after.Y, Is.EqualTo(unpacked.Y), "y bits against a backend that never packed the old weights");
        Assert.That(after.DX, Is.EqualTo(unpacked.DX), "dx bits against a backend that never packed the old weights");
    }
}
