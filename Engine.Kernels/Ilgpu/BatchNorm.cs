// Batch normalisation over [N, C, HW] tensors, per channel c (vectors gamma, beta, running and saved statistics
// are [C]), with PyTorch's semantics: training mode normalises with the batch mean and the biased variance and
// folds the unbiased variance (or, asked for ONNX's convention, the biased one: unbiasFactor 1) into the running
// variance with the given momentum; eval mode uses the running statistics. Every pass can fuse what follows
// batch-norm in a ResNet block: the shortcut's residual add and the ReLU, y = max(bn(x) + residual, 0); backward
// then counts dy only where y > 0 and writes that masked dy as the residual's gradient.
//
// Two launches each way, 32-bit indices throughout (the host keeps tensors under 2^31 elements):
// - Channel reductions (StatisticsPartials, GradientPartials): grid S × C groups. Each channel's N·HW values are
//   cut into S equal contiguous ranges (S chosen by the host so the device holds about two waves of groups); a
//   group walks its range plane by plane (ChannelWalk: one division per thread, none per element), each thread
//   summing in blocks (BlockedWalkSum) so a long range keeps the rounding error of a short sum, and reduces its
//   threads with an IGroupSum (warp shuffles, one shared slot per warp; a shared tree on OpenCL). Statistics take two
//   passes over the group's range (its mean, then squared deviations from it: no E[x²] − E[x]² cancellation).
//   Each group writes one partial per channel; the last group of a channel to finish (an integer ticket, the
//   only atomic) combines the S partials in range order — Chan's pairwise formula for the variance — and writes
//   the channel's results. The order is fixed, so results are reproducible run to run.
// - Elementwise passes (Normalize, InputGradient): a grid-stride loop over the whole tensor whose channel index is
//   advanced incrementally (no division per element).
// Where HW is a multiple of 4 every pass moves float4-sized quads (one 16-byte load per 4 floats: a plane and
// every quad in it start at a multiple of 4 elements, and device buffers are aligned); otherwise scalars.
// Backward, with x̂ = (x − mean)·invStd and M = N·HW:
//   dx = gamma·invStd · (g − Σg/M − x̂·Σg·x̂/M)   with batch statistics,
//   dx = gamma·invStd · g                         with running statistics (constants in eval mode),
// where g is dy masked by the fused ReLU.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The shape of one batch-norm launch: [N, C, HW] in units of one element or of one quad (4 elements),
/// the per-channel ranges of the reduction groups, and what is fused.</summary>
public readonly struct BatchNormShape
{
    /// <summary>Channels C.</summary>
    public readonly int Channels;

    /// <summary>Units per (n, c) plane: HW, or HW / 4 with quads.</summary>
    public readonly int PlaneUnits;

    /// <summary>Units per channel: N · PlaneUnits.</summary>
    public readonly int ChannelUnits;

    /// <summary>Units in the tensor: N · C · PlaneUnits.</summary>
    public readonly int Units;

    /// <summary>Units per reduction range (every range but the last is this long).</summary>
    public readonly int RangeUnits;

    /// <summary>Ranges (reduction groups) per channel, S.</summary>
    public readonly int Ranges;

    /// <summary>Elements between the partials of consecutive channels: 2·S rounded up to 32, so each channel's
    /// partials own their 128-byte lines and the group that combines them never reads a line another
    /// multiprocessor's cache could hold from before they were written.</summary>
    public readonly int PartialStride;

    /// <summary>Non-zero when a unit is a quad of 4 elements.</summary>
    public readonly int Quads;

    /// <summary>Bit 0: the ReLU is fused. Bit 1: a residual is added (forward) or its gradient written (backward).
    /// Bit 2: batch statistics (training mode).</summary>
    public readonly int Flags;

    /// <summary>A reduction thread's step of GroupSize units within its channel: the position within the plane
    /// advances by RangePositionStep and the offset by RangeOffsetStep (plus the skip to the channel's next plane
    /// when the position wraps).</summary>
    public readonly int RangePositionStep, RangeOffsetStep;

    /// <summary>Threads of the elementwise passes (their grid-stride step, in units), and what one step adds to the
    /// position within the plane and to the channel.</summary>
    public readonly int StreamStride, StreamPositionStep, StreamChannelStep;

    /// <summary>Describes an [N, C, HW] batch-norm cut into <paramref name="ranges"/> ranges per channel, reduced by
    /// groups of <paramref name="groupSize"/> threads, its elementwise passes launched over
    /// <paramref name="streamThreads"/> threads (at most the unit count). The walks' steps are divided out here,
    /// on the host, so the kernels' loops hold no division.</summary>
    public BatchNormShape(int batch, int channels, int spatial, int ranges, int groupSize, int streamThreads,
        bool relu, bool residual, bool batchStatistics)
    {
        Quads = spatial % 4 == 0 ? 1 : 0;
        Channels = channels;
        PlaneUnits = Quads != 0 ? spatial / 4 : spatial;
        ChannelUnits = batch * PlaneUnits;
        Units = ChannelUnits * channels;
        RangeUnits = (ChannelUnits + ranges - 1) / ranges;
        Ranges = (ChannelUnits + RangeUnits - 1) / RangeUnits; // every range non-empty
        PartialStride = (2 * Ranges + 31) / 32 * 32;
        Flags = (relu ? 1 : 0) | (residual ? 2 : 0) | (batchStatistics ? 4 : 0);
        int groupPlanes = groupSize / PlaneUnits;
        RangePositionStep = groupSize - groupPlanes * PlaneUnits;
        RangeOffsetStep = groupSize + groupPlanes * (channels - 1) * PlaneUnits;
        StreamStride = Math.Min(streamThreads, Units);
        int streamPlanes = StreamStride / PlaneUnits;
        StreamPositionStep = StreamStride - streamPlanes * PlaneUnits;
        StreamChannelStep = streamPlanes % channels;
    }

    /// <summary>True when the ReLU is fused.</summary>
    public bool Relu => (Flags & 1) != 0;

    /// <summary>True when a residual is added (forward) or its gradient written (backward).</summary>
    public bool Residual => (Flags & 2) != 0;

    /// <summary>True in training mode (batch statistics).</summary>
    public bool BatchStatistics => (Flags & 4) != 0;
}

