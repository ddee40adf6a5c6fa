// Batch normalisation over [N, C, HW] tensors, per channel c (vectors gamma, beta, running and saved statistics
// are [C]), with PyTorch's semantics: training mode normalises with the batch mean and the biased variance and
// folds the unbiased variance (or, asked for ONNX's convention, the biased one: unbiasFactor 1) into the running
// variance with the given momentum; eval mode uses the running
// statistics. Every kernel can fuse the ReLU that follows batch-norm in a ResNet block (y = max(bn(x), 0); in
// backward, dy counts only where y > 0), saving a pass over the activations each way.
//
// Statistics: one group per channel (see Reduction.cs) computes the mean, then the sum of squared deviations
// from it in a second pass over the data — two passes, so no E[x²] − E[x]² cancellation. Normalisation and the
// input gradient are grid-stride elementwise kernels. Backward needs Σdy and Σdy·x̂ per channel (the gradients
// of beta and gamma), then
//   dx = gamma·invStd · (dy − Σdy/M − x̂·Σdy·x̂/M)   with batch statistics (M = N·HW),
//   dx = gamma·invStd · dy                           with running statistics (constants in eval mode).
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The batch-norm kernels over [N, C, HW]: per-channel reductions with one group per channel, and grid-stride
/// elementwise passes.</summary>
public static class BatchNormKernels
{
    /// <summary>Per channel (one group each): batch mean and 1/sqrt(biased var + eps) into the saved vectors,
    /// and the running statistics updated in place.</summary>
    public static void Statistics<T>(ArrayView<T> x, ArrayView<T> savedMean, ArrayView<T> savedInvStd,
        ArrayView<T> runningMean, ArrayView<T> runningVar, int channels, int spatial, int count, T inverseCount,
        T unbiasFactor, T momentum, T epsilon) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int channel = Grid.IdxX;
        var scratch = SharedMemory.GetDynamic<T>();
        long length = ReductionKernels.StridedCount(Group.IdxX, Group.DimX, count);
        T sum = ReductionKernels.BlockedSum<T, ChannelValues<T>>(
            new ChannelValues<T>(x, channel, channels, spatial), Group.IdxX, Group.DimX, length);
        T mean = ReductionKernels.GroupSum(sum, scratch) * inverseCount;

        T squares = ReductionKernels.BlockedSum<T, ChannelSquaredDeviations<T>>(
            new ChannelSquaredDeviations<T>(x, channel, channels, spatial, mean), Group.IdxX, Group.DimX, length);
        T variance = ReductionKernels.GroupSum(squares, scratch) * inverseCount;

