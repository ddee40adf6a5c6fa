// Synchronised batch-norm (training mode): the statistics of the batch that all ranks hold together, as one process
// would compute them on the whole batch, built from the backend's batch-norm primitives and two small gathers.
//
// Forward: each rank's mean and 1/sqrt(var + eps) from BatchNormForwardTraining (into scratch running statistics),
// gathered to every rank (Gather.ToAll), combined exactly in float64 and in rank order (the pooled mean, and the
// pooled biased variance Σ n_r (var_r + (mean_r − mean)²) / N), then x normalised with them by
// BatchNormForwardInference; the running statistics are updated from the pooled ones (unbiased variance, N − 1).
// Backward, with G = Σ_all dy·x̂ and S = Σ_all dy over every rank's values (a gather of each rank's two sums):
//   dx = γ·invStd·dy − γ·invStd/N · (S + x̂·G),
// the first term BatchNormBackward in eval mode, the second a per-channel affine map of x̂ that
// BatchNormForwardInference computes with γ' = −γ·invStd·G/N and β' = −γ·invStd·S/N. dγ and dβ are this rank's own
// sums: the data-parallel average of every rank's gradient then makes them the whole batch's. With every rank's
// loss the mean over its slice, dx is the gradient of the sum of the ranks' losses, and the average over the ranks
// is the gradient of the one-process loss on the whole batch.
using System.Numerics;
using Engine.Core.Autograd;

namespace Engine.Core.Distributed;

/// <summary>Training-mode batch-norm whose statistics are those of every rank's batch together.</summary>
public static class SyncBatchNorm
{
    /// <summary>Batch norm of x [N, C, …] in training mode with the statistics pooled over every rank of
    /// <paramref name="communicator"/> (then a ReLU when <paramref name="relu"/>), updating the running statistics
    /// from the pooled ones; records a backward to x, gamma and beta whose x-gradient accounts for every rank.
    /// Every rank calls it for the same layers in the same order.</summary>
    /// <exception cref="ArgumentException">As <see cref="Tensor{T}.BatchNorm"/>.</exception>
    public static Tensor<T> Forward<T>(ICommunicator communicator, Tensor<T> x, Tensor<T> gamma, Tensor<T> beta,
        Tensor<T> runningMean, Tensor<T> runningVar, double momentum = 0.1, double epsilon = 1e-5, bool relu = false)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(communicator);
        if (communicator.Size == 1)
            return x.BatchNorm(gamma, beta, runningMean, runningVar, training: true, momentum, epsilon, relu);
        if (x.Rank < 2)
            throw new ArgumentException($"synchronised batch-norm: input {x.Shape} must be at least [N, C].");
        int batch = x.Shape[0], channels = x.Shape[1];
        int spatial = checked((int)(x.Length / Math.Max(1L, (long)batch * channels)));
        var device = x.Device;
        var backend = device.Backend;

        foreach (var (vector, name) in new[] { (gamma, "gamma"), (beta, "beta"), (runningMean, "running mean"),
                     (runningVar, "running variance") })
        {
            if (vector.Shape != new Shape(channels))
                throw new ArgumentException(
                    $"synchronised batch-norm: {name} {vector.Shape} must be [{channels}] for input {x.Shape}.");
            Ops.Check.SameDevice("synchronised batch-norm", x, vector);
        }

        // This rank's statistics (its normalised output is overwritten below; scratch running statistics).
        var y = new Tensor<T>(device, x.Shape);
        var own = new T[2 * channels + 1];
        own[0] = T.CreateChecked((long)batch * spatial);
        using (var scratchMean = Tensor.Unscoped<T>([channels], device))
        using (var scratchVar = Tensor.Unscoped<T>([channels], device))
        using (var localMean = Tensor.Unscoped<T>([channels], device))
        using (var localInvStd = Tensor.Unscoped<T>([channels], device))
        {
            backend.BatchNormForwardTraining(batch, channels, spatial, x.Buffer, gamma.Buffer, beta.Buffer,
                scratchMean.Buffer, scratchVar.Buffer, momentum, epsilon, y.Buffer, localMean.Buffer,
                localInvStd.Buffer, relu: false);
            localMean.Buffer.CopyToHost(own.AsSpan(1, channels));
            localInvStd.Buffer.CopyToHost(own.AsSpan(1 + channels, channels));
        }
        var ranks = Gather.ToAll<T>(communicator, own, device);