/// <summary>The batch-norm kernels over [N, C, HW]: split per-channel reductions finished by their last group, and
/// grid-stride elementwise passes with an incremental channel index.</summary>
public static class BatchNormKernels
{
    /// <summary>Grid (S, C): group s of channel c reduces range s to its mean and sum of squared deviations
    /// (partials[c·PartialStride + 2s], [.. + 1]); the channel's last group combines them into the saved mean and
    /// 1/sqrt(biased var + eps) and updates the running statistics.</summary>
    public static void StatisticsPartials<T, TGroupSum>(ArrayView<T> x, ArrayView<T> partials, ArrayView<int> tickets,
        ArrayView<T> savedMean, ArrayView<T> savedInvStd, ArrayView<T> runningMean, ArrayView<T> runningVar,
        BatchNormShape s, T rangeCount, T lastRangeCount, T inverseCount, T unbiasFactor, T momentum, T epsilon)
        where T : unmanaged, IFloatingPointIeee754<T> where TGroupSum : struct, IGroupSum<T>
    {
        int range = Grid.IdxX, channel = Grid.IdxY;
        var scratch = SharedMemory.GetDynamic<T>();
        var (walk, count) = RangeStart(s, channel, range);
        T sum = s.Quads != 0
            ? BlockedWalkSum<T, QuadSum<T>>(new QuadSum<T>(x.Cast<Quad<T>>()), walk, count).First
            : BlockedWalkSum<T, ScalarSum<T>>(new ScalarSum<T>(x), walk, count).First;
        T elements = range == s.Ranges - 1 ? lastRangeCount : rangeCount;
        T mean = default(TGroupSum).Sum(sum, scratch) / elements;
        T squares = s.Quads != 0
            ? BlockedWalkSum<T, QuadSquaredDeviations<T>>(
                new QuadSquaredDeviations<T>(x.Cast<Quad<T>>(), mean), walk, count).First
            : BlockedWalkSum<T, ScalarSquaredDeviations<T>>(
                new ScalarSquaredDeviations<T>(x, mean), walk, count).First;
        T deviations = default(TGroupSum).Sum(squares, scratch);
        if (Group.IdxX != 0) return;

        int slot = channel * s.PartialStride + 2 * range;
        partials[slot] = mean;
        partials[slot + 1] = deviations;
        if (!IsLastRange(tickets, channel, s.Ranges)) return;

        // Chan et al.: the channel mean is the count-weighted mean of the range means, and its sum of squared
        // deviations adds each range's own to count·(range mean − mean)², in range order.
        int first = channel * s.PartialStride;
        T total = T.Zero;
        for (int r = 0; r < s.Ranges; r++)
            total += (r == s.Ranges - 1 ? lastRangeCount : rangeCount) * partials[first + 2 * r];
        T channelMean = total * inverseCount;
        T m2 = T.Zero;
        for (int r = 0; r < s.Ranges; r++)
        {
            T offset = partials[first + 2 * r] - channelMean;
            m2 += partials[first + 2 * r + 1] + (r == s.Ranges - 1 ? lastRangeCount : rangeCount) * offset * offset;
        }
        T variance = m2 * inverseCount;
        savedMean[channel] = channelMean;
        savedInvStd[channel] = T.One / T.Sqrt(variance + epsilon);
        runningMean[channel] = (T.One - momentum) * runningMean[channel] + momentum * channelMean;
        runningVar[channel] = (T.One - momentum) * runningVar[channel] + momentum * variance * unbiasFactor;
    }