        if (Group.IdxX != 0) return;
        savedMean[channel] = mean;
        savedInvStd[channel] = T.One / T.Sqrt(variance + epsilon);
        runningMean[channel] = (T.One - momentum) * runningMean[channel] + momentum * mean;
        runningVar[channel] = (T.One - momentum) * runningVar[channel] + momentum * variance * unbiasFactor;
    }

    /// <summary>y = (x − mean[c])·invStd[c]·gamma[c] + beta[c] (then ReLU when relu ≠ 0), grid-stride.</summary>
    public static void Normalize<T>(Index1D thread, ArrayView<T> x, ArrayView<T> mean, ArrayView<T> invStd,
        ArrayView<T> gamma, ArrayView<T> beta, ArrayView<T> y, int channels, int spatial, int relu, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < y.Length; i += stride)
        {
            int c = (int)(i / spatial % channels);
            T value = (x[i] - mean[c]) * invStd[c] * gamma[c] + beta[c];
            y[i] = relu != 0 && value < T.Zero ? T.Zero : value;
        }
    }

    /// <summary>Eval mode: y = (x − runningMean[c]) / sqrt(runningVar[c] + eps)·gamma[c] + beta[c] (then ReLU).</summary>
    public static void NormalizeWithRunningStatistics<T>(Index1D thread, ArrayView<T> x, ArrayView<T> runningMean,
        ArrayView<T> runningVar, ArrayView<T> gamma, ArrayView<T> beta, ArrayView<T> y, int channels, int spatial,
        T epsilon, int relu, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < y.Length; i += stride)
        {
            int c = (int)(i / spatial % channels);
            T value = (x[i] - runningMean[c]) / T.Sqrt(runningVar[c] + epsilon) * gamma[c] + beta[c];
            y[i] = relu != 0 && value < T.Zero ? T.Zero : value;
        }
    }

    /// <summary>dy where the fused ReLU's output is positive (or everywhere without a fused ReLU); 0 where it is
    /// not, NaN included.</summary>
    private static T MaskedGradient<T>(ArrayView<T> dy, ArrayView<T> reluOutput, int relu, long index)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        relu == 0 || reluOutput[index] > T.Zero ? dy[index] : T.Zero;

    /// <summary>invStd[c] = 1 / sqrt(variance[c] + eps).</summary>
    public static void InverseStandardDeviation<T>(Index1D c, ArrayView<T> variance, ArrayView<T> invStd, T epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        invStd[c] = T.One / T.Sqrt(variance[c] + epsilon);
    }

    /// <summary>Per channel (one group each): dbeta = Σdy, dgamma = Σdy·x̂.</summary>
    public static void ParameterGradients<T>(ArrayView<T> x, ArrayView<T> dy, ArrayView<T> reluOutput,
        ArrayView<T> mean, ArrayView<T> invStd, ArrayView<T> dgamma, ArrayView<T> dbeta, int channels, int spatial,
        int count, int relu) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int channel = Grid.IdxX;
        var scratch = SharedMemory.GetDynamic<T>();
        T m = mean[channel], s = invStd[channel];
        T sumDy = T.Zero, sumDyXhat = T.Zero;
        for (int i = Group.IdxX; i < count; i += Group.DimX)
        {
            long index = ReductionKernels.ChannelElement(i, channel, channels, spatial);
            T g = MaskedGradient(dy, reluOutput, relu, index);
            sumDy += g;
            sumDyXhat += g * (x[index] - m) * s;
        }
        T totalDy = ReductionKernels.GroupSum(sumDy, scratch);
        T totalDyXhat = ReductionKernels.GroupSum(sumDyXhat, scratch);
        if (Group.IdxX != 0) return;
        dbeta[channel] = totalDy;
        dgamma[channel] = totalDyXhat;
    }

    /// <summary>dx per element, grid-stride. Bit 0 of <paramref name="flags"/> (batch statistics) adds the terms
    /// through the batch mean and variance; bit 1 (fused ReLU) counts dy only where reluOutput is positive.</summary>
    public static void InputGradient<T>(Index1D thread, ArrayView<T> x, ArrayView<T> dy, ArrayView<T> reluOutput,
        ArrayView<T> gamma, ArrayView<T> mean, ArrayView<T> invStd, ArrayView<T> dgamma, ArrayView<T> dbeta,
        ArrayView<T> dx, int channels, int spatial, int flags, T inverseCount, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int batchStatistics = flags & 1, relu = flags & 2;
        for (long i = thread; i < dx.Length; i += stride)
        {
            int c = (int)(i / spatial % channels);
            T scale = gamma[c] * invStd[c];
            T g = MaskedGradient(dy, reluOutput, relu, i);
            if (batchStatistics != 0)
            {
                T xhat = (x[i] - mean[c]) * invStd[c];
                dx[i] = scale * (g - dbeta[c] * inverseCount - xhat * dgamma[c] * inverseCount);
            }
            else
            {
                dx[i] = scale * g;
            }
        }
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    protected override void BatchNormForwardTrainingCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double momentum, double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd,
        bool relu, RunningVarianceUpdate varianceUpdate)
    {
        int count = batch * spatial;
        bool unbiased = varianceUpdate == RunningVarianceUpdate.Unbiased;
        var statistics = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, int, int, int, T, T, T, T>>(nameof(BatchNormKernels.Statistics),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int,
                int, T, T, T, T>(BatchNormKernels.Statistics));
        statistics(_accelerator.DefaultStream, PerChannelConfig<T>(channels), View(x), View(savedMean),
            View(savedInvStd), View(runningMean), View(runningVar), channels, spatial, count,
            T.One / T.CreateChecked(count), unbiased && count > 1 ? T.CreateChecked(count / (count - 1.0)) : T.One,
            T.CreateChecked(momentum), T.CreateChecked(epsilon));

        var normalize = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>>(nameof(BatchNormKernels.Normalize),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, int, int, int, int>(BatchNormKernels.Normalize));
        int extent = StreamExtent(y.Length);
        normalize(_accelerator.DefaultStream, extent, View(x), View(savedMean), View(savedInvStd), View(gamma),
            View(beta), View(y), channels, spatial, relu ? 1 : 0, extent);
    }

    /// <inheritdoc/>
    protected override void BatchNormForwardInferenceCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double epsilon, DeviceBuffer<T> y, bool relu)
    {
        var normalize = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, T, int, int>>(
            nameof(BatchNormKernels.NormalizeWithRunningStatistics),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, int, int, T, int, int>(BatchNormKernels.NormalizeWithRunningStatistics));
        int extent = StreamExtent(y.Length);
        normalize(_accelerator.DefaultStream, extent, View(x), View(runningMean), View(runningVar), View(gamma),
            View(beta), View(y), channels, spatial, T.CreateChecked(epsilon), relu ? 1 : 0, extent);
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
        DeviceBuffer<T> dy,
        DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd, bool batchStatistics,
        DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta, DeviceBuffer<T>? reluOutput)
    {
        var mask = View(reluOutput ?? dy);
        int relu = reluOutput is null ? 0 : 1;
        int count = batch * spatial;
        var parameters = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, int>>(
            nameof(BatchNormKernels.ParameterGradients),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, int, int, int, int>(BatchNormKernels.ParameterGradients));
        parameters(_accelerator.DefaultStream, PerChannelConfig<T>(channels), View(x), View(dy), mask, View(mean),
            View(invStd), View(dgamma), View(dbeta), channels, spatial, count, relu);

        var input = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, T,
            int>>(nameof(BatchNormKernels.InputGradient),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>, int, int, int, T, int>(
                BatchNormKernels.InputGradient));
        int extent = StreamExtent(dx.Length);
        input(_accelerator.DefaultStream, extent, View(x), View(dy), mask, View(gamma), View(mean), View(invStd),
            View(dgamma), View(dbeta), View(dx), channels, spatial, (batchStatistics ? 1 : 0) | (relu << 1),
            T.One / T.CreateChecked(count), extent);
    }
}
