// Reductions as ILGPU kernels: the sum of a whole buffer (sum and mean of a tensor, and their backward through
// BroadcastScalar in Elementwise.cs), the per-channel sum of an [N, C, HW] tensor (bias gradients), and the
// group-wide sum that the per-channel kernels here and in BatchNorm.cs share.
//
// Deterministic by construction: no atomics (ILGPU.Algorithms' Reduce ends in Atomic.Add, whose float results
// change from run to run) and no group barriers (which crawl on the CPU accelerator). Each pass has `partials`
// threads; thread t sums x[t], x[t + partials], … in a fixed order (coalesced on a GPU) and writes one partial.
// Every pass divides the length by FanIn, so 1M elements take 4 launches; the last pass scales by alpha. No thread
// adds more than FanIn elements, whatever the device's thread count: the sum is a tree of FanIn-wide nodes, whose
// float32 rounding error grows with log(n), not n (a long sequential run stalls once the sum outgrows its addends).
//
// Per-channel sums run one group per channel (grid = C): thread t of G sums elements t, t+G, … of the
// channel's N·HW values (neighbouring threads read neighbouring addresses), then the group adds its G partials
// with an IGroupSum: a fixed shuffle tree per warp, then the warps' sums in warp order (CUDA and the CPU
// accelerator), or a shared-memory tree (OpenCL, whose devices need not offer sub-group shuffles). The order never
// changes, so results are reproducible. (Batch-norm splits each channel over many groups: BatchNorm.cs.)
// A thread's own run, which for one long channel holds millions of values, is summed by BlockedSum: three nested
// levels of at most BlockLength additions each, so the rounding error stays that of a short sum, whatever the
// length (global average pooling sums each plane the same way).
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The deterministic reduction kernels (no atomics: fixed summation orders) and the group-wide sum that the
/// per-channel kernels share.</summary>
public static class ReductionKernels
{
    /// <summary>partial[t] = alpha * sum over i ≡ t (mod partial.Length) of x[i].</summary>
    public static void StridedSum<T>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> partial, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        long stride = partial.Length;
        T sum = T.Zero;
        for (long i = thread; i < x.Length; i += stride)
            sum += x[i];
        partial[thread] = alpha * sum;
    }

    /// <summary>Longest run of additions at each level of <see cref="BlockedSum"/>.</summary>
    private const long BlockLength = 64;

    /// <summary>Σ values.At(first + j·step) over j in [0, length): runs of BlockLength values are summed, runs of
    /// BlockLength such sums are summed, and so on for three levels (BlockLength³ = 2^18 values), then those
    /// partials in order; the same order every time.</summary>
    internal static T BlockedSum<T, TValues>(TValues values, long first, long step, long length)
        where T : unmanaged, IFloatingPointIeee754<T> where TValues : struct, IIndexedValues<T>
    {
        T total = T.Zero;
        for (long j2 = 0; j2 < length; j2 += BlockLength * BlockLength * BlockLength)
        {
            long end2 = length < j2 + BlockLength * BlockLength * BlockLength
                ? length : j2 + BlockLength * BlockLength * BlockLength;
            T sum2 = T.Zero;
            for (long j1 = j2; j1 < end2; j1 += BlockLength * BlockLength)
            {
                long end1 = end2 < j1 + BlockLength * BlockLength ? end2 : j1 + BlockLength * BlockLength;
                T sum1 = T.Zero;
                for (long j0 = j1; j0 < end1; j0 += BlockLength)
                {
                    long end0 = end1 < j0 + BlockLength ? end1 : j0 + BlockLength;
                    T sum0 = T.Zero;
                    for (long j = j0; j < end0; j++) sum0 += values.At(first + j * step);
                    sum1 += sum0;
                }
                sum2 += sum1;
            }
            total += sum2;
        }
        return total;
    }

    /// <summary>How many of the elements t, t + step, t + 2·step, … lie below <paramref name="count"/>.</summary>
    internal static long StridedCount(int t, int step, int count) => t < count ? (count - t + step - 1L) / step : 0;

    /// <summary>Element <paramref name="i"/> (of N·HW) of channel <paramref name="channel"/> in an [N, C, HW]
    /// tensor.</summary>
    internal static long ChannelElement(int i, int channel, int channels, int spatial)
    {
        int image = i / spatial;
        return ((long)image * channels + channel) * spatial + (i - image * spatial);
    }

    /// <summary>result[c] = Σ_{n, hw} x[n, c, hw]; one group per channel.</summary>
    public static void SumPerChannel<T, TGroupSum>(ArrayView<T> x, ArrayView<T> result, int channels, int spatial,
        int count) where T : unmanaged, IFloatingPointIeee754<T> where TGroupSum : struct, IGroupSum<T>
    {
        int channel = Grid.IdxX;
        T sum = BlockedSum<T, ChannelValues<T>>(new ChannelValues<T>(x, channel, channels, spatial), Group.IdxX,
            Group.DimX, StridedCount(Group.IdxX, Group.DimX, count));
        T total = default(TGroupSum).Sum(sum, SharedMemory.GetDynamic<T>());
        if (Group.IdxX == 0) result[channel] = total;
    }
}