    /// <summary>y = (x − mean[c])·invStd[c]·gamma[c] + beta[c] (+ residual) (then ReLU), grid-stride over units.
    /// Without batch statistics <paramref name="statistic"/> is the running variance and invStd = 1/sqrt(it + eps);
    /// with them it is the saved invStd.</summary>
    public static void Normalize<T>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> residual, ArrayView<T> mean,
        ArrayView<T> statistic, ArrayView<T> gamma, ArrayView<T> beta, ArrayView<T> y, BatchNormShape s, T epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        var walk = new TensorWalk(thread, s);
        T floor = s.Relu ? T.Zero : T.NegativeInfinity;
        bool add = s.Residual;
        var xq = x.Cast<Quad<T>>();
        var rq = residual.Cast<Quad<T>>();
        var yq = y.Cast<Quad<T>>();
        for (int i = thread; i < s.Units; i += s.StreamStride)
        {
            int c = walk.Channel;
            T invStd = s.BatchStatistics ? statistic[c] : T.One / T.Sqrt(statistic[c] + epsilon);
            T scale = invStd * gamma[c], shift = beta[c] - mean[c] * scale;
            if (s.Quads != 0)
            {
                var v = xq[i];
                var r = add ? rq[i] : default;
                yq[i] = new Quad<T>
                {
                    X = Apply(v.X, scale, shift, r.X, add, floor), Y = Apply(v.Y, scale, shift, r.Y, add, floor),
                    Z = Apply(v.Z, scale, shift, r.Z, add, floor), W = Apply(v.W, scale, shift, r.W, add, floor),
                };
            }
            else
            {
                y[i] = Apply(x[i], scale, shift, add ? residual[i] : T.Zero, add, floor);
            }
            walk.Advance();
        }
    }

    /// <summary>max(x·scale + shift (+ residual), floor): floor is 0 for a fused ReLU, −∞ without one (a NaN stays
    /// NaN either way).</summary>
    private static T Apply<T>(T x, T scale, T shift, T residual, bool add, T floor)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T value = x * scale + shift;
        if (add) value += residual;
        return value < floor ? floor : value;
    }

    /// <summary>Grid (S, C): group s of channel c sums g and g·x̂ over range s (g = dy masked by the fused ReLU,
    /// written to residualGradient when asked); the channel's last group adds the S partials in range order into
    /// dbeta = Σg and dgamma = Σg·x̂.</summary>
    public static void GradientPartials<T, TGroupSum>(ArrayView<T> x, ArrayView<T> dy, ArrayView<T> reluOutput,
        ArrayView<T> residualGradient, ArrayView<T> mean, ArrayView<T> invStd, ArrayView<T> partials,
        ArrayView<int> tickets, ArrayView<T> dgamma, ArrayView<T> dbeta, BatchNormShape s)
        where T : unmanaged, IFloatingPointIeee754<T> where TGroupSum : struct, IGroupSum<T>
    {
        int range = Grid.IdxX, channel = Grid.IdxY;
        var scratch = SharedMemory.GetDynamic<T>();
        var (walk, count) = RangeStart(s, channel, range);
        T m = mean[channel], k = invStd[channel];
        var (sumG, sumGXhat) = s.Quads != 0
            ? BlockedWalkSum<T, QuadGradientTerms<T>>(new QuadGradientTerms<T>(x.Cast<Quad<T>>(),
                dy.Cast<Quad<T>>(), reluOutput.Cast<Quad<T>>(), residualGradient.Cast<Quad<T>>(), m, k, s.Flags),
                walk, count)
            : BlockedWalkSum<T, ScalarGradientTerms<T>>(new ScalarGradientTerms<T>(x, dy, reluOutput,
                residualGradient, m, k, s.Flags), walk, count);
        T totalG = default(TGroupSum).Sum(sumG, scratch);
        T totalGXhat = default(TGroupSum).Sum(sumGXhat, scratch);
        if (Group.IdxX != 0) return;

        int slot = channel * s.PartialStride + 2 * range;
        partials[slot] = totalG;
        partials[slot + 1] = totalGXhat;
        if (!IsLastRange(tickets, channel, s.Ranges)) return;

        int first = channel * s.PartialStride;
        T dBeta = T.Zero, dGamma = T.Zero;
        for (int r = 0; r < s.Ranges; r++)
        {
            dBeta += partials[first + 2 * r];
            dGamma += partials[first + 2 * r + 1];
        }
        dbeta[channel] = dBeta;
        dgamma[channel] = dGamma;
    }

    /// <summary>dx per unit, grid-stride: g is the residual's gradient when it was written (dy already masked),
    /// else dy masked by the fused ReLU; the batch-statistics terms are added in training mode.</summary>
    public static void InputGradient<T>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> dy, ArrayView<T> reluOutput,
        ArrayView<T> gamma, ArrayView<T> mean, ArrayView<T> invStd, ArrayView<T> dgamma, ArrayView<T> dbeta,
        ArrayView<T> dx, BatchNormShape s, T inverseCount) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        var walk = new TensorWalk(thread, s);
        bool masked = s.Relu && !s.Residual, batchStatistics = s.BatchStatistics;
        var xq = x.Cast<Quad<T>>();
        var gq = dy.Cast<Quad<T>>();
        var mq = reluOutput.Cast<Quad<T>>();
        var dxq = dx.Cast<Quad<T>>();
        for (int i = thread; i < s.Units; i += s.StreamStride)
        {
            int c = walk.Channel;
            T k = invStd[c], scale = gamma[c] * k, m = mean[c];
            T meanG = batchStatistics ? dbeta[c] * inverseCount : T.Zero;
            T meanGXhat = batchStatistics ? dgamma[c] * inverseCount : T.Zero;
            if (s.Quads != 0)
            {
                var g = gq[i];
                var v = batchStatistics ? xq[i] : default;
                var mask = masked ? mq[i] : default;
                dxq[i] = new Quad<T>
                {
                    X = InputTerm(g.X, mask.X, masked, v.X, batchStatistics, m, k, meanG, meanGXhat, scale),
                    Y = InputTerm(g.Y, mask.Y, masked, v.Y, batchStatistics, m, k, meanG, meanGXhat, scale),
                    Z = InputTerm(g.Z, mask.Z, masked, v.Z, batchStatistics, m, k, meanG, meanGXhat, scale),
                    W = InputTerm(g.W, mask.W, masked, v.W, batchStatistics, m, k, meanG, meanGXhat, scale),
                };
            }
            else
            {
                dx[i] = InputTerm(dy[i], masked ? reluOutput[i] : T.Zero, masked, batchStatistics ? x[i] : T.Zero,
                    batchStatistics, m, k, meanG, meanGXhat, scale);
            }
            walk.Advance();
        }
    }

    /// <summary>scale·(g − meanG − x̂·meanGXhat) with g masked where the fused ReLU's output is not positive (NaN
    /// included); without batch statistics x is not used (a NaN input then gets the gradient its mask gives).</summary>
    private static T InputTerm<T>(T dy, T reluOutput, bool masked, T x, bool batchStatistics, T mean, T invStd,
        T meanG, T meanGXhat, T scale) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T g = masked && !(reluOutput > T.Zero) ? T.Zero : dy;
        if (batchStatistics) g = g - meanG - (x - mean) * invStd * meanGXhat;
        return scale * g;
    }

    /// <summary>invStd[c] = 1 / sqrt(variance[c] + eps).</summary>
    public static void InverseStandardDeviation<T>(Index1D launchIndex, ArrayView<T> variance, ArrayView<T> invStd,
        T epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int c = KernelIndex.Global;
        invStd[c] = T.One / T.Sqrt(variance[c] + epsilon);
    }

    /// <summary>The walk of this thread over range <paramref name="range"/> of a channel, and how many units it
    /// visits (its threads take units t, t + G, … of the range).</summary>
    private static (ChannelWalk Walk, int Count) RangeStart(BatchNormShape s, int channel, int range)
    {
        int begin = range * s.RangeUnits;
        int length = Math.Min(s.RangeUnits, s.ChannelUnits - begin);
        int t = Group.IdxX, g = Group.DimX;
        int count = t < length ? (length - t + g - 1) / g : 0;
        return (new ChannelWalk(begin + t, channel, s), count);
    }

    /// <summary>Thread 0 of a group that has written its partial: true for the channel's last group to finish (which
    /// then resets the channel's ticket for the next launch).</summary>
    private static bool IsLastRange(ArrayView<int> tickets, int channel, int ranges)
    {
        MemoryFence.DeviceLevel(); // the partial is visible before the ticket is taken
        if (Atomic.Add(ref tickets[channel], 1) != ranges - 1) return false;
        MemoryFence.DeviceLevel(); // every other group's partial is read after their tickets
        tickets[channel] = 0;
        return true;
    }

    /// <summary>(Σ first, Σ second) of the terms over <paramref name="count"/> units of a walk, summed in runs of 64
    /// units, runs of 64 runs, then those: the rounding error of a short sum, however long the walk.</summary>
    private static (T First, T Second) BlockedWalkSum<T, TTerms>(TTerms terms, ChannelWalk walk, int count)
        where T : unmanaged, IFloatingPointIeee754<T> where TTerms : struct, IUnitTerms<T>
    {
        const int Run = 64;
        T first = T.Zero, second = T.Zero;
        for (int k2 = 0; k2 < count; k2 += Run * Run)
        {
            int end2 = Math.Min(count, k2 + Run * Run);
            T first1 = T.Zero, second1 = T.Zero;
            for (int k1 = k2; k1 < end2; k1 += Run)
            {
                int end1 = Math.Min(end2, k1 + Run);
                T first0 = T.Zero, second0 = T.Zero;
                for (int k = k1; k < end1; k++)
                {
                    terms.Add(walk.Offset, ref first0, ref second0);
                    walk.Advance();
                }
                first1 += first0;
                second1 += second0;
            }
            first += first1;
            second += second1;
        }
        return (first, second);
    }
}

