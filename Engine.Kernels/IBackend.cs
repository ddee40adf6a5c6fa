// The backend interface: the only door from Engine.Core to compute.
//
// A backend owns device memory (DeviceBuffer<T>) and runs every op on it. Buffers are flat, densely packed
// arrays; shapes are the caller's business, but every method validates the lengths it is given before any launch
// and throws ArgumentException naming them, so an out-of-bounds access inside a kernel cannot be reached.
// Element types are float and double (any T : unmanaged, IFloatingPointIeee754<T> compiles; the engine uses those two).
//
// Gradient rule (as in llm.c): forward ops write their output (=); the autograd engine accumulates gradients
// with Axpy (+=).
//
// Threads: a backend serves one calling thread at a time (its scratch memory and kernel streams are shared by
// its ops); use one device per thread for concurrent work.
using System.Numerics;

namespace Engine.Kernels;

/// <summary>A flat array of <typeparamref name="T"/> living on one backend.</summary>
public abstract class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    /// <summary>Number of elements.</summary>
    public abstract long Length { get; }

    /// <summary>The backend that owns this memory.</summary>
    public abstract IBackend Backend { get; }

    /// <summary>True once the memory has been released.</summary>
    public abstract bool IsDisposed { get; }

    /// <summary>Copies <paramref name="source"/> (exactly <see cref="Length"/> elements) into this buffer.</summary>
    public abstract void CopyFromHost(ReadOnlySpan<T> source);

    /// <summary>Copies this buffer into <paramref name="destination"/> (exactly <see cref="Length"/> elements).</summary>
    public abstract void CopyToHost(Span<T> destination);

    /// <summary>Releases the device memory; using the buffer afterwards is an error.</summary>
    public abstract void Dispose();
}