/// <summary>The sum of one value per thread over a group, returned to every thread in a fixed order. The group size
/// is a power of two and a multiple of the warp size; the scratch holds one element per thread.</summary>
public interface IGroupSum<T> where T : unmanaged
{
    /// <summary>Σ <paramref name="value"/> over the group's threads, the same in every thread.</summary>
    T Sum(T value, ArrayView<T> scratch);
}

/// <summary>A shuffle tree within each warp (<c>shfl.sync.down</c>), one shared slot per warp, then every thread adds
/// the warps' sums in warp order: two barriers.</summary>
public readonly struct WarpShuffleSum<T> : IGroupSum<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Sum(T value, ArrayView<T> scratch)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            value += Warp.ShuffleDown(value, offset);
        if (Warp.LaneIdx == 0) scratch[Warp.WarpIdx] = value;
        Group.Barrier();
        T total = scratch[0];
        int warps = Group.DimX >> Log2(Warp.WarpSize);
        for (int w = 1; w < warps; w++) total += scratch[w];
        Group.Barrier(); // every thread has read the warps' sums before the scratch is reused
        return total;
    }

    /// <summary>log2 of a power of two, by shifts (no division in the loop that follows).</summary>
    private static int Log2(int powerOfTwo)
    {
        int log = 0;
        while ((1 << log) < powerOfTwo) log++;
        return log;
    }
}

/// <summary>A tree in shared memory, halving the active threads per level: 2 + log2(group) barriers. For devices
/// without sub-group shuffles (OpenCL).</summary>
public readonly struct SharedTreeSum<T> : IGroupSum<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Sum(T value, ArrayView<T> scratch)
    {
        int thread = Group.IdxX;
        scratch[thread] = value;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half /= 2)
        {
            if (thread < half) scratch[thread] += scratch[thread + half];
            Group.Barrier();
        }
        T total = scratch[0];
        Group.Barrier(); // every thread has read the total before the scratch is reused
        return total;
    }
}

/// <summary>Values that <see cref="ReductionKernels.BlockedSum"/> adds, by index.</summary>
internal interface IIndexedValues<T> where T : unmanaged
{
    /// <summary>Value <paramref name="i"/>.</summary>
    T At(long i);
}

/// <summary>Value i is element i (of N·HW) of one channel of an [N, C, HW] tensor.</summary>
internal readonly struct ChannelValues<T>(ArrayView<T> x, int channel, int channels, int spatial) : IIndexedValues<T>
    where T : unmanaged
{
    /// <inheritdoc/>
    public T At(long i) => x[ReductionKernels.ChannelElement((int)i, channel, channels, spatial)];
}

/// <summary>Value i is x[i].</summary>
internal readonly struct ViewValues<T>(ArrayView<T> x) : IIndexedValues<T> where T : unmanaged
{
    /// <inheritdoc/>
    public T At(long i) => x[i];
}

public sealed partial class IlgpuBackend
{
    /// <summary>Each pass sums at least this many elements per thread.</summary>
    private const int FanIn = 32;