/// <summary>A walk over one channel's units of an [N, C, units per plane] tensor, from unit index j (in N·units)
/// in steps of one reduction group: the offset advances with additions only (one division when it starts; the
/// steps come divided from the host in <see cref="BatchNormShape"/>).</summary>
internal struct ChannelWalk
{
    /// <summary>Offset of the current unit in the tensor.</summary>
    public int Offset;

    private int _position; // within the plane
    private readonly int _planeUnits, _skip, _offsetStep, _positionStep;

    /// <summary>Starts at unit <paramref name="first"/> of channel <paramref name="channel"/>.</summary>
    public ChannelWalk(int first, int channel, BatchNormShape s)
    {
        int image = first / s.PlaneUnits;
        _position = first - image * s.PlaneUnits;
        Offset = (image * s.Channels + channel) * s.PlaneUnits + _position;
        _planeUnits = s.PlaneUnits;
        _skip = (s.Channels - 1) * s.PlaneUnits; // from the end of a plane to the start of the channel's next one
        _positionStep = s.RangePositionStep;
        _offsetStep = s.RangeOffsetStep;
    }

    /// <summary>Moves on by one group's worth of units.</summary>
    public void Advance()
    {
        Offset += _offsetStep;
        _position += _positionStep;
        if (_position < _planeUnits) return;
        _position -= _planeUnits;
        Offset += _skip;
    }
}

