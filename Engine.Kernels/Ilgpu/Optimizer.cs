// The optimizers with PyTorch's semantics, one parameter tensor per launch (grid-stride over its elements); the
// multi-tensor SgdSteps and AdamSteps queue one launch per tensor.
// SGD with momentum, dampening, Nesterov and weight decay (torch.optim.SGD):
//   g = grad + wd·param
//   buf = g (first step) | momentum·buf + (1 − dampening)·g;  g = buf, or g + momentum·buf with Nesterov
//   param −= lr·g
// Adam and AdamW (torch.optim.Adam, AdamW; coefficients from AdamCoefficients):
//   g = grad + wd·param (Adam) | param ·= 1 − lr·wd (AdamW)
//   m += (1 − beta1)·(g − m);  v = beta2·v + (1 − beta2)·g²;  AMSGrad: vmax = max(vmax, v), used as v (torch.maximum: a NaN in either gives NaN, on
//   every backend)
//   param −= lr / (1 − beta1^t) · m / (√v / √(1 − beta2^t) + eps)
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>SgdParameters in the element type, for kernels.</summary>
public readonly struct SgdCoefficients<T>(SgdParameters p, bool firstStep) where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The learning rate.</summary>
    public readonly T LearningRate = T.CreateChecked(p.LearningRate);
    /// <summary>The momentum factor.</summary>
    public readonly T Momentum = T.CreateChecked(p.Momentum);
    /// <summary>1 − dampening.</summary>
    public readonly T OneMinusDampening = T.CreateChecked(1 - p.Dampening);
    /// <summary>The L2 weight decay.</summary>
    public readonly T WeightDecay = T.CreateChecked(p.WeightDecay);
    /// <summary>1 for Nesterov momentum, else 0.</summary>
    public readonly int Nesterov = p.Nesterov ? 1 : 0;
    /// <summary>1 when momentum is non-zero, else 0.</summary>
    public readonly int UsesMomentum = p.Momentum != 0 ? 1 : 0;
    /// <summary>1 on the first step (the momentum buffer is initialised with the gradient), else 0.</summary>
    public readonly int FirstStep = firstStep ? 1 : 0;
}

/// <summary>The optimizer kernels: one thread per parameter element.</summary>
public static class OptimizerKernels
{
    /// <summary>One SGD step of the elements of this thread (KernelIndex.Global) (torch.optim.SGD's update).</summary>
    public static void SgdStep<T>(Index1D launchIndex, ArrayView<T> param, ArrayView<T> grad, ArrayView<T> buffer,
        SgdCoefficients<T> k, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (long i = thread; i < param.Length; i += stride)
        {
            T g = grad[i] + k.WeightDecay * param[i];
            if (k.UsesMomentum != 0)
            {
                T b = k.FirstStep != 0 ? g : k.Momentum * buffer[i] + k.OneMinusDampening * g;
                buffer[i] = b;
                g = k.Nesterov != 0 ? g + k.Momentum * b : b;
            }
            param[i] -= k.LearningRate * g;
        }
    }

    /// <summary>One Adam/AdamW step of the elements of this thread (KernelIndex.Global) (torch.optim.Adam/AdamW's
    /// update).</summary>
    public static void AdamStep<T>(Index1D launchIndex, ArrayView<T> param, ArrayView<T> grad, ArrayView<T> expAvg,
        ArrayView<T> expAvgSq, ArrayView<T> maxExpAvgSq, AdamCoefficients<T> k, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (long i = thread; i < param.Length; i += stride)
        {
            T p = param[i];
            T g = grad[i] + k.GradientDecay * p;
            p *= k.ParameterScale;
            T m = expAvg[i];
            m += k.OneMinusBeta1 * (g - m);
            T v = k.Beta2 * expAvgSq[i] + k.OneMinusBeta2 * (g * g);
            expAvg[i] = m;
            expAvgSq[i] = v;
            if (k.Amsgrad != 0)
            {
                T max = maxExpAvgSq[i];
                v = max > v || T.IsNaN(max) ? max : v; // torch.maximum: a NaN in either wins (v's by the compare)
                maxExpAvgSq[i] = v;
            }
            param[i] = p - k.StepSize * (m / (T.Sqrt(v) / k.BiasCorrection2Sqrt + k.Epsilon));
        }
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    /// <remarks>One launch of the SgdStep kernel per tensor for now, queued back to back on the stream.</remarks>
    protected override void SgdStepsCore<T>(SgdParameters p, IReadOnlyList<SgdTensor<T>> tensors)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            SgdCoefficients<T>, int>>(nameof(OptimizerKernels.SgdStep),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, SgdCoefficients<T>,
                int>(OptimizerKernels.SgdStep));
        foreach (var t in tensors)
        {
            int extent = StreamExtent(t.Parameter.Length);
            kernel(_accelerator.DefaultStream, extent, View(t.Parameter), View(t.Grad),
                t.MomentumBuffer is null ? View(t.Grad) : View(t.MomentumBuffer),
                new SgdCoefficients<T>(p, t.FirstStep), extent);
        }
    }

    /// <inheritdoc/>
    /// <remarks>One launch of the AdamStep kernel per tensor, with its own step's coefficients, queued back to back on
    /// the stream.</remarks>
    protected override void AdamStepsCore<T>(IReadOnlyList<AdamTensor<T>> tensors)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            ArrayView<T>, AdamCoefficients<T>, int>>(nameof(OptimizerKernels.AdamStep),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, ArrayView<T>,
                ArrayView<T>, AdamCoefficients<T>, int>(OptimizerKernels.AdamStep));
        foreach (var t in tensors)
        {
            int extent = StreamExtent(t.Parameter.Length);
            kernel(_accelerator.DefaultStream, extent, View(t.Parameter), View(t.Grad), View(t.ExpAvg),
                View(t.ExpAvgSq), View(t.MaxExpAvgSq ?? t.ExpAvgSq), t.Coefficients, extent);
        }
    }
}
