// Packed convolution weights kept between calls. A convolution packs its weights before it multiplies (the packed
// GEMM's A panels, or the direct kernels' channel blocks), a pass over every weight that reads with a stride of a
// filter; inference packs the same weights on every call. A weight buffer keeps its packs, keyed by how they are
// packed (WeightPackKey) and by the buffer's write version (DeviceBuffer.Version, counted by the backend contract on
// every write): a pack is kept once the same weights at the same version are packed the same way a second time, and
// serves until the version moves. Training writes each weight once a step and packs each version once per pass,
// so it keeps nothing between steps, except where one pass reads another's pack: the large Winograd F(2x2, 3x3)
// layers' data gradient reads the forward's transform (Winograd.cs), which is kept from its first packing and
// packed again into the same memory at each new version. Inference keeps one pack per layer (about the weights'
// size), and so does an evaluation between training steps until the next step writes the weights and packs them
// again. A kept pack holds exactly what a fresh pack would (packing is a copy), so results do not change by a bit.
// The version is counted when an op starts, before it writes: an op whose output is its own weights (which no layer
// does) packs them into scratch, as the first packing of the new version, and asks for no pack kept from its first
// packing (its callers check that: Winograd.cs).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

/// <summary>The convolution pass a pack of weights serves.</summary>
internal enum WeightPass
{
    Forward,
    BackwardData,
}

/// <summary>The kernel that reads a pack of weights.</summary>
internal enum WeightLayout
{
    /// <summary>The packed GEMM's A tiles (Gemm.cs).</summary>
    Gemm,

    /// <summary>The direct convolutions' channel blocks (DirectConvolution.cs).</summary>
    Direct,

    /// <summary>The direct convolutions' channel blocks of each phase of a stride-2 data gradient in turn
    /// (DirectConvolution.cs, DirectPhase).</summary>
    DirectPhases,

    /// <summary>Winograd F(2x2, 3x3)'s transformed weights (Winograd.cs).</summary>
    Winograd,
}

/// <summary>How a weight buffer is packed: the pass, the kernel that reads it, the convolution group, and the
/// extents the layout depends on (packed rows, depth, taps per filter).</summary>
internal readonly record struct WeightPackKey(WeightPass Pass, WeightLayout Layout, int Group, int Rows, int Depth,
    int KernelArea);

/// <summary>The packs kept for one weight buffer.</summary>
internal sealed unsafe class WeightPacks(CpuBackend owner)
{
    private readonly Dictionary<WeightPackKey, Entry> _entries = [];

    /// <summary>The version last packed under a key, and its kept pack once it has been packed twice.</summary>
    private sealed class Entry
    {
        public long Version;
        public float[]? Kept;
    }

    /// <summary>Where the weights at <paramref name="version"/>, packed as <paramref name="key"/>
    /// (<paramref name="floats"/> floats), belong: a kept pack that already holds them (<paramref name="ready"/>),
    /// else memory to pack them into, kept memory on the second packing at one version and
    /// <paramref name="scratch"/> otherwise (and for a pack too large for one array). With
    /// <paramref name="keepFirst"/> (a pack another pass of the same version reads too) the first packing goes to
    /// kept memory already, which then serves every later version.</summary>
    public float* Find(in WeightPackKey key, long version, long floats, float* scratch, bool keepFirst,
        out bool ready)
    {
        ready = false;
        if (!_entries.TryGetValue(key, out var entry))
        {
            _entries[key] = entry = new Entry { Version = version };
            return keepFirst ? Keep(entry, floats, scratch) : scratch;
        }
        if (entry.Version != version)
        {
            entry.Version = version;
            if (keepFirst) return Keep(entry, floats, scratch);
            Drop(entry);
            return scratch;
        }
        if (entry.Kept is not null)
        {
            ready = true;
            return Aligned(entry.Kept);
        }
        return Keep(entry, floats, scratch);
    }

    /// <summary>The entry's kept memory, allocated now if it has none; <paramref name="scratch"/> for a pack too large
    /// for one array.</summary>
    private float* Keep(Entry entry, long floats, float* scratch)
    {
        if (entry.Kept is not null) return Aligned(entry.Kept);
        if (floats + 16 > Array.MaxLength) return scratch;
        entry.Kept = GC.AllocateUninitializedArray<float>((int)(floats + 16), pinned: true);
        owner.CountKeptWeights(entry.Kept.LongLength);
        return Aligned(entry.Kept);
    }

    /// <summary>Lets every kept pack go (the buffer is being released).</summary>
    public void Release()
    {
        foreach (var entry in _entries.Values) Drop(entry);
    }

    private void Drop(Entry entry)
    {
        if (entry.Kept is null) return;
        owner.CountKeptWeights(-entry.Kept.LongLength);
        entry.Kept = null;
    }

    /// <summary>The first 64-byte boundary inside a pinned array (16 floats of slack were allocated for it).</summary>
    private static float* Aligned(float[] pinned) =>
        (float*)(((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned)) + 63) & ~(nint)63);
}