/// <summary>The channel of unit t, t + stride, … of an [N, C, units per plane] tensor, advanced with additions only
/// (one division when it starts; the steps come divided from the host in <see cref="BatchNormShape"/>).</summary>
internal struct TensorWalk
{
    /// <summary>Channel of the current unit.</summary>
    public int Channel;

    private int _position;
    private readonly int _planeUnits, _channels, _positionStep, _channelStep;

    /// <summary>Starts at unit <paramref name="first"/>, stepping by the shape's stream stride.</summary>
    public TensorWalk(int first, BatchNormShape s)
    {
        int plane = first / s.PlaneUnits;
        _position = first - plane * s.PlaneUnits;
        Channel = plane % s.Channels;
        _planeUnits = s.PlaneUnits;
        _channels = s.Channels;
        _positionStep = s.StreamPositionStep;
        _channelStep = s.StreamChannelStep;
    }

    /// <summary>Moves on by the stride: the channel advances by whole planes, plus one when the position wraps.</summary>
    public void Advance()
    {
        _position += _positionStep;
        Channel += _channelStep;
        if (_position >= _planeUnits)
        {
            _position -= _planeUnits;
            Channel++;
        }
        if (Channel >= _channels) Channel -= _channels;
    }
}

/// <summary>What a reduction adds for the unit at an offset: up to two sums at once.</summary>
internal interface IUnitTerms<T> where T : unmanaged
{
    /// <summary>Adds the unit's terms to <paramref name="first"/> and <paramref name="second"/>.</summary>
    void Add(int offset, ref T first, ref T second);
}

