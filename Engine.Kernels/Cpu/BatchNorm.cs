// Batch normalisation over x, y [N, C, HW] with per-channel vectors [C]: training forward (batch statistics,
// running-statistics update as PyTorch, or with the biased variance as ONNX), inference forward, backward for both
// modes, and 1/sqrt(var + eps).
//
// Work is cut into blocks fixed by the shape alone (ChannelBlocks): a plane (n, c), or a piece of ChunkLength
// elements of a longer one; each task runs a stretch of consecutive blocks in memory order, so every pass reads and
// writes contiguous memory (a channel's planes lie a whole image apart: walked channel by channel, a 32x32 map's
// batch-norm ran at a third of the copy bandwidth). The statistics pass gives each block its mean and the sum of
// squared deviations from that mean (two passes over the block while it sits in the cache, so never x² − mean²);
// a channel's blocks are combined in order, in float64 (the channel's mean from the blocks' means, then each
// block's squared deviations moved to it); the normalisation pass writes y.
// Backward is two passes too (the sums must be complete before dx): each block's Σ dy and Σ dy·x̂ are added in
// order in float64, then dx is written. Combines run in a fixed order, so the result does not depend on
// the thread count. The residual add and the ReLU that follow batch-norm in a ResNet block can be fused:
// forward adds the residual and clamps as it writes; backward reads dy only where the output is positive and
// writes that masked dy as the residual's gradient in its first pass, which the second pass then reads instead of
// dy and the output.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void BatchNormForwardTrainingCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double momentum, double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd,
        bool relu, RunningVarianceUpdate varianceUpdate, DeviceBuffer<T>? residual)
    {
        var blocks = new ChannelBlocks(batch, channels, spatial);
        // The blocks' (mean, squared deviations), then each channel's (scale, shift) for the normalisation.
        var partials = (T*)WorkerScratch(0, PartialsSlot, (2L * blocks.Count + 2L * channels) * sizeof(T));
        T* scaleShift = partials + 2L * blocks.Count;
        RunChannelPasses(blocks, channels,
            new BlockStatisticsJob<T> { X = Data(x), Partials = partials },
            new ChannelStatistics<T>
            {
                Partials = partials, Blocks = blocks, Mean = Data(savedMean), InvStd = Data(savedInvStd),
                Gamma = Data(gamma), Beta = Data(beta), RunningMean = Data(runningMean),
                RunningVar = Data(runningVar), ScaleShift = scaleShift, Epsilon = T.CreateTruncating(epsilon),
                Momentum = T.CreateTruncating(momentum),
                UnbiasedRunningVariance = varianceUpdate == RunningVarianceUpdate.Unbiased,
            },
            new BlockNormalizeJob<T>
            {
                X = Data(x), Residual = residual is null ? null : Data(residual), Y = Data(y),
                ScaleShift = scaleShift, Relu = relu, Streaming = Streams(x.Length, sizeof(T)),
            });
    }

    /// <summary>A channel's step between the two passes over its blocks: it combines the first pass's partials.
    /// </summary>
    private interface IChannelCombine
    {
        void Combine(int c);
    }

    /// <summary>The combines of channels [task·PerTask, (task + 1)·PerTask): a task per channel cost more to claim
    /// than its few partials to add (256 channels of 8 blocks: 0.04–0.05 ms a call).</summary>
    private struct ChannelCombineJob<TCombine> : IParallelJob where TCombine : struct, IChannelCombine
    {
        public TCombine Finish;
        public int Channels, PerTask;

        public readonly void Execute(int task, int worker)
        {
            for (int c = task * PerTask, end = Math.Min(Channels, c + PerTask); c < end; c++) Finish.Combine(c);
        }
    }

    /// <summary>The work on one block.</summary>
    private interface IBlockJob
    {
        /// <summary>Block number <paramref name="block"/> (c·PerChannel + b, its partials' place), of channel
        /// <paramref name="c"/>, whose <paramref name="length"/> elements start at <paramref name="at"/> in
        /// [N, C, HW].</summary>
        void Run(int block, int c, long at, int length);
    }

    /// <summary>A per-block job run over the blocks in memory order: task t runs stretch t of
    /// <see cref="ChannelBlocks.StretchBlocks"/> consecutive blocks, its first block's place found by division and
    /// the rest stepped (a division per block cost as much as the work on ResNet-20's 8x8 planes).</summary>
    private struct BlockStretchJob<TBlock> : IParallelJob where TBlock : struct, IBlockJob
    {
        public TBlock Block;
        public ChannelBlocks Blocks;

        public void Execute(int task, int worker)
        {
            int m = task * Blocks.StretchBlocks, end = (int)Math.Min(Blocks.Count, (long)m + Blocks.StretchBlocks);
            int pieces = Blocks.PiecesPerPlane, plane = m / pieces, piece = m % pieces;
            int n = plane / Blocks.Channels, c = plane % Blocks.Channels;
            long at = (long)plane * Blocks.Spatial + piece * ChunkLength;
            for (; m < end; m++)
            {
                int length = Blocks.PieceLength(piece);
                Block.Run(c * Blocks.PerChannel + n * pieces + piece, c, at, length);
                at += length;
                if (++piece < pieces) continue;
                piece = 0;
                if (++c < Blocks.Channels) continue;
                c = 0;
                n++;
            }
            if (Sse.IsSupported) Sse.StoreFence(); // a block job's streamed stores are visible before the task is done
        }
    }

    /// <summary>Runs <paramref name="block"/> over every block, in stretches of memory order.</summary>
    private void RunBlocks<TBlock>(ChannelBlocks blocks, TBlock block) where TBlock : struct, IBlockJob
    {
        var job = new BlockStretchJob<TBlock> { Block = block, Blocks = blocks };
        Parallel(blocks.Stretches, ref job);
    }

    /// <summary>The two passes of a batch-norm op over the blocks, with every channel's combine between them
    /// (statistics, combine, normalisation; or gradient sums, combine, dx).</summary>
    private void RunChannelPasses<TFirst, TCombine, TSecond>(ChannelBlocks blocks, int channels, TFirst first,
        TCombine finish, TSecond second)
        where TFirst : struct, IBlockJob where TCombine : struct, IChannelCombine
        where TSecond : struct, IBlockJob
    {
        RunBlocks(blocks, first);
        // About 4096 partials a task, and at least two tasks a thread.
        int perTask = Math.Clamp(4096 / blocks.PerChannel, 1, Math.Max(1, channels / (2 * ThreadCount)));
        var combine = new ChannelCombineJob<TCombine> { Finish = finish, Channels = channels, PerTask = perTask };
        Parallel((channels + perTask - 1) / perTask, ref combine);
        RunBlocks(blocks, second);
    }

    /// <summary>A channel's statistics from its blocks' partials: the blocks combined in order, in float64, then the
    /// saved mean and 1/std, the running statistics, and (scale, shift) for the normalisation.</summary>
    private struct ChannelStatistics<T> : IChannelCombine where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Partials, Mean, InvStd, Gamma, Beta, RunningMean, RunningVar, ScaleShift;
        public ChannelBlocks Blocks;
        public T Epsilon, Momentum;
        public bool UnbiasedRunningVariance;

        public readonly void Combine(int c)
        {
            // The channel's mean from the blocks' means, then each block's squared deviations moved to it
            // (M2_b + n_b·(mean_b − mean)²): no division per block, as Chan's running form had two.
            T* partials = Partials + 2L * c * Blocks.PerChannel;
            double count = 0, sum = 0, squares = 0;
            for (int b = 0; b < Blocks.PerChannel; b++)
            {
                double blockCount = Blocks.Length(b);
                sum += blockCount * double.CreateTruncating(partials[2 * b]);
                count += blockCount;
            }
            double channelMean = sum / count;
            for (int b = 0; b < Blocks.PerChannel; b++)
            {
                double delta = double.CreateTruncating(partials[2 * b]) - channelMean;
                squares += double.CreateTruncating(partials[2 * b + 1]) + Blocks.Length(b) * delta * delta;
            }
            T m = T.CreateTruncating(channelMean), variance = T.CreateTruncating(squares / count);
            T s = T.One / T.Sqrt(variance + Epsilon);
            Mean[c] = m;
            InvStd[c] = s;
            ScaleShift[2 * c] = s * Gamma[c];
            ScaleShift[2 * c + 1] = Beta[c] - m * (s * Gamma[c]);
            T runningUpdate = UnbiasedRunningVariance ? T.CreateTruncating(squares / (count - 1)) : variance;
            RunningMean[c] = (T.One - Momentum) * RunningMean[c] + Momentum * m;
            RunningVar[c] = (T.One - Momentum) * RunningVar[c] + Momentum * runningUpdate;
        }
    }

    /// <inheritdoc/>
    protected override void BatchNormForwardInferenceCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double epsilon, DeviceBuffer<T> y, bool relu, DeviceBuffer<T>? residual)
    {
        T* gammas = Data(gamma), betas = Data(beta), runMean = Data(runningMean), runVar = Data(runningVar);
        T eps = T.CreateTruncating(epsilon);
        var scaleShift = (T*)WorkerScratch(0, PartialsSlot, 2L * channels * sizeof(T));
        for (int c = 0; c < channels; c++)
        {
            T scale = T.One / T.Sqrt(runVar[c] + eps) * gammas[c];
            scaleShift[2 * c] = scale;
            scaleShift[2 * c + 1] = betas[c] - runMean[c] * scale;
        }
        Normalize(new ChannelBlocks(batch, channels, spatial), x, residual, y, scaleShift, relu);
    }

    /// <inheritdoc/>
    protected override void BatchNormBackwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> dy,
        DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd, bool batchStatistics,
        DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta, DeviceBuffer<T>? reluOutput,
        DeviceBuffer<T>? residualGradient)
    {
        var blocks = new ChannelBlocks(batch, channels, spatial);
        // The blocks' (Σ dy, Σ dy·x̂), then each channel's (gamma·invStd, meanDy, meanDyXhat) for dx.
        var partials = (T*)WorkerScratch(0, PartialsSlot, (2L * blocks.Count + 3L * channels) * sizeof(T));
        T* coefficients = partials + 2L * blocks.Count;
        T* means = Data(mean), invStds = Data(invStd);
        RunChannelPasses(blocks, channels,
            new BlockGradientSumsJob<T>
            {
                X = Data(x), DY = Data(dy), ReluOutput = reluOutput is null ? null : Data(reluOutput),
                ResidualGradient = residualGradient is null ? null : Data(residualGradient), Mean = means,
                InvStd = invStds, Partials = partials, Streaming = Streams(x.Length, sizeof(T)),
            },
            new ChannelGradients<T>
            {
                Partials = partials, Blocks = blocks, Gamma = Data(gamma), InvStd = invStds, DGamma = Data(dgamma),
                DBeta = Data(dbeta), Coefficients = coefficients, BatchStatistics = batchStatistics,
            },
            new BlockInputGradientJob<T>
            {
                X = Data(x), DY = residualGradient is null ? Data(dy) : Data(residualGradient),
                // The residual's gradient is dy already masked: read it instead of dy and the output.
                ReluOutput = reluOutput is null || residualGradient is not null ? null : Data(reluOutput),
                Mean = means, InvStd = invStds, Coefficients = coefficients, DX = Data(dx),
                BatchStatistics = batchStatistics, Streaming = Streams(x.Length, sizeof(T)),
            });
    }

    /// <summary>A channel's Σ dy and Σ dy·x̂ from its blocks' partials, added in order in float64: dbeta, dgamma,
    /// and dx's coefficients (gamma·invStd, meanDy, meanDyXhat; the means 0 without batch statistics).</summary>
    private struct ChannelGradients<T> : IChannelCombine where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Partials, Gamma, InvStd, DGamma, DBeta, Coefficients;
        public ChannelBlocks Blocks;
        public bool BatchStatistics;

        public readonly void Combine(int c)
        {
            double sumDy = 0, sumDyXhat = 0;
            for (int b = 0; b < Blocks.PerChannel; b++)
            {
                T* partial = Partials + 2L * (c * Blocks.PerChannel + b);
                sumDy += double.CreateTruncating(partial[0]);
                sumDyXhat += double.CreateTruncating(partial[1]);
            }
            double count = (double)Blocks.Batch * Blocks.Spatial;
            DBeta[c] = T.CreateTruncating(sumDy);
            DGamma[c] = T.CreateTruncating(sumDyXhat);
            Coefficients[3 * c] = Gamma[c] * InvStd[c];
            Coefficients[3 * c + 1] = BatchStatistics ? T.CreateTruncating(sumDy / count) : T.Zero;
            Coefficients[3 * c + 2] = BatchStatistics ? T.CreateTruncating(sumDyXhat / count) : T.Zero;
        }
    }

    /// <inheritdoc/>
    protected override void InverseStandardDeviationCore<T>(DeviceBuffer<T> variance, double epsilon,
        DeviceBuffer<T> invStd)
    {
        T eps = T.CreateTruncating(epsilon);
        T* v = Data(variance), result = Data(invStd);
        for (long c = 0; c < variance.Length; c++) result[c] = T.One / T.Sqrt(v[c] + eps);
    }

    /// <summary>y = x·scale + shift (+ residual), clamped at 0 when <paramref name="relu"/>, over the blocks in
    /// memory order; <paramref name="scaleShift"/> holds (scale, shift) per channel.</summary>
    private void Normalize<T>(ChannelBlocks blocks, DeviceBuffer<T> x, DeviceBuffer<T>? residual, DeviceBuffer<T> y,
        T* scaleShift, bool relu) where T : unmanaged, IFloatingPointIeee754<T>
    {
        RunBlocks(blocks, new BlockNormalizeJob<T>
        {
            X = Data(x), Residual = residual is null ? null : Data(residual), Y = Data(y), ScaleShift = scaleShift,
            Relu = relu, Streaming = Streams(x.Length, sizeof(T)),
        });
    }

    /// <summary>
    /// The blocks of [N, C, HW], fixed by the shape (the same for every thread count): a whole plane (n, c), or for
    /// a plane longer than ChunkLength, pieces of ChunkLength elements (the last piece of a plane may be shorter).
    /// Block b of channel c, numbered c·PerChannel + b (its partials' place, so a channel's blocks are combined in
    /// order), is piece b % PiecesPerPlane of plane n = b / PiecesPerPlane. The blocks run in memory order, in
    /// stretches of about ChunkLength elements.
    /// </summary>
    private readonly struct ChannelBlocks
    {
        public readonly int Batch, Channels, Spatial, PiecesPerPlane, PerChannel, StretchBlocks;

        public ChannelBlocks(int batch, int channels, int spatial)
        {
            Batch = batch;
            Channels = channels;
            Spatial = spatial;
            int blockLength = Math.Clamp(spatial, 1, ChunkLength);
            PiecesPerPlane = Math.Max(1, (spatial + ChunkLength - 1) / ChunkLength);
            PerChannel = batch * PiecesPerPlane;
            StretchBlocks = ChunkLength / blockLength;
        }

        /// <summary>Blocks of all channels.</summary>
        public int Count => Channels * PerChannel;

        /// <summary>Stretches of blocks in memory order: the task count.</summary>
        public int Stretches => (Count + StretchBlocks - 1) / StretchBlocks;

        /// <summary>Elements of block <paramref name="b"/> of a channel.</summary>
        public long Length(int b) => PieceLength(b % PiecesPerPlane);

        /// <summary>Elements of piece <paramref name="piece"/> of a plane.</summary>
        public int PieceLength(int piece) => Math.Min(ChunkLength, Spatial - piece * ChunkLength);
    }

    /// <summary>Block <c>block</c> (c·PerChannel + b): partials[2·block] = its mean, partials[2·block + 1] =
    /// Σ (x − that mean)², both pairwise (Reduction.cs); the second pass finds the block in the cache.</summary>
    private struct BlockStatisticsJob<T> : IBlockJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, Partials;

        public void Run(int block, int c, long at, int length)
        {
            T* xs = X + at;
            T mean = PairwiseSum(xs, length, new PlainValues<T>()) / T.CreateTruncating(length);
            Partials[2L * block] = mean;
            Partials[2L * block + 1] = PairwiseSum(xs, length, new SquaredDeviations<T> { Mean = mean });
        }
    }

    /// <summary>A block: y = max(x·scale + shift (+ residual), floor), floor 0 with the fused ReLU and
    /// −∞ without (so NaN propagates either way).</summary>
    private struct BlockNormalizeJob<T> : IBlockJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, Residual, Y, ScaleShift;
        public bool Relu, Streaming;

        public void Run(int block, int c, long at, int length)
        {
            T scale = ScaleShift[2 * c], shift = ScaleShift[2 * c + 1];
            var vScale = Vector256.Create(scale);
            var vShift = Vector256.Create(shift);
            var floor = Relu ? Vector256<T>.Zero : Vector256.Create(T.NegativeInfinity);
            T scalarFloor = Relu ? T.Zero : T.NegativeInfinity;
            T* xs = X + at, ys = Y + at, rs = Residual is null ? null : Residual + at;
            int i = 0;
            if (Streaming && WholeLines(ys, length))
            {
                for (; i < length; i += Vector256<T>.Count)
                    Normalized(xs, rs, i, vScale, vShift, floor).StoreAlignedNonTemporal(ys + i);
                return;
            }
            for (; i + Vector256<T>.Count <= length; i += Vector256<T>.Count)
                Normalized(xs, rs, i, vScale, vShift, floor).Store(ys + i);
            for (; i < length; i++)
            {
                T v = xs[i] * scale + shift;
                if (rs is not null) v += rs[i];
                ys[i] = T.Max(v, scalarFloor);
            }
        }
    }

    /// <summary>max(x·scale + shift (+ residual), floor) at element i.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Normalized<T>(T* xs, T* rs, int i, Vector256<T> scale, Vector256<T> shift,
        Vector256<T> floor) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var v = Vector256.Load(xs + i) * scale + shift;
        if (rs is not null) v += Vector256.Load(rs + i);
        return Vector256.Max(v, floor);
    }

    /// <summary>Whether a block's <paramref name="length"/> elements at <paramref name="start"/> are whole cache lines,
    /// to be written in non-temporal stores (CpuBackend.StreamedOutputBytes; the block stretch fences).</summary>
    private static bool WholeLines<T>(T* start, int length) where T : unmanaged =>
        ((nint)start & 63) == 0 && length % (64 / sizeof(T)) == 0;

    /// <summary>dy, or 0 where the fused ReLU's output is not positive.</summary>
    private static Vector256<T> Masked<T>(Vector256<T> dy, T* reluOutput, long i) where T : unmanaged, IFloatingPointIeee754<T> =>
        reluOutput is null ? dy : Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Load(reluOutput + i), Vector256<T>.Zero), dy, Vector256<T>.Zero);

    private static T Masked<T>(T dy, T* reluOutput, long i) where T : unmanaged, IFloatingPointIeee754<T> =>
        reluOutput is null || reluOutput[i] > T.Zero ? dy : T.Zero;

    /// <summary>Block <c>block</c>: partials[2·block] = Σ dy, partials[2·block + 1] = Σ dy · x̂ with
    /// x̂ = (x − mean) · invStd; dy is masked by the fused ReLU and, with a fused residual, written as its
    /// gradient.</summary>
    private struct BlockGradientSumsJob<T> : IBlockJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, DY, ReluOutput, ResidualGradient, Mean, InvStd, Partials;
        public bool Streaming;

        public void Run(int block, int c, long at, int length)
        {
            T mean = Mean[c], invStd = InvStd[c];
            var vm = Vector256.Create(mean);
            var vs = Vector256.Create(invStd);
            T* xs = X + at, dys = DY + at;
            T* mask = ReluOutput is null ? null : ReluOutput + at;
            T* drs = ResidualGradient is null ? null : ResidualGradient + at;
            var accDy = Vector256<T>.Zero;
            var accDyXhat = Vector256<T>.Zero;
            int i = 0;
            bool stream = Streaming && drs is not null && WholeLines(drs, length);
            for (; i + Vector256<T>.Count <= length; i += Vector256<T>.Count)
            {
                var dy = Masked(Vector256.Load(dys + i), mask, i);
                if (stream) dy.StoreAlignedNonTemporal(drs + i);
                else if (drs is not null) dy.Store(drs + i);
                accDy += dy;
                accDyXhat += dy * ((Vector256.Load(xs + i) - vm) * vs);
            }
            T sumDy = Vector256.Sum(accDy), sumDyXhat = Vector256.Sum(accDyXhat);
            for (; i < length; i++)
            {
                T dy = Masked(dys[i], mask, i);
                if (drs is not null) drs[i] = dy;
                sumDy += dy;
                sumDyXhat += dy * ((xs[i] - mean) * invStd);
            }
            Partials[2L * block] = sumDy;
            Partials[2L * block + 1] = sumDyXhat;
        }
    }

    /// <summary>A block: dx = (dy − meanDy − x̂ · meanDyXhat) · gamma · invStd with batch statistics,
    /// dx = dy · gamma · invStd without (then x is not read: a NaN input gets the gradient its mask gives);
    /// coefficients holds (gamma·invStd, meanDy, meanDyXhat) per channel.</summary>
    private struct BlockInputGradientJob<T> : IBlockJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, DY, ReluOutput, Mean, InvStd, Coefficients, DX;
        public bool BatchStatistics, Streaming;

        public void Run(int block, int c, long at, int length)
        {
            T mean = Mean[c], invStd = InvStd[c];
            T scale = Coefficients[3 * c], meanDy = Coefficients[3 * c + 1], meanDyXhat = Coefficients[3 * c + 2];
            var vm = Vector256.Create(mean);
            var vs = Vector256.Create(invStd);
            var vScale = Vector256.Create(scale);
            var vMeanDy = Vector256.Create(meanDy);
            var vMeanDyXhat = Vector256.Create(meanDyXhat);
            T* xs = X + at, dxs = DX + at, dys = DY + at;
            T* mask = ReluOutput is null ? null : ReluOutput + at;
            int i = 0;
            bool stream = Streaming && WholeLines(dxs, length);
            for (; i + Vector256<T>.Count <= length; i += Vector256<T>.Count)
            {
                var g = Masked(Vector256.Load(dys + i), mask, i);
                if (BatchStatistics) g = g - vMeanDy - (Vector256.Load(xs + i) - vm) * vs * vMeanDyXhat;
                if (stream) (g * vScale).StoreAlignedNonTemporal(dxs + i);
                else (g * vScale).Store(dxs + i);
            }
            for (; i < length; i++)
            {
                T g = Masked(dys[i], mask, i);
                if (BatchStatistics) g = g - meanDy - (xs[i] - mean) * invStd * meanDyXhat;
                dxs[i] = g * scale;
            }
        }
    }
}