public sealed unsafe partial class CpuBackend
{
    private long _keptWeightFloats;

    /// <summary>Bytes of packed convolution weights kept between calls for this backend's buffers (WeightPacks.cs):
    /// about the weights' size after repeated inference; in training without evaluation, the forward transforms that
    /// the data gradients of large Winograd layers read (ResNet-18: 62.9 MB).</summary>
    public long KeptWeightPackBytes => Interlocked.Read(ref _keptWeightFloats) * sizeof(float);

    internal void CountKeptWeights(long floats) => Interlocked.Add(ref _keptWeightFloats, floats);

    /// <summary>Where the weights of <paramref name="w"/> packed as <paramref name="key"/> (<paramref name="floats"/>
    /// floats) belong: a kept pack that already holds them (<paramref name="ready"/>: skip packing), or memory to
    /// pack them into (see WeightPacks.Find).</summary>
    private float* WeightPack(DeviceBuffer<float> w, in WeightPackKey key, long floats, float* scratch,
        out bool ready, bool keepFirst = false)
    {
        var buffer = (CpuBuffer<float>)w;
        var packs = buffer.WeightPacks ??= new WeightPacks(this);
        return packs.Find(key, w.Version, floats, scratch, keepFirst, out ready);
    }

    /// <summary>Block <c>b</c> of every phase's packed weights, [block][Depth][ChannelBlock] from the phase's
    /// PackedWeight, for the BlocksPerTask blocks of a task: element j of term d = (g, t), the phase's t-th tap
    /// (DirectPhase.KernelTaps) of source channel g, is w[channel·ChannelStride + g·GroupStride + KernelTaps[t]] for
    /// channel b·ChannelBlock + j (0 past Channels). Forward (Whole: one phase, every tap in order): the channels are
    /// the output channels, g the input channels (strides C·R·S and R·S), so a channel's row of weights is its terms in
    /// order and the block is 8 rows transposed. Backward data: the channels are the input channels, g the output
    /// channels (strides R·S and C·R·S), the taps flipped (stride 1) or a phase's (stride 2): for each g the block's
    /// filters are transposed once (R·S taps × the channels) and each phase's taps copied from it. Element by element,
    /// a channel at a time, ResNet-18's 256×14×14 → 512 3x3/2 packed in 0.92 / 1.64 ms forward / data gradient (its
    /// data gradient a task per phase and block), against 0.45 / 0.49 so, a cost a training step pays for every direct
    /// layer. With AVX-512 (blocks of 8 channels, 32 bytes a term) the packs are stored past the caches and fenced at
    /// the end of each task. Training packs the weights anew on every pass, into memory that a different layer's pack
    /// left in the other core's cache or in memory, and storing through the caches first fetched each line: in one
    /// process, a pass of ResNet-18's 256×14×14 → 512 3x3/2 at batch 8 took 2.77 → 2.53 ms forward and 2.94 → 2.70 ms
    /// data gradient (2.40 / 2.52 with the pack kept), its 1x1/2 layer 0.38 → 0.35 and 0.38 → 0.32.
    /// </summary>
    private struct DirectWeightPackJob : IParallelJob
    {
        public float* Weight;
        public DirectPhase* Phases;
        public int PhaseCount, Channels, SourceChannels, KernelArea, BlocksPerTask;
        public long ChannelStride, GroupStride;
        public bool Whole;

        public readonly void Execute(int task, int worker)
        {
            int block = DirectKernels.ChannelBlock, blocks = (Channels + block - 1) / block;
            bool streamed = block == 8;
            if (Whole)
            {
                int depth = SourceChannels * KernelArea, count = Math.Min(block, Channels - task * block);
                float* packed = Phases[0].PackedWeight + (long)task * depth * block;
                PackedGemm.TransposeRows(Weight + task * block * ChannelStride, ChannelStride, count, packed, block,
                    depth, streamed);
            }
            else PackPhases(task * BlocksPerTask, Math.Min(blocks, (task + 1) * BlocksPerTask), streamed);
            if (streamed) Sse.StoreFence();
        }

        /// <summary>Blocks [<paramref name="firstBlock"/>, <paramref name="endBlock"/>) of each phase, a source
        /// channel g at a time (g's filters of the task's channels lie together in w), those of g +
        /// FilterRowsAhead fetched first where the kernel is 1x1 (several blocks a task).</summary>
        private readonly void PackPhases(int firstBlock, int endBlock, bool streamed)
        {
            int block = DirectKernels.ChannelBlock;
            // A block's filters from g, tap t of channel j at columns[t·block + j]: the weights themselves where
            // one tap's channels lie side by side (1x1 kernels).
            float* buffer = stackalloc float[KernelArea * block];
            long span = KernelArea == 1 ? (long)(Math.Min(Channels, endBlock * block) - firstBlock * block) : 0;
            for (int g = 0; g < SourceChannels; g++)
            {
                float* ahead = Weight + firstBlock * block * ChannelStride + (g + FilterRowsAhead) * GroupStride;
                for (long f = 0; g + FilterRowsAhead < SourceChannels && f < span; f += 16) Sse.Prefetch0(ahead + f);
                for (int b = firstBlock; b < endBlock; b++) PackBlock(b, g, buffer, streamed);
            }
        }