/// <summary>Σ x.</summary>
internal readonly struct ScalarSum<T>(ArrayView<T> x) : IUnitTerms<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(int offset, ref T first, ref T second) => first += x[offset];
}

/// <summary>Σ x over quads (lanes added pairwise).</summary>
internal readonly struct QuadSum<T>(ArrayView<Quad<T>> x) : IUnitTerms<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(int offset, ref T first, ref T second)
    {
        var q = x[offset];
        first += (q.X + q.Y) + (q.Z + q.W);
    }
}

/// <summary>Σ (x − mean)².</summary>
internal readonly struct ScalarSquaredDeviations<T>(ArrayView<T> x, T mean) : IUnitTerms<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(int offset, ref T first, ref T second)
    {
        T d = x[offset] - mean;
        first += d * d;
    }
}

/// <summary>Σ (x − mean)² over quads.</summary>
internal readonly struct QuadSquaredDeviations<T>(ArrayView<Quad<T>> x, T mean) : IUnitTerms<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(int offset, ref T first, ref T second)
    {
        var q = x[offset];
        T a = q.X - mean, b = q.Y - mean, c = q.Z - mean, d = q.W - mean;
        first += (a * a + b * b) + (c * c + d * d);
    }
}

/// <summary>Σ g and Σ g·x̂, g = dy masked by the fused ReLU (bit 0 of flags), written to the residual's gradient
/// (bit 1).</summary>
internal readonly struct ScalarGradientTerms<T>(ArrayView<T> x, ArrayView<T> dy, ArrayView<T> reluOutput,
    ArrayView<T> residualGradient, T mean, T invStd, int flags) : IUnitTerms<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(int offset, ref T first, ref T second)
    {
        T g = (flags & 1) != 0 && !(reluOutput[offset] > T.Zero) ? T.Zero : dy[offset];
        if ((flags & 2) != 0) residualGradient[offset] = g;
        first += g;
        second += g * ((x[offset] - mean) * invStd);
    }
}

/// <summary>Σ g and Σ g·x̂ over quads, as <see cref="ScalarGradientTerms{T}"/>.</summary>
internal readonly struct QuadGradientTerms<T>(ArrayView<Quad<T>> x, ArrayView<Quad<T>> dy,
    ArrayView<Quad<T>> reluOutput, ArrayView<Quad<T>> residualGradient, T mean, T invStd, int flags) : IUnitTerms<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public void Add(int offset, ref T first, ref T second)
    {
        var g = dy[offset];
        if ((flags & 1) != 0)
        {
            var y = reluOutput[offset];
            g = new Quad<T>
            {
                X = y.X > T.Zero ? g.X : T.Zero, Y = y.Y > T.Zero ? g.Y : T.Zero,
                Z = y.Z > T.Zero ? g.Z : T.Zero, W = y.W > T.Zero ? g.W : T.Zero,
            };
        }
        if ((flags & 2) != 0) residualGradient[offset] = g;
        var v = x[offset];
        first += (g.X + g.Y) + (g.Z + g.W);
        second += (g.X * ((v.X - mean) * invStd) + g.Y * ((v.Y - mean) * invStd)) +
                  (g.Z * ((v.Z - mean) * invStd) + g.W * ((v.W - mean) * invStd));
    }
}

