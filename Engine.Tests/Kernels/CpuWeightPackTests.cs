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
        using var conv = new PackedConv(new ConvGeometry(batch, c, size, size, k, kernel, kernel, 1, 1, pad, pad, pad,
            pad, Groups: groups), seed: shape * 7 + 1);
        var backend = conv.Backend;

        // Three calls at one version: the second keeps the packs, the third reads them; all give the same bits.
        var first = conv.Passes();
        Assert.That(backend.KeptWeightPackBytes, Is.Zero, "nothing kept after the first packing");
        long kept = 0;
        for (int call = 2; call <= 3; call++)
        {
            var again = conv.Passes();
            Assert.That(again.Y, Is.EqualTo(first.Y), $"y bits, call {call} at one weight version, {conv.R}");
            Assert.That(again.DX, Is.EqualTo(first.DX), $"dx bits, call {call} at one weight version, {conv.R}");
            if (call == 2) kept = backend.KeptWeightPackBytes;
        }
        Assert.That(kept, Is.GreaterThanOrEqualTo(2L * conv.Weights.Length * sizeof(float)),
            "both passes' packs kept on the second call");
        Assert.That(backend.KeptWeightPackBytes, Is.EqualTo(kept), "the third call reads the kept packs");

        long before = conv.W.Version;
        write.Apply(backend, conv.W, conv.Other);
        Assert.That(conv.W.Version, Is.GreaterThan(before), "the write counts on the weights' version");
        var written = Reference.ToDouble(Reference.DownloadFloat(conv.W));
        Assert.That(written, Is.Not.EqualTo(Reference.ToDouble(Reference.ToFloat(conv.Weights))),
            "the weights changed");

        var after = conv.Passes();
        Assert.That(backend.KeptWeightPackBytes, Is.Zero, "the write let the old packs go");
        conv.AssertPassesOf(written, after);
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
        const int c = 256, k = 256;
        using var conv = new PackedConv(new ConvGeometry(2, c, 7, 7, k, 3, 3, 1, 1, 1, 1, 1, 1), seed: 11);
        var backend = conv.Backend;

        var first = conv.Passes();
        long kept = backend.KeptWeightPackBytes;
        // F(2x2, 3x3)'s transform: 16 planes of 256 × 256, each a cache line longer, and 16 floats of slack.
        long transform = (16L * (k * c + 16) + 16) * sizeof(float);
        Assert.That(kept, Is.EqualTo(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? transform : 0),
            "the forward's transform kept from the first packing (AVX-512 only)");
        conv.AssertPassesOf(conv.Weights, first);

        write.Apply(backend, conv.W, conv.Other);
        var written = Reference.ToDouble(Reference.DownloadFloat(conv.W));
        var after = conv.Passes();
        Assert.That(backend.KeptWeightPackBytes, Is.EqualTo(kept), "the new weights packed into the same memory");
        conv.AssertPassesOf(written, after);
    }

    /// <summary>One convolution on a 2-thread CPU backend with random non-zero operands: its weights W, a second
    /// buffer as long (Other, for the writes), and the two passes that read W.</summary>
    private sealed class PackedConv : IDisposable
    {
        public readonly CpuBackend Backend = new(2);
        public readonly ReferenceOps.Conv R;
        public readonly double[] Weights;
        public readonly DeviceBuffer<float> W, Other;
        private readonly ConvGeometry _g;
        private readonly double[] _x, _dy;
        private readonly DeviceBuffer<float> _input, _outputGradient, _output, _inputGradient;

        public PackedConv(ConvGeometry g, int seed)
        {
            _g = g;
            R = new ReferenceOps.Conv(g.Batch, g.InChannels, g.InHeight, g.InWidth, g.OutChannels, g.KernelHeight,
                g.KernelWidth, 1, 1, g.PadTop, g.PadBottom, g.PadLeft, g.PadRight, Groups: g.Groups);
            var random = new Random(seed);
            _x = Reference.RandomValues(random, (int)g.InputLength);
            Weights = Reference.RandomValues(random, (int)g.WeightLength);
            var other = Reference.RandomValues(random, Weights.Length);
            _dy = Reference.RandomValues(random, (int)g.OutputLength);
            _input = Reference.UploadFloat(Backend, _x);
            W = Reference.UploadFloat(Backend, Weights);
            Other = Reference.UploadFloat(Backend, other);
            _outputGradient = Reference.UploadFloat(Backend, _dy);
            _output = Backend.Allocate<float>(_dy.Length);
            _inputGradient = Backend.Allocate<float>(_x.Length);
        }

        /// <summary>The forward and the data gradient with the weights as they are now.</summary>
        public (float[] Y, float[] DX) Passes()
        {
            Backend.Conv2dForward(_g, _input, W, null, _output);
            Backend.Conv2dBackwardData(_g, _outputGradient, W, _inputGradient);
            return (Reference.DownloadFloat(_output), Reference.DownloadFloat(_inputGradient));
        }

        /// <summary>Passes that must be those of <paramref name="weights"/>: the float64 reference's, and the bits of
        /// a backend that never packed other weights.</summary>
        public void AssertPassesOf(double[] weights, (float[] Y, float[] DX) passes)
        {
            Reference.AssertClose(ReferenceOps.ConvForward(R, _x, weights, null), Reference.ToDouble(passes.Y), 2e-3,
                1e-4, $"y, {R}");
            Reference.AssertClose(ReferenceOps.ConvBackwardData(R, _dy, weights), Reference.ToDouble(passes.DX),
                2e-3, 1e-4, $"dx, {R}");
            using var fresh = new CpuBackend(2);
            var unpacked = Reference.ConvPasses(fresh, _g, _x, weights, null, _dy);
            Assert.That(passes.Y, Is.EqualTo(unpacked.Y), "y bits against a backend that never packed other weights");
            Assert.That(passes.DX, Is.EqualTo(unpacked.DX),
                "dx bits against a backend that never packed other weights");
        }

        public void Dispose()
        {
            foreach (var buffer in new[] { _input, W, Other, _outputGradient, _output, _inputGradient })
                buffer.Dispose();
            Backend.Dispose();
        }
    }
}