        // Pooled statistics, in float64 and rank order (the same arithmetic on every rank).
        double count = 0;
        var mean = new double[channels];
        var variance = new double[channels];
        foreach (var row in ranks)
        {
            double n = double.CreateChecked(row[0]);
            count += n;
            for (int c = 0; c < channels; c++) mean[c] += n * double.CreateChecked(row[1 + c]);
        }
        for (int c = 0; c < channels; c++) mean[c] /= count;
        foreach (var row in ranks)
        {
            double n = double.CreateChecked(row[0]);
            for (int c = 0; c < channels; c++)
            {
                double invStd = double.CreateChecked(row[1 + channels + c]);
                double deviation = double.CreateChecked(row[1 + c]) - mean[c];
                variance[c] += n * (Math.Max(0, 1 / (invStd * invStd) - epsilon) + deviation * deviation);
            }
        }
        for (int c = 0; c < channels; c++) variance[c] /= count;

        var pooledMean = Tensor.Unscoped<T>([channels], device);
        var pooledVar = Tensor.Unscoped<T>([channels], device);
        var pooledInvStd = Tensor.Unscoped<T>([channels], device);
        y.Attach(pooledMean);
        y.Attach(pooledVar);
        y.Attach(pooledInvStd);
        pooledMean.Buffer.CopyFromHost(mean.Select(T.CreateChecked).ToArray());
        pooledVar.Buffer.CopyFromHost(variance.Select(T.CreateChecked).ToArray());
        backend.InverseStandardDeviation(pooledVar.Buffer, epsilon, pooledInvStd.Buffer);
        backend.BatchNormForwardInference(batch, channels, spatial, x.Buffer, gamma.Buffer, beta.Buffer,
            pooledMean.Buffer, pooledVar.Buffer, epsilon, y.Buffer, relu);
        UpdateRunning(runningMean, runningVar, mean, variance, count, momentum);

        return Graph.Record(y, "synchronised batch-norm (train)" + (relu ? " + relu" : ""), [x, gamma, beta], dy =>
        {
            var dx = new Tensor<T>(dy.Device, x.Shape);
            var dgamma = new Tensor<T>(dy.Device, gamma.Shape);
            var dbeta = new Tensor<T>(dy.Device, beta.Shape);
            backend.BatchNormBackward(batch, channels, spatial, x.Buffer, dy.Buffer, gamma.Buffer, pooledMean.Buffer,
                pooledInvStd.Buffer, batchStatistics: false, dx.Buffer, dgamma.Buffer, dbeta.Buffer,
                relu ? y.Buffer : null);
            var sums = new T[2 * channels];
            dgamma.Buffer.CopyToHost(sums.AsSpan(0, channels));
            dbeta.Buffer.CopyToHost(sums.AsSpan(channels, channels));
            var all = Gather.ToAll<T>(communicator, sums, dy.Device);
            var gammas = gamma.ToArray();
            var invStds = pooledInvStd.ToArray();
            var scale = new T[channels];
            var shift = new T[channels];
            for (int c = 0; c < channels; c++)
            {
                double g = 0, s = 0;
                foreach (var row in all)
                {
                    g += double.CreateChecked(row[c]);
                    s += double.CreateChecked(row[channels + c]);
                }
                double factor = -double.CreateChecked(gammas[c]) * double.CreateChecked(invStds[c]) / count;
                scale[c] = T.CreateChecked(factor * g);
                shift[c] = T.CreateChecked(factor * s);
            }
            using var scaleTensor = Tensor.FromArray(scale, [channels], dy.Device);
            using var shiftTensor = Tensor.FromArray(shift, [channels], dy.Device);
            using var correction = new Tensor<T>(dy.Device, x.Shape);
            backend.BatchNormForwardInference(batch, channels, spatial, x.Buffer, scaleTensor.Buffer,
                shiftTensor.Buffer, pooledMean.Buffer, pooledVar.Buffer, epsilon, correction.Buffer, relu: false);
            backend.Axpy(T.One, correction.Buffer, dx.Buffer);
            return [x.RequiresGrad ? dx : null, gamma.RequiresGrad ? dgamma : null, beta.RequiresGrad ? dbeta : null];
        });
    }

    /// <summary>running = (1 − momentum)·running + momentum·pooled, with the unbiased pooled variance, as
    /// BatchNormForwardTraining updates them from one batch.</summary>
    private static void UpdateRunning<T>(Tensor<T> runningMean, Tensor<T> runningVar, double[] mean,
        double[] variance, double count, double momentum) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var runMean = runningMean.ToArray();
        var runVar = runningVar.ToArray();
        T m = T.CreateChecked(momentum), keep = T.One - m;
        for (int c = 0; c < mean.Length; c++)
        {
            runMean[c] = keep * runMean[c] + m * T.CreateChecked(mean[c]);
            runVar[c] = keep * runVar[c] + m * T.CreateChecked(variance[c] * count / (count - 1));
        }
        runningMean.Buffer.CopyFromHost(runMean);
        runningVar.Buffer.CopyFromHost(runVar);
    }
}