public sealed partial class IlgpuBackend
{
    /// <summary>The shape of a batch-norm launch, with as many ranges per channel as give the device about two waves
    /// of reduction groups (at least 64 groups, so small devices still split), each thread taking at least one
    /// unit.</summary>
    private BatchNormShape BatchNormGeometry(int batch, int channels, int spatial, bool relu, bool residual,
        bool batchStatistics)
    {
        int group = ChannelGroupSize();
        int units = batch * (spatial % 4 == 0 ? spatial / 4 : spatial);
        int resident = Math.Max(1, _accelerator.MaxNumThreadsPerMultiprocessor / group);
        int wanted = Math.Max(64, 2 * _accelerator.NumMultiprocessors * resident);
        int ranges = Math.Clamp(Math.Min((wanted + channels - 1) / channels, (units + group - 1) / group), 1, 64);
        return new BatchNormShape(batch, channels, spatial, ranges, group, _maxThreads, relu, residual,
            batchStatistics);
    }

    /// <summary>Grid S × C of reduction groups with scratch for a group sum.</summary>
    private KernelConfig RangeConfig<T>(BatchNormShape s) where T : unmanaged
    {
        int group = ChannelGroupSize();
        return new KernelConfig(new Index3D(s.Ranges, s.Channels, 1), new Index3D(group, 1, 1),
            SharedMemoryConfig.RequestDynamic<T>(group));
    }

    /// <summary>The element count of one range and of the last one, as T.</summary>
    private static (T Range, T Last) RangeCounts<T>(BatchNormShape s, int spatial) where T : INumberBase<T>
    {
        int unit = s.Quads != 0 ? 4 : 1;
        int last = s.ChannelUnits - (s.Ranges - 1) * s.RangeUnits;
        return (T.CreateChecked((long)s.RangeUnits * unit), T.CreateChecked((long)last * unit));
    }

    /// <summary>Zeroed per-channel tickets for the last-group hand-off (every launch leaves them zero again).</summary>
    private ArrayView<int> Tickets(int channels)
    {
        if (_tickets is null || _tickets.Length < channels)
        {
            if (_tickets is not null)
            {
                SynchronizeCore(); // queued kernels may still use the old tickets
                _tickets.Dispose();
            }
            _tickets = _accelerator.Allocate1D<int>(Math.Max(channels, 64));
            _tickets.MemSetToZero(_accelerator.DefaultStream);
        }
        return _tickets.View.SubView(0, channels);
    }

    private MemoryBuffer1D<int, Stride1D.Dense>? _tickets;

