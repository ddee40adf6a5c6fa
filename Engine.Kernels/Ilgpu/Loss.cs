// Softmax cross-entropy over integer labels, and top-k accuracy. logits and probabilities are [N, classes],
// labels [N]. The label values are checked once, on the host, before upload (Validate.Labels, called by
// Engine.Core); here only the buffers' lengths are checked, so no launch reads the labels back (a device→host copy
// would synchronise on every loss). A label outside [0, classes) that reaches a kernel anyway (a direct Backend
// caller) indexes nothing: its sample gets a NaN loss, a NaN gradient row and "not correct".
//
// Forward: one thread per sample (grid-stride): the row maximum m, then Σexp(z − m), so exp never overflows;
// loss = log Σexp(z − m) − (z_label − m). Backward: dlogits = (p − onehot) · alpha · dL, elementwise (alpha = 1/N
// for the batch mean).
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The kernels of softmax cross-entropy and top-k accuracy over logits [N, classes] and labels [N];
/// grid-stride, one thread per sample (forward, top-k) or per logit (backward).</summary>
public static class LossKernels
{
    /// <summary>Per sample: probabilities[n, :] = softmax(logits[n, :]) and losses[n] = −log p[n, labels[n]], with the
    /// row maximum subtracted before exp (log-sum-exp), as torch.nn.functional.cross_entropy.</summary>
    public static void SoftmaxCrossEntropyForward<T>(Index1D launchIndex, ArrayView<T> logits, ArrayView<int> labels,
        ArrayView<T> probabilities, ArrayView<T> losses, int classes, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (long sample = thread; sample < losses.Length; sample += stride)
        {
            long row = sample * classes;
            T max = logits[row];
            for (int j = 1; j < classes; j++) max = T.Max(max, logits[row + j]);
            T sum = T.Zero;
            for (int j = 0; j < classes; j++)
            {
                T e = T.Exp(logits[row + j] - max);
                probabilities[row + j] = e;
                sum += e;
            }
            T inverse = T.One / sum;
            for (int j = 0; j < classes; j++) probabilities[row + j] *= inverse;
            int label = labels[sample];
            losses[sample] = (uint)label < (uint)classes ? T.Log(sum) - (logits[row + label] - max) : T.NaN;
        }
    }

    /// <summary>Per logit: dlogits[n, j] = (p[n, j] − [j = labels[n]]) · alpha · lossGrad[0]; NaN for a sample whose
    /// label is outside [0, classes).</summary>
    public static void SoftmaxCrossEntropyBackward<T>(Index1D launchIndex, ArrayView<T> probabilities,
        ArrayView<int> labels, ArrayView<T> lossGrad, T alpha, ArrayView<T> dlogits, int classes, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        T scale = alpha * lossGrad[0];
        for (long i = thread; i < dlogits.Length; i += stride)
        {
            long sample = i / classes;
            int j = (int)(i - sample * classes);
            int label = labels[sample];
            T target = label == j ? T.One : T.Zero;
            dlogits[i] = (uint)label < (uint)classes ? (probabilities[i] - target) * scale : T.NaN;
        }
    }

    /// <summary>correct[i] = 1 when fewer than k classes rank above the label (a class ranks above when its
    /// logit is larger, or equal with a lower index); 0 for a row holding a NaN and for a label outside
    /// [0, classes).</summary>
    public static void TopKCorrect<T>(Index1D launchIndex, ArrayView<T> logits, ArrayView<int> labels,
        ArrayView<int> correct, int classes, int k, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (long sample = thread; sample < correct.Length; sample += stride)
        {
            long row = sample * classes;
            int label = labels[sample];
            if ((uint)label >= (uint)classes)
            {
                correct[sample] = 0;
                continue;
            }
            T target = logits[row + label];
            int above = 0;
            bool hasNaN = false;
            for (int j = 0; j < classes; j++)
            {
                T value = logits[row + j];
                if (value > target || (value == target && j < label)) above++;
                hasNaN |= T.IsNaN(value);
            }
            correct[sample] = above < k && !hasNaN ? 1 : 0;
        }
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    protected override void SoftmaxCrossEntropyForwardCore<T>(int batch, int classes, DeviceBuffer<T> logits,
        DeviceBuffer<int> labels, DeviceBuffer<T> probabilities, DeviceBuffer<T> losses)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<int>, ArrayView<T>,
            ArrayView<T>, int, int>>(nameof(LossKernels.SoftmaxCrossEntropyForward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<int>, ArrayView<T>, ArrayView<T>,
                int, int>(LossKernels.SoftmaxCrossEntropyForward));
        int extent = StreamExtent(batch);
        kernel(_accelerator.DefaultStream, extent, View(logits), View(labels), View(probabilities), View(losses),
            classes, extent);
    }

    /// <inheritdoc/>
    protected override void SoftmaxCrossEntropyBackwardCore<T>(int batch, int classes, DeviceBuffer<T> probabilities,
        DeviceBuffer<int> labels, DeviceBuffer<T> lossGrad, T alpha, DeviceBuffer<T> dlogits)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<int>, ArrayView<T>, T,
            ArrayView<T>, int, int>>(nameof(LossKernels.SoftmaxCrossEntropyBackward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<int>, ArrayView<T>, T, ArrayView<T>,
                int, int>(LossKernels.SoftmaxCrossEntropyBackward));
        int extent = StreamExtent(dlogits.Length);
        kernel(_accelerator.DefaultStream, extent, View(probabilities), View(labels), View(lossGrad), alpha,
            View(dlogits), classes, extent);
    }

    /// <inheritdoc/>
    protected override void TopKCorrectCore<T>(int batch, int classes, int k, DeviceBuffer<T> logits,
        DeviceBuffer<int> labels,
        DeviceBuffer<int> correct)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<int>, ArrayView<int>, int,
            int, int>>(nameof(LossKernels.TopKCorrect),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<int>, ArrayView<int>, int, int, int>(
                LossKernels.TopKCorrect));
        int extent = StreamExtent(batch);
        kernel(_accelerator.DefaultStream, extent, View(logits), View(labels), View(correct), classes, k, extent);
    }
}