    /// <inheritdoc/>
    protected override void SumCore<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result)
    {
        ArrayView<T> input = View(x);
        long partialLength = PartialCount(x.Length);
        MemoryBuffer1D<T, Stride1D.Dense>[] scratch =
            [ScratchBuffer<T>(SumSlotA, partialLength), ScratchBuffer<T>(SumSlotB, partialLength)];
        bool intoFirst = true;
        while (input.Length > 1)
        {
            long partials = PartialCount(input.Length);
            bool last = partials == 1;
            ArrayView<T> output = last ? View(result) : scratch[intoFirst ? 0 : 1].View.SubView(0, partials);
            var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, T>>(
                nameof(ReductionKernels.StridedSum),
                static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, T>(
                    ReductionKernels.StridedSum));
            kernel(_accelerator.DefaultStream, checked((int)partials), input, output, last ? alpha : T.One);
            input = output;
            intoFirst = !intoFirst;
        }

        if (x.Length == 1) MapCore(x, new ScaleOp<T>(alpha), result);
    }

    /// <summary>Threads per group for the per-channel reductions: a power of two, 256 where the device allows, and
    /// at least one warp (a warp-shuffle group sum reduces whole warps).</summary>
    private int ChannelGroupSize()
    {
        int size = 1;
        while (size * 2 <= Math.Min(256, MaxGroupSize)) size *= 2;
        return Math.Max(size, _accelerator.WarpSize);
    }

    /// <summary>True where group sums use warp shuffles (CUDA, the CPU accelerator); OpenCL uses the shared-memory
    /// tree, since its devices need not offer sub-group shuffles.</summary>
    private bool ShufflesWarps => _accelerator.AcceleratorType != AcceleratorType.OpenCL;

    /// <summary>One group per channel with <see cref="ChannelGroupSize"/> threads and scratch for a group sum.</summary>
    private KernelConfig PerChannelConfig<T>(int channels) where T : unmanaged
    {
        int group = ChannelGroupSize();
        return new KernelConfig(new Index3D(channels, 1, 1), new Index3D(group, 1, 1),
            SharedMemoryConfig.RequestDynamic<T>(group));
    }

    /// <inheritdoc/>
    protected override void SumPerChannelCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> result)
    {
        if (ShufflesWarps) SumPerChannel<T, WarpShuffleSum<T>>(batch, channels, spatial, x, result);
        else SumPerChannel<T, SharedTreeSum<T>>(batch, channels, spatial, x, result);
    }

    private void SumPerChannel<T, TGroupSum>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> result) where T : unmanaged, IFloatingPointIeee754<T> where TGroupSum : struct, IGroupSum<T>
    {
        var kernel = Kernel<TGroupSum, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, int, int,
            int>>(nameof(ReductionKernels.SumPerChannel),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, int, int, int>(
                ReductionKernels.SumPerChannel<T, TGroupSum>));
        kernel(_accelerator.DefaultStream, PerChannelConfig<T>(channels), View(x), View(result), channels, spatial,
            checked(batch * spatial));
    }

    private static long PartialCount(long n) => n <= FanIn ? 1 : (n + FanIn - 1) / FanIn;

    /// <summary>Scratch slots: the sum's two ping-pong buffers, the GEMM's split-K partials, and the batch-norm
    /// reductions' per-range partials.</summary>
    private const int SumSlotA = 0, SumSlotB = 1, SplitSlot = 2, BatchNormSlot = 3;

    private readonly Dictionary<(Type Element, int Slot), object> _scratch = new();

    /// <summary>A device buffer of at least <paramref name="length"/> elements kept in <paramref name="slot"/> for
    /// reuse (grown when too small; ops on the one stream never use a slot concurrently).</summary>
    private MemoryBuffer1D<T, Stride1D.Dense> ScratchBuffer<T>(int slot, long length) where T : unmanaged
    {
        length = Math.Max(length, 1);
        if (_scratch.TryGetValue((typeof(T), slot), out var found) &&
            found is MemoryBuffer1D<T, Stride1D.Dense> buffer && buffer.Length >= length)
            return buffer;
        if (found is IDisposable old)
        {
            SynchronizeCore(); // queued kernels may still read the old buffer
            old.Dispose();
        }
        var fresh = _accelerator.Allocate1D<T>(length);
        _scratch[(typeof(T), slot)] = fresh;
        return fresh;
    }
}