/// <summary>
/// Every compute op the core needs. Implementations: <c>IlgpuBackend</c> (CUDA, OpenCL, ILGPU CPU accelerator);
/// a managed-SIMD CPU backend drops in behind the same interface.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>Short device kind: <c>cuda</c>, <c>opencl</c>, <c>ilgpu-cpu</c>.</summary>
    string Kind { get; }

    /// <summary>Human-readable description of the hardware behind the backend.</summary>
    string Description { get; }

    /// <summary>Number of kernels compiled and loaded so far (each is loaded once per backend and cached).</summary>
    int LoadedKernelCount { get; }

    /// <summary>Allocates an uninitialised buffer of <paramref name="length"/> elements.</summary>
    DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged;

    /// <summary>Waits until every queued op has finished.</summary>
    void Synchronize();

    // ---- elementwise (Elementwise.cs) ----

    /// <summary>y[i] = value.</summary>
    void Fill<T>(DeviceBuffer<T> y, T value) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = x[i].</summary>
    void Copy<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = a[i] + b[i].</summary>
    void Add<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = a[i] * b[i].</summary>
    void Multiply<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = alpha * x[i].</summary>
    void Scale<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] += alpha * x[i] (gradient accumulation).</summary>
    void Axpy<T>(T alpha, DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = max(x[i], 0).</summary>
    void Relu<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dx[i] = y[i] &gt; 0 ? dy[i] : 0, where y is ReLU's output.</summary>
    void ReluBackward<T>(DeviceBuffer<T> y, DeviceBuffer<T> dy, DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = alpha * scalar[0] (spreads a scalar gradient, e.g. the backward of sum and mean).</summary>
    void BroadcastScalar<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- reductions (Reduction.cs) ----

    /// <summary>result[0] = alpha * sum(x). Deterministic: the same inputs give the same bits on every run.</summary>
    void Sum<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>result[c] = sum over n and hw of x[n, c, hw], for x [N, C, HW] (bias gradients).</summary>
    void SumPerChannel<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> result)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[n, c, hw] += bias[c], for y [N, C, HW].</summary>
    void AddPerChannel<T>(int batch, int channels, int spatial, DeviceBuffer<T> bias, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- convolution (Convolution.cs): x [N,C,H,W], w [K,C,R,S], bias [K], y [N,K,OH,OW] ----

    /// <summary>y = conv(x, w) (+ bias when given).</summary>
    void Conv2dForward<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w, DeviceBuffer<T>? bias,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dx = the gradient of the input (overwritten).</summary>
    void Conv2dBackwardData<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dw = the gradient of the weight (overwritten).</summary>
    void Conv2dBackwardWeight<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy, DeviceBuffer<T> dw)
        where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- matrix multiply (Gemm.cs): row-major matrices ----

    /// <summary>C[m×n] = alpha · op(A) · op(B) + beta · C, op(A) m×k and op(B) k×n; op transposes when asked
    /// (A is stored k×m when transposed, B n×k). beta = 0 ignores C's old contents.</summary>
    void Gemm<T>(bool transposeA, bool transposeB, int m, int n, int k, T alpha, DeviceBuffer<T> a,
        DeviceBuffer<T> b, T beta, DeviceBuffer<T> c) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- batch normalisation (BatchNorm.cs): x, y [N, C, HW]; per-channel vectors [C] ----

    /// <summary>Training mode: normalises with the batch mean and biased variance, saves the mean and
    /// 1/sqrt(var + eps) for backward, and updates the running statistics with <paramref name="momentum"/>
    /// (running variance from the unbiased batch variance), as PyTorch. With <paramref name="relu"/>, y is
    /// max(batch-norm(x), 0) (the fused BN+ReLU of every ResNet block).</summary>
    void BatchNormForwardTraining<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> gamma,
        DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar, double momentum,
        double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd, bool relu)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Eval mode: normalises with the running statistics (then ReLU when <paramref name="relu"/>).</summary>
    void BatchNormForwardInference<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> gamma,
        DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar, double epsilon,
        DeviceBuffer<T> y, bool relu) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Gradients of input, gamma and beta (all overwritten). <paramref name="mean"/> and
    /// <paramref name="invStd"/> are what normalised x; with <paramref name="batchStatistics"/> they depend on x
    /// (training mode), otherwise they are constants (eval mode). <paramref name="reluOutput"/>, when given, is
    /// the output of a fused BN+ReLU: dy counts only where it is positive.</summary>
    void BatchNormBackward<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> dy,
        DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd, bool batchStatistics,
        DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta, DeviceBuffer<T>? reluOutput)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>invStd[c] = 1 / sqrt(variance[c] + epsilon) (eval-mode statistics for BatchNormBackward).</summary>
    void InverseStandardDeviation<T>(DeviceBuffer<T> variance, double epsilon, DeviceBuffer<T> invStd)
        where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- pooling (Pooling.cs) ----

    /// <summary>Max pooling; argmax[o] is the flat index within the (n, c) input plane of the maximum (the first
    /// in row-major window order on ties).</summary>
    void MaxPoolForward<T>(PoolGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y, DeviceBuffer<int> argmax)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dx (overwritten) receives each dy at its argmax, summed where windows overlap.</summary>
    void MaxPoolBackward<T>(PoolGeometry g, DeviceBuffer<T> dy, DeviceBuffer<int> argmax, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[n, c] = mean over hw of x[n, c, hw].</summary>
    void GlobalAveragePoolForward<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dx[n, c, hw] = dy[n, c] / HW.</summary>
    void GlobalAveragePoolBackward<T>(int batch, int channels, int spatial, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- loss (Loss.cs): logits [N, classes], labels [N] in [0, classes) ----
    // Precondition: the label VALUES lie in [0, classes). A backend checks the label buffer's length but not its
    // values (that would copy the labels back to the host and synchronise on every loss); callers check them on the
    // host before upload with Validate.Labels, as Engine.Core's CrossEntropy and TopKCorrect do. A label outside
    // the range never indexes memory: that sample's loss and gradient row are NaN and it counts as not correct.

    /// <summary>probabilities = softmax(logits) per row; losses[i] = −log p[i, label[i]], computed stably
    /// (log-sum-exp with the row maximum subtracted). Labels must lie in [0, classes) (see above); a sample whose
    /// label does not gets losses[i] = NaN.</summary>
    void SoftmaxCrossEntropyForward<T>(int batch, int classes, DeviceBuffer<T> logits, DeviceBuffer<int> labels,
        DeviceBuffer<T> probabilities, DeviceBuffer<T> losses) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dlogits = (probabilities − onehot(labels)) · alpha · lossGrad[0]; a row whose label lies outside
    /// [0, classes) is NaN.</summary>
    void SoftmaxCrossEntropyBackward<T>(int batch, int classes, DeviceBuffer<T> probabilities,
        DeviceBuffer<int> labels, DeviceBuffer<T> lossGrad, T alpha, DeviceBuffer<T> dlogits)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>correct[i] = 1 when label[i] is among the <paramref name="k"/> largest logits of row i (ties go to
    /// the lower class index), else 0 (also 0 for a label outside [0, classes)).</summary>
    void TopKCorrect<T>(int batch, int classes, int k, DeviceBuffer<T> logits, DeviceBuffer<int> labels,
        DeviceBuffer<int> correct) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- option-A shortcut (Shortcut.cs) ----

    /// <summary>Subsamples by the stride and places the input channels at PadFront, zeros elsewhere.</summary>
    void ShortcutForward<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dx (overwritten) = dy at the kept positions and channels, 0 at the skipped positions.</summary>
    void ShortcutBackward<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- optimizer (Optimizer.cs) ----

    /// <summary>One SGD step on one parameter, in place, with PyTorch's semantics: g = grad + wd·param;
    /// with momentum, buf = g on the first step, else momentum·buf + (1 − dampening)·g, and g = buf (or
    /// g + momentum·buf with Nesterov); param −= lr·g. <paramref name="momentumBuffer"/> may be null when
    /// momentum is 0.</summary>
    void SgdStep<T>(SgdParameters p, DeviceBuffer<T> param, DeviceBuffer<T> grad, DeviceBuffer<T>? momentumBuffer,
        bool firstStep) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Step <paramref name="step"/> (1-based) of Adam or AdamW on one parameter, in place, with PyTorch's
    /// single-tensor semantics: g = grad + wd·param (Adam) or param ·= 1 − lr·wd (AdamW);
    /// m += (1 − beta1)·(g − m); v = beta2·v + (1 − beta2)·g²; with AMSGrad vmax = max(vmax, v) replaces v below;
    /// param −= lr / (1 − beta1^step) · m / (√v / √(1 − beta2^step) + eps). <paramref name="maxExpAvgSq"/> may be
    /// null without AMSGrad.</summary>
    void AdamStep<T>(AdamParameters p, int step, DeviceBuffer<T> param, DeviceBuffer<T> grad, DeviceBuffer<T> expAvg,
        DeviceBuffer<T> expAvgSq, DeviceBuffer<T>? maxExpAvgSq) where T : unmanaged, IFloatingPointIeee754<T>;
}
