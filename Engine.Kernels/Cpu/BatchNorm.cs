// Batch normalisation over x, y [N, C, HW] with per-channel vectors [C]: training forward (batch statistics,
// running-statistics update as PyTorch, or with the biased variance as ONNX), inference forward, backward for both modes, and 1/sqrt(var + eps).
//
// One task per channel: it reads the channel's N planes, so its statistics are summed in a fixed order. The mean
// and the biased variance are two passes (the variance sums (x − mean)², never x² − mean²). The residual add and
// the ReLU that follow batch-norm in a ResNet block can be fused: forward adds the residual and clamps as it
// writes; backward reads dy only where the output is positive and writes that masked dy as the residual's
// gradient in its first pass, which the second pass then reads instead of dy and the output.
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void BatchNormForwardTrainingCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double momentum, double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd,
        bool relu, RunningVarianceUpdate varianceUpdate, DeviceBuffer<T>? residual)
    {
        var job = new BatchNormTrainingJob<T>
        {
            X = Data(x), Residual = residual is null ? null : Data(residual), Gamma = Data(gamma), Beta = Data(beta), RunningMean = Data(runningMean),
            RunningVar = Data(runningVar), Y = Data(y), SavedMean = Data(savedMean), SavedInvStd = Data(savedInvStd),
            Batch = batch, Channels = channels, Spatial = spatial, Momentum = T.CreateTruncating(momentum),
            Epsilon = T.CreateTruncating(epsilon), Relu = relu,
            UnbiasedRunningVariance = varianceUpdate == RunningVarianceUpdate.Unbiased,
        };
        Parallel(channels, ref job);
    }

    /// <inheritdoc/>
    protected override void BatchNormForwardInferenceCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double epsilon, DeviceBuffer<T> y, bool relu, DeviceBuffer<T>? residual)
    {
        var job = new BatchNormInferenceJob<T>
        {
            X = Data(x), Residual = residual is null ? null : Data(residual), Gamma = Data(gamma), Beta = Data(beta), RunningMean = Data(runningMean),
            RunningVar = Data(runningVar), Y = Data(y), Batch = batch, Channels = channels, Spatial = spatial,
            Epsilon = T.CreateTruncating(epsilon), Relu = relu,
        };
        Parallel(channels, ref job);
    }

    /// <inheritdoc/>
    protected override void BatchNormBackwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> dy,
        DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd, bool batchStatistics,
        DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta, DeviceBuffer<T>? reluOutput,
        DeviceBuffer<T>? residualGradient)
    {
        var job = new BatchNormBackwardJob<T>
        {
            X = Data(x), DY = Data(dy), ReluOutput = reluOutput is null ? null : Data(reluOutput),
            ResidualGradient = residualGradient is null ? null : Data(residualGradient),
            Gamma = Data(gamma), Mean = Data(mean), InvStd = Data(invStd),
            DX = Data(dx), DGamma = Data(dgamma), DBeta = Data(dbeta), Batch = batch, Channels = channels,
            Spatial = spatial, BatchStatistics = batchStatistics,
        };
        Parallel(channels, ref job);
    }

    /// <inheritdoc/>
    protected override void InverseStandardDeviationCore<T>(DeviceBuffer<T> variance, double epsilon,
        DeviceBuffer<T> invStd)
    {
        T eps = T.CreateTruncating(epsilon);
        T* v = Data(variance), result = Data(invStd);
        for (long c = 0; c < variance.Length; c++) result[c] = T.One / T.Sqrt(v[c] + eps);
    }

    /// <summary>y = (x − mean) · invStd · gamma + beta over the N planes of one channel, plus the residual when
    /// <paramref name="residual"/> is not null, clamped at 0 when <paramref name="relu"/>.</summary>
    private static void Normalize<T>(T* x, T* residual, T* y, int batch, int channels, int spatial, int c, T mean,
        T invStd, T gamma, T beta, bool relu) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // y = x·scale + shift, with scale = invStd·gamma and shift = beta − mean·scale.
        T scale = invStd * gamma, shift = beta - mean * scale;
        var vScale = Vector256.Create(scale);
        var vShift = Vector256.Create(shift);
        var floor = relu ? Vector256<T>.Zero : Vector256.Create(T.NegativeInfinity);
        T scalarFloor = relu ? T.Zero : T.NegativeInfinity;
        for (int n = 0; n < batch; n++)
        {
            long offset = ((long)n * channels + c) * spatial;
            T* xs = x + offset, ys = y + offset;
            int i = 0;
            if (residual is null)
            {
                for (; i + Vector256<T>.Count <= spatial; i += Vector256<T>.Count)
                    Vector256.Max(Vector256.Load(xs + i) * vScale + vShift, floor).Store(ys + i);
                for (; i < spatial; i++) ys[i] = T.Max(xs[i] * scale + shift, scalarFloor);
                continue;
            }
            T* rs = residual + offset;
            for (; i + Vector256<T>.Count <= spatial; i += Vector256<T>.Count)
                Vector256.Max(Vector256.Load(xs + i) * vScale + vShift + Vector256.Load(rs + i), floor).Store(ys + i);
            for (; i < spatial; i++) ys[i] = T.Max(xs[i] * scale + shift + rs[i], scalarFloor);
        }
    }

    /// <summary>dy, or 0 where the fused ReLU's output is not positive.</summary>
    private static Vector256<T> Masked<T>(Vector256<T> dy, T* reluOutput, long i) where T : unmanaged, IFloatingPointIeee754<T> =>
        reluOutput is null ? dy : Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Load(reluOutput + i), Vector256<T>.Zero), dy, Vector256<T>.Zero);

    private static T Masked<T>(T dy, T* reluOutput, long i) where T : unmanaged, IFloatingPointIeee754<T> =>
        reluOutput is null || reluOutput[i] > T.Zero ? dy : T.Zero;

    /// <summary>Channel <c>task</c>: batch statistics, normalisation, running-statistics update.</summary>
    private struct BatchNormTrainingJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, Residual, Gamma, Beta, RunningMean, RunningVar, Y, SavedMean, SavedInvStd;
        public int Batch, Channels, Spatial;
        public T Momentum, Epsilon;
        public bool Relu, UnbiasedRunningVariance;

        public void Execute(int task, int worker)
        {
            int c = task;
            T count = T.CreateTruncating((long)Batch * Spatial);
            T mean = ChannelSum(X, 0, Batch, Channels, Spatial, c, new PlainValues<T>()) / count;
            T squares = ChannelSum(X, 0, Batch, Channels, Spatial, c, new SquaredDeviations<T> { Mean = mean });
            T variance = squares / count;
            T invStd = T.One / T.Sqrt(variance + Epsilon);

            Normalize(X, Residual, Y, Batch, Channels, Spatial, c, mean, invStd, Gamma[c], Beta[c], Relu);
            SavedMean[c] = mean;
            SavedInvStd[c] = invStd;
            T runningUpdate = UnbiasedRunningVariance ? squares / (count - T.One) : variance;
            RunningMean[c] = (T.One - Momentum) * RunningMean[c] + Momentum * mean;
            RunningVar[c] = (T.One - Momentum) * RunningVar[c] + Momentum * runningUpdate;
        }
    }

    /// <summary>Channel <c>task</c> normalised with the running statistics.</summary>
    private struct BatchNormInferenceJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, Residual, Gamma, Beta, RunningMean, RunningVar, Y;
        public int Batch, Channels, Spatial;
        public T Epsilon;
        public bool Relu;

        public void Execute(int task, int worker)
        {
            int c = task;
            T invStd = T.One / T.Sqrt(RunningVar[c] + Epsilon);
            Normalize(X, Residual, Y, Batch, Channels, Spatial, c, RunningMean[c], invStd, Gamma[c], Beta[c], Relu);
        }
    }

    /// <summary>
    /// Channel <c>task</c>: dbeta = Σ dy, dgamma = Σ dy · x̂ with x̂ = (x − mean) · invStd; then
    /// dx = (dy − dbeta/m − x̂ · dgamma/m) · gamma · invStd with batch statistics, dx = dy · gamma · invStd without.
    /// dy is masked by the fused ReLU; the first pass writes the masked dy as the fused residual's gradient, which
    /// the second pass reads back.
    /// </summary>
    private struct BatchNormBackwardJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, DY, ReluOutput, ResidualGradient, Gamma, Mean, InvStd, DX, DGamma, DBeta;
        public int Batch, Channels, Spatial;
        public bool BatchStatistics;

        public void Execute(int task, int worker)
        {
            int c = task;
            T mean = Mean[c], invStd = InvStd[c];
            var vm = Vector256.Create(mean);
            var vs = Vector256.Create(invStd);
            T sumDy = T.Zero, sumDyXhat = T.Zero;
            for (int n = 0; n < Batch; n++)
            {
                long offset = ((long)n * Channels + c) * Spatial;
                T* xs = X + offset, dys = DY + offset;
                var accDy = Vector256<T>.Zero;
                var accDyXhat = Vector256<T>.Zero;
                int i = 0;
                T* mask = ReluOutput is null ? null : ReluOutput + offset;
                T* drs = ResidualGradient is null ? null : ResidualGradient + offset;
                for (; i + Vector256<T>.Count <= Spatial; i += Vector256<T>.Count)
                {
                    var dy = Masked(Vector256.Load(dys + i), mask, i);
                    if (drs is not null) dy.Store(drs + i);
                    accDy += dy;
                    accDyXhat += dy * ((Vector256.Load(xs + i) - vm) * vs);
                }
                T planeDy = Vector256.Sum(accDy), planeDyXhat = Vector256.Sum(accDyXhat);
                for (; i < Spatial; i++)
                {
                    T dy = Masked(dys[i], mask, i);
                    if (drs is not null) drs[i] = dy;
                    planeDy += dy;
                    planeDyXhat += dy * ((xs[i] - mean) * invStd);
                }
                sumDy += planeDy;
                sumDyXhat += planeDyXhat;
            }
            DBeta[c] = sumDy;
            DGamma[c] = sumDyXhat;

            T scale = Gamma[c] * invStd;
            T count = T.CreateTruncating((long)Batch * Spatial);
            T meanDy = BatchStatistics ? sumDy / count : T.Zero;
            T meanDyXhat = BatchStatistics ? sumDyXhat / count : T.Zero;
            var vScale = Vector256.Create(scale);
            var vMeanDy = Vector256.Create(meanDy);
            var vMeanDyXhat = Vector256.Create(meanDyXhat);
            for (int n = 0; n < Batch; n++)
            {
                long offset = ((long)n * Channels + c) * Spatial;
                T* xs = X + offset, dxs = DX + offset;
                // The residual's gradient is dy already masked: read it instead of dy and the output.
                T* dys = ResidualGradient is null ? DY + offset : ResidualGradient + offset;
                T* mask = ReluOutput is null || ResidualGradient is not null ? null : ReluOutput + offset;
                int i = 0;
                // Without batch statistics dx reads no x: a NaN input then has the gradient its mask gives.
                for (; i + Vector256<T>.Count <= Spatial; i += Vector256<T>.Count)
                {
                    var g = Masked(Vector256.Load(dys + i), mask, i);
                    if (BatchStatistics) g = g - vMeanDy - (Vector256.Load(xs + i) - vm) * vs * vMeanDyXhat;
                    (g * vScale).Store(dxs + i);
                }
                for (; i < Spatial; i++)
                {
                    T g = Masked(dys[i], mask, i);
                    if (BatchStatistics) g = g - meanDy - (xs[i] - mean) * invStd * meanDyXhat;
                    dxs[i] = g * scale;
                }
            }
        }
    }
}