        /// <summary>Block <paramref name="b"/>'s terms of source channel <paramref name="g"/> in each phase.
        /// </summary>
        private readonly void PackBlock(int b, int g, float* buffer, bool streamed)
        {
            int block = DirectKernels.ChannelBlock, count = Math.Min(block, Channels - b * block);
            float* first = Weight + b * block * ChannelStride + g * GroupStride;
            float* columns = ChannelStride == 1 && count == block ? first : buffer;
            if (columns == buffer) PackedGemm.TransposeRows(first, ChannelStride, count, buffer, block, KernelArea);
            for (int p = 0; p < PhaseCount; p++)
            {
                ref var phase = ref Phases[p];
                float* packed = phase.PackedWeight + ((long)b * SourceChannels + g) * phase.Taps * block;
                for (int t = 0; t < phase.Taps; t++)
                {
                    float* column = columns + phase.KernelTaps[t] * block;
                    if (streamed) Avx.StoreAlignedNonTemporal(packed + t * block, Vector256.Load(column));
                    else PackedGemm.CopyRow(column, packed + t * block, block);
                }
            }
        }
    }

    /// <summary>Most channel blocks a task of a 1x1 kernel's data-gradient pack takes: 8 blocks read 256 bytes of
    /// each filter, where one block read 32 bytes every 4 KB or more (1024 or more channels), a wait on memory each.
    /// With FilterRowsAhead, in one process, the weights written before every call as in training: batch-8 data
    /// gradients 1024×14×14 → 2048 1x1/2 6.48 → 5.67 ms, 512×7×7 → 2048 3.04 → 2.63, 2048×7×7 → 512 2.74 → 2.61,
    /// 1024×14×14 → 256 2.53 → 2.38; batch 1 1024×14×14 → 2048 1x1/2 1.83 → 1.38. 3x3 kernels (36 bytes a filter
    /// and block already) ran level or up to 2 % slower so, and keep a block a task.</summary>
    private const int PointwisePackBlocks = 8;

    /// <summary>Filters ahead whose task's channels a 1x1 kernel's data-gradient pack fetches: batch 1, 1024×14×14 →
    /// 2048 1x1/2 1.57 ms with 8 blocks a task and no fetch, 1.38 with filters 8 or 32 ahead.</summary>
    private const int FilterRowsAhead = 16;

    /// <summary>The direct kernels' packed weights of <paramref name="w"/> for <paramref name="pass"/> over
    /// <paramref name="channels"/> channel rows and <paramref name="sourceChannels"/> channels of the source, for
    /// each of the <paramref name="count"/> phases in turn (<paramref name="layout"/>: Direct for a whole kernel,
    /// DirectPhases for a stride-2 data gradient's), each phase's PackedWeight set: kept, or packed now in parallel
    /// (one task per channel block).</summary>
    private void DirectWeights(DeviceBuffer<float> w, WeightPass pass, WeightLayout layout, int channels,
        int sourceChannels, int kernelArea, DirectPhase* phases, int count)
    {
        int block = DirectKernels.ChannelBlock, blocks = (channels + block - 1) / block;
        int depth = DirectPhase.Depth(phases, count, sourceChannels);
        long floats = (long)blocks * depth * block;
        var key = new WeightPackKey(pass, layout, Group: 0, channels, depth, kernelArea);
        var packed = WeightPack(w, key, floats, (float*)WorkerScratch(0, DirectWeightSlot, floats * sizeof(float)),
            out bool ready);
        for (int p = 0; p < count; p++)
        {
            phases[p].PackedWeight = packed;
            packed += (long)blocks * sourceChannels * phases[p].Taps * block;
        }
        if (ready) return;
        bool forward = pass == WeightPass.Forward, whole = forward && count == 1 && phases[0].Taps == kernelArea;
        for (int t = 0; whole && t < kernelArea; t++) whole = phases[0].KernelTaps[t] == t;
        int blocksPerTask = whole || kernelArea > 1 ? 1
            : Math.Clamp(blocks / (4 * ThreadCount), 1, PointwisePackBlocks);
        var job = new DirectWeightPackJob
        {
            Weight = Data(w), Phases = phases, PhaseCount = count, Channels = channels, SourceChannels = sourceChannels,
            KernelArea = kernelArea, ChannelStride = forward ? (long)sourceChannels * kernelArea : kernelArea,
            GroupStride = forward ? kernelArea : (long)channels * kernelArea, Whole = whole,
            BlocksPerTask = blocksPerTask,
        };
        Parallel((blocks + blocksPerTask - 1) / blocksPerTask, ref job);
    }
}