    /// <inheritdoc/>
    protected override void BatchNormForwardTrainingCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double momentum, double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd,
        bool relu, RunningVarianceUpdate varianceUpdate, DeviceBuffer<T>? residual)
    {
        var s = BatchNormGeometry(batch, channels, spatial, relu, residual is not null, batchStatistics: true);
        int count = batch * spatial;
        bool unbiased = varianceUpdate == RunningVarianceUpdate.Unbiased;
        var (rangeCount, lastCount) = RangeCounts<T>(s, spatial);
        var statistics = ShufflesWarps
            ? StatisticsKernel<T, WarpShuffleSum<T>>()
            : StatisticsKernel<T, SharedTreeSum<T>>();
        statistics(_accelerator.DefaultStream, RangeConfig<T>(s), View(x),
            ScratchBuffer<T>(BatchNormSlot, (long)s.PartialStride * channels).View, Tickets(channels),
            View(savedMean), View(savedInvStd), View(runningMean), View(runningVar), s, rangeCount, lastCount,
            T.One / T.CreateChecked(count), unbiased && count > 1 ? T.CreateChecked(count / (count - 1.0)) : T.One,
            T.CreateChecked(momentum), T.CreateChecked(epsilon));
        LaunchNormalize(s, x, residual, savedMean, savedInvStd, gamma, beta, y, T.Zero);
    }

    private Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<int>, ArrayView<T>,
        ArrayView<T>, ArrayView<T>, ArrayView<T>, BatchNormShape, T, T, T, T, T, T> StatisticsKernel<T, TGroupSum>()
        where T : unmanaged, IFloatingPointIeee754<T> where TGroupSum : struct, IGroupSum<T> =>
        Kernel<TGroupSum, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<int>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, BatchNormShape, T, T, T, T, T, T>>(
            nameof(BatchNormKernels.StatisticsPartials),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, ArrayView<int>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, BatchNormShape, T, T, T, T, T, T>(
                BatchNormKernels.StatisticsPartials<T, TGroupSum>));

    /// <inheritdoc/>
    protected override void BatchNormForwardInferenceCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double epsilon, DeviceBuffer<T> y, bool relu, DeviceBuffer<T>? residual)
    {
        var s = BatchNormGeometry(batch, channels, spatial, relu, residual is not null, batchStatistics: false);
        LaunchNormalize(s, x, residual, runningMean, runningVar, gamma, beta, y, T.CreateChecked(epsilon));
    }

    private void LaunchNormalize<T>(BatchNormShape s, DeviceBuffer<T> x, DeviceBuffer<T>? residual,
        DeviceBuffer<T> mean, DeviceBuffer<T> statistic, DeviceBuffer<T> gamma, DeviceBuffer<T> beta,
        DeviceBuffer<T> y, T epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var normalize = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, BatchNormShape, T>>(
            nameof(BatchNormKernels.Normalize),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, ArrayView<T>, BatchNormShape, T>(BatchNormKernels.Normalize));
        normalize(_accelerator.DefaultStream, s.StreamStride, View(x), View(residual ?? x), View(mean),
            View(statistic), View(gamma), View(beta), View(y), s, epsilon);
    }

    /// <inheritdoc/>
    protected override void InverseStandardDeviationCore<T>(DeviceBuffer<T> variance, double epsilon,
        DeviceBuffer<T> invStd)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, T>>(
            nameof(BatchNormKernels.InverseStandardDeviation),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, T>(
                BatchNormKernels.InverseStandardDeviation));
        kernel(_accelerator.DefaultStream, (int)variance.Length, View(variance), View(invStd),
            T.CreateChecked(epsilon));
    }

    /// <inheritdoc/>
    protected override void BatchNormBackwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> dy, DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd,
        bool batchStatistics, DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta,
        DeviceBuffer<T>? reluOutput, DeviceBuffer<T>? residualGradient)
    {
        var s = BatchNormGeometry(batch, channels, spatial, reluOutput is not null, residualGradient is not null,
            batchStatistics);
        var parameters = ShufflesWarps
            ? GradientKernel<T, WarpShuffleSum<T>>()
            : GradientKernel<T, SharedTreeSum<T>>();
        parameters(_accelerator.DefaultStream, RangeConfig<T>(s), View(x), View(dy), View(reluOutput ?? dy),
            View(residualGradient ?? dy), View(mean), View(invStd),
            ScratchBuffer<T>(BatchNormSlot, (long)s.PartialStride * channels).View, Tickets(channels),
            View(dgamma), View(dbeta), s);

        var input = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, BatchNormShape, T>>(
            nameof(BatchNormKernels.InputGradient),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, BatchNormShape, T>(
                BatchNormKernels.InputGradient));
        // With the residual's gradient written, it is dy already masked: read it instead of dy and the output.
        input(_accelerator.DefaultStream, s.StreamStride, View(x), View(residualGradient ?? dy),
            View(reluOutput ?? dy), View(gamma), View(mean), View(invStd), View(dgamma), View(dbeta), View(dx), s,
            T.One / T.CreateChecked(batch * spatial));
    }

    private Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
        ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<int>, ArrayView<T>, ArrayView<T>, BatchNormShape>
        GradientKernel<T, TGroupSum>() where T : unmanaged, IFloatingPointIeee754<T>
        where TGroupSum : struct, IGroupSum<T> =>
        Kernel<TGroupSum, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<int>, ArrayView<T>, ArrayView<T>,
            BatchNormShape>>(nameof(BatchNormKernels.GradientPartials),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, ArrayView<int>, ArrayView<T>, ArrayView<T>, BatchNormShape>(
                BatchNormKernels.GradientPartials<T, TGroupSum>));
}
