// Reductions: the sum of a whole buffer (sum and mean of a tensor, and their backward through BroadcastScalar),
// and the per-channel sum and add of [N, C, HW] tensors (bias gradients and bias add).
//
// Deterministic by construction: the whole-buffer sum cuts x into fixed chunks of ChunkLength elements (whatever
// the thread count), sums each chunk into its own partial, then adds the partials in order on the calling thread.
// Per-channel sums are one task per channel.
//
// Accurate for any length: every sum here is pairwise — runs of at most PairwiseBlock elements are summed by the
// vector loop (4 vectors of accumulators, so no accumulator adds more than PairwiseBlock / 32 float values; with
// one, the squared deviations of batch-norm's statistics ran at an add's latency a vector), and longer runs are
// split in two halves whose sums are added — and a channel's planes are added pairwise over the batch too, so the
// float32 rounding error grows with log(n), not n (a long sequential run stalls once its sum outgrows the addends).
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void SumCore<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result)
    {
        int chunks = ChunkCount(x.Length);
        var partials = (T*)WorkerScratch(0, PartialsSlot, Math.Max(chunks, 1) * sizeof(T));
        var job = new ChunkSumJob<T> { X = Data(x), Length = x.Length, Partials = partials };
        Parallel(chunks, ref job);
        T total = T.Zero;
        for (int i = 0; i < chunks; i++) total += partials[i];
        Data(result)[0] = alpha * total;
    }

    /// <inheritdoc/>
    protected override void SumPerChannelCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> result)
    {
        var job = new ChannelSumJob<T>
            { X = Data(x), Result = Data(result), Batch = batch, Channels = channels, Spatial = spatial };
        Parallel(channels, ref job);
    }

    /// <inheritdoc/>
    protected override void AddPerChannelCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> bias,
        DeviceBuffer<T> y)
    {
        AddPerChannel(batch, channels, spatial, Data(bias), Data(y));
    }

    private void AddPerChannel<T>(int batch, int channels, int spatial, T* bias, T* y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int planesPerTask = Math.Max(1, ChunkLength / Math.Max(spatial, 1));
        int planes = batch * channels;
        var job = new ChannelAddJob<T>
        {
            Bias = bias, Y = y, Channels = channels, Spatial = spatial, Planes = planes, PlanesPerTask = planesPerTask,
        };
        Parallel((planes + planesPerTask - 1) / planesPerTask, ref job);
    }

    /// <summary>Longest run summed by one vector loop; longer runs are split in halves (pairwise summation).</summary>
    private const int PairwiseBlock = 1024;

    /// <summary>Sum of x[0 … n−1], pairwise (see the file header), always in the same order.</summary>
    internal static T Sum<T>(T* x, long n) where T : unmanaged, IFloatingPointIeee754<T> =>
        PairwiseSum(x, n, new PlainValues<T>());

    /// <summary>Σ over the batch of the plane sums of channel <paramref name="channel"/> in [N, C, HW],
    /// pairwise over images and within each plane.</summary>
    private static T ChannelSum<T>(T* x, int firstImage, int images, int channels, int spatial, int channel)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (images == 1) return Sum(x + ((long)firstImage * channels + channel) * spatial, spatial);
        int half = images / 2;
        return ChannelSum(x, firstImage, half, channels, spatial, channel) +
               ChannelSum(x, firstImage + half, images - half, channels, spatial, channel);
    }

    private static T PairwiseSum<T, TValues>(T* x, long n, TValues values)
        where T : unmanaged, IFloatingPointIeee754<T> where TValues : struct, IBlockValues<T>
    {
        if (n <= PairwiseBlock) return BlockSum(x, n, values);
        long half = n / 2 / PairwiseBlock * PairwiseBlock; // whole blocks on the left keep the vector loads aligned
        if (half == 0) half = n / 2;
        return PairwiseSum(x, half, values) + PairwiseSum(x + half, n - half, values);
    }

    /// <summary>What a pairwise sum adds up: a value of each element, a vector or one at a time.</summary>
    internal interface IBlockValues<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        Vector256<T> Of(Vector256<T> x);

        T Of(T x);
    }

    /// <summary>The elements themselves.</summary>
    internal struct PlainValues<T> : IBlockValues<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public readonly Vector256<T> Of(Vector256<T> x) => x;

        public readonly T Of(T x) => x;
    }

    /// <summary>(x − Mean)², the terms of a variance.</summary>
    internal struct SquaredDeviations<T> : IBlockValues<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T Mean;

        public readonly Vector256<T> Of(Vector256<T> x)
        {
            var d = x - Vector256.Create(Mean);
            return d * d;
        }

        public readonly T Of(T x) => (x - Mean) * (x - Mean);
    }

    /// <summary>Sum of the values of a short run x[0 … n−1] by the vector loop, always in the same order.</summary>
    private static T BlockSum<T, TValues>(T* x, long n, TValues values)
        where T : unmanaged, IFloatingPointIeee754<T> where TValues : struct, IBlockValues<T>
    {
        Vector256<T> acc0 = Vector256<T>.Zero, acc1 = acc0, acc2 = acc0, acc3 = acc0;
        long i = 0;
        int width = Vector256<T>.Count;
        for (; i + 4 * width <= n; i += 4 * width)
        {
            acc0 += values.Of(Vector256.Load(x + i));
            acc1 += values.Of(Vector256.Load(x + i + width));
            acc2 += values.Of(Vector256.Load(x + i + 2 * width));
            acc3 += values.Of(Vector256.Load(x + i + 3 * width));
        }
        for (; i + width <= n; i += width) acc0 += values.Of(Vector256.Load(x + i));
        T sum = Vector256.Sum((acc0 + acc1) + (acc2 + acc3));
        for (; i < n; i++) sum += values.Of(x[i]);
        return sum;
    }

    /// <summary>partials[task] = sum of chunk <c>task</c>.</summary>
    private struct ChunkSumJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, Partials;
        public long Length;

        public void Execute(int task, int worker)
        {
            long start = (long)task * ChunkLength;
            Partials[task] = Sum(X + start, Math.Min(ChunkLength, Length - start));
        }
    }

    /// <summary>result[c] = sum over n of the sum of plane (n, c), for channel c = task.</summary>
    private struct ChannelSumJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, Result;
        public int Batch, Channels, Spatial;

        public void Execute(int task, int worker)
        {
            Result[task] = ChannelSum(X, 0, Batch, Channels, Spatial, task);
        }
    }

    /// <summary>y[plane] += bias[plane mod C] for PlanesPerTask planes.</summary>
    private struct ChannelAddJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Bias, Y;
        public int Channels, Spatial, Planes, PlanesPerTask;

        public void Execute(int task, int worker)
        {
            int end = Math.Min(Planes, (task + 1) * PlanesPerTask);
            for (int plane = task * PlanesPerTask; plane < end; plane++)
            {
                T* row = Y + (long)plane * Spatial;
                T b = Bias[plane % Channels];
                var bv = Vector256.Create(b);
                int i = 0;
                for (; i + Vector256<T>.Count <= Spatial; i += Vector256<T>.Count)
                    (Vector256.Load(row + i) + bv).Store(row + i);
                for (; i < Spatial; i++) row[i] += b;
            }
        }
    }
}
