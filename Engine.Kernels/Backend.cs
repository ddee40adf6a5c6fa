// The backend contract: the only door from Engine.Core to compute, written down once.
//
// A backend owns device memory (DeviceBuffer<T>) and runs every op on it. Buffers are flat, densely packed arrays;
// shapes are the caller's business. Each public op of Backend is non-virtual: it checks its arguments once, on the
// host, before anything runs (an ArgumentException that names the op, the argument and the shapes in words), then
// calls the backend's protected *Core method, which may assume every check below has passed. A kernel therefore
// never sees a buffer it could overrun, and no backend repeats a check. Element types: float and double (any
// T : unmanaged, IFloatingPointIeee754<T> compiles; the engine uses those two).
//
// What every op accepts (checked here):
// - buffers: live (ObjectDisposedException otherwise), allocated by this backend, exactly the length the op's
//   extents give. The output of an elementwise op may alias an input.
// - empty inputs: elementwise ops, reductions, GEMM (m, n or k = 0), per-channel sums and adds, global average
//   pooling over an empty batch, the losses and top-k over an empty batch, and optimizer steps over empty buffers
//   are accepted (an empty output is left alone; Sum of nothing is 0; GEMM with k = 0 is C = beta·C).
//   Convolution, max- and average pooling, the option-A shortcut and batch-norm need a non-empty batch and
//   non-empty extents; global average pooling needs at least one channel and a non-empty plane (a mean over
//   nothing is 0/0).
//   Extents are never negative.
// - geometry (ConvGeometry, PoolGeometry, ShortcutGeometry .Validated()): kernel and stride at least 1, per-side
//   pads 0 ≤ pad < kernel, a window no larger than the padded input, tensors under 2^31 elements. Convolution:
//   dilations and groups at least 1, C and K divisible by the groups, the dilated kernel (R − 1)·dilation + 1 no
//   larger than the padded input, w [K, C/groups, R, S]. Pooling: dilation ≥ 1 (average pooling: 1 only) and any
//   per-side pads that leave every window holding an input element (ONNX's rule, looser than PyTorch's pad ≤ half
//   the window: the pad before smaller than the dilated window, the last window starting inside the input); with
//   ceil mode the last window starts inside the input or its top/left padding.
// - strided layouts (StridedLayout): up to six axes, extents non-negative (strides of any sign), under 2^31
//   elements, every offset read or written inside its buffer; the dense output of a strided op never aliases an
//   input; a scatter's layout is one-to-one.
// - batch-norm: momentum in [0, 1] (0 keeps the running statistics, 1 replaces them), epsilon positive and finite,
//   more than one value per channel in training mode (N·HW ≥ 2, as PyTorch), tensors under 2^31 elements, a
//   defined RunningVarianceUpdate; a fused residual (forward) and its gradient (backward) as long as x.
// - convolution forward's epilogue: a residual as long as y and none of y, x or w (y is written block by block
//   while the residual is read); y = conv + bias + residual, then ReLU, each present when asked.
// - losses and top-k: classes ≥ 1; top-k's k in [1, classes]. Label VALUES in [0, classes) are the caller's
//   precondition, checked on the host before upload by Validate.Labels (as Engine.Core's CrossEntropy and
//   TopKCorrect do); a backend checks the label buffer's length only, since reading it back would synchronise the
//   device on every loss. A label outside the range still never indexes memory: that sample's loss and gradient
//   row are NaN and it counts as not correct.
// - optimizers: SgdParameters / AdamParameters .Validated(), Adam's step ≥ 1, the momentum (or AMSGrad) buffer
//   present exactly when needed, all buffers as long as the parameter, an Adam parameter's five buffers distinct;
//   the multi-tensor SgdSteps and AdamSteps take one entry per parameter in every list, and a buffer they write (a
//   parameter, a momentum buffer, an Adam moment) only once; AdamSteps's gradients are none of those.
//
// What every op returns for NaN and ±Inf (PyTorch's answer wherever PyTorch has one): NaN propagates through
// ReLU (plain, fused into batch-norm and into the convolution epilogue; its gradient is 0 where the output is NaN
// or ≤ 0, as PyTorch's threshold_backward), through max-pooling (a NaN wins its window and receives the gradient), average pooling
// (the windows holding a NaN) and every reduction (Sum, SumPerChannel, global average pooling, batch-norm
// statistics, softmax). ±Inf follow IEEE arithmetic. TopKCorrect counts a row that holds a NaN logit as not
// correct (PyTorch's topk ranks NaN above every number, so the true class is not guaranteed a place).
//
// Gradient rule (as in llm.c): forward ops write their output (=); the autograd engine accumulates gradients
// with Axpy (+=).
//
// Write versions: every op adds one to the Version of each buffer it outputs to (including an output that
// aliases an input), and so does a copy from the host. A buffer's contents change only through its backend, so what
// a backend derives from them (the CPU backend's packed convolution weights) stays valid while the version holds.
//
// Threads: a backend may be called from several threads. Every public op, Allocate, Synchronize and the buffer
// copies run under one lock per backend, so a backend's scratch memory and kernel stream never serve two callers
// at once; ops of different threads interleave, each whole. An observer (IBackendObserver) sees each op start and
// finish, each Synchronize and each host copy; with none attached the cost is one null check.
using System.Numerics;

namespace Engine.Kernels;

/// <summary>A flat array of <typeparamref name="T"/> living on one backend.</summary>
public abstract class DeviceBuffer<T> : IDisposable, IWrittenBuffer where T : unmanaged
{
    private long _version;

    /// <summary>How many writes this buffer has had: each op that outputs to it and each copy from the host adds one
    /// when it is issued (under the backend's lock). What a backend derives from a buffer's contents, such as the
    /// CPU backend's packed convolution weights, is keyed on it.</summary>
    public long Version => Volatile.Read(ref _version);

    void IWrittenBuffer.MarkWritten() => Interlocked.Increment(ref _version);

    /// <summary>Number of elements.</summary>
    public abstract long Length { get; }

    /// <summary>The backend that owns this memory.</summary>
    public abstract Backend Backend { get; }

    /// <summary>True once the memory has been released.</summary>
    public abstract bool IsDisposed { get; }

    /// <summary>Copies <paramref name="source"/> (exactly <see cref="Length"/> elements) into this buffer, under the
    /// backend's lock.</summary>
    /// <exception cref="ObjectDisposedException">The buffer has been disposed.</exception>
    /// <exception cref="ArgumentException"><paramref name="source"/> has another length.</exception>
    public void CopyFromHost(ReadOnlySpan<T> source) => Backend.CopyFromHost(this, source);

    /// <summary>Copies this buffer into <paramref name="destination"/> (exactly <see cref="Length"/> elements), under
    /// the backend's lock, once every queued op has finished.</summary>
    /// <exception cref="ObjectDisposedException">The buffer has been disposed.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> has another length.</exception>
    public void CopyToHost(Span<T> destination) => Backend.CopyToHost(this, destination);

    /// <summary>Copies <paramref name="source"/>, already checked to hold <see cref="Length"/> elements, into this
    /// live buffer.</summary>
    protected internal abstract void CopyFromHostCore(ReadOnlySpan<T> source);

    /// <summary>Copies this live buffer into <paramref name="destination"/>, already checked to hold
    /// <see cref="Length"/> elements.</summary>
    protected internal abstract void CopyToHostCore(Span<T> destination);

    /// <summary>Releases the device memory; using the buffer afterwards is an error.</summary>
    public abstract void Dispose();
}

/// <summary>A buffer whose writes are counted (DeviceBuffer.Version).</summary>
internal interface IWrittenBuffer
{
    /// <summary>Counts one write.</summary>
    void MarkWritten();
}

/// <summary>Watches a backend's work: each op as it starts and finishes (by its method name, e.g. <c>Relu</c>),
/// each Synchronize and each host copy. Called on the calling thread, under the backend's lock (so an observer may
/// call the backend, e.g. to synchronise). Every method does nothing unless implemented.</summary>
public interface IBackendObserver
{
    /// <summary>Op <paramref name="op"/> has passed its checks and is about to run.</summary>
    void OnOpStarting(string op) { }

    /// <summary>Op <paramref name="op"/> has been queued (ILGPU) or has finished (cpu).</summary>
    void OnOpFinished(string op) { }

    /// <summary>Synchronize was called.</summary>
    void OnSynchronize() { }

    /// <summary>A buffer of <paramref name="elements"/> elements is being copied to the host.</summary>
    void OnCopyToHost(long elements) { }

    /// <summary>A buffer of <paramref name="elements"/> elements is being copied from the host.</summary>
    void OnCopyFromHost(long elements) { }
}

/// <summary>
/// Every compute op the core needs, checked once here and computed by a backend: <c>IlgpuBackend</c> (CUDA, OpenCL,
/// ILGPU's CPU accelerator) or <c>CpuBackend</c> (managed SIMD). Create one with <see cref="Backends.Create"/>. Safe
/// to call from several threads (ops are serialised per backend). The file header states the full contract.
/// </summary>
public abstract class Backend : IDisposable
{
    private readonly Lock _gate = new();
    private IBackendObserver? _observer;
    private bool _disposed;

    /// <summary>Short device kind: <c>cuda</c>, <c>opencl</c>, <c>cpu</c>, <c>ilgpu-cpu</c>.</summary>
    public abstract string Kind { get; }

    /// <summary>Human-readable description of the hardware behind the backend.</summary>
    public abstract string Description { get; }

    /// <summary>Number of kernels compiled and loaded so far (each is loaded once per backend and cached).</summary>
    public abstract int LoadedKernelCount { get; }

    /// <summary>The observer told of every op, Synchronize and host copy; null (the default) for none. One at a
    /// time: setting it replaces the previous one.</summary>
    public IBackendObserver? Observer
    {
        get => _observer;
        set
        {
            lock (_gate) _observer = value;
        }
    }

    /// <summary>Allocates an uninitialised buffer of <paramref name="length"/> elements.</summary>
    /// <exception cref="ObjectDisposedException">The backend has been disposed.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return AllocateCore<T>(length);
        }
    }

    /// <summary>Waits until every queued op has finished.</summary>
    /// <exception cref="ObjectDisposedException">The backend has been disposed.</exception>
    public void Synchronize()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _observer?.OnSynchronize();
            SynchronizeCore();
        }
    }

    /// <summary>Releases the backend's resources (buffers keep their own memory until disposed); a second call does
    /// nothing.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            DisposeCore();
        }
        GC.SuppressFinalize(this);
    }

    internal void CopyFromHost<T>(DeviceBuffer<T> buffer, ReadOnlySpan<T> source) where T : unmanaged
    {
        lock (_gate)
        {
            CheckHostCopy("copy from host", buffer, source.Length);
            _observer?.OnCopyFromHost(buffer.Length);
            ((IWrittenBuffer)buffer).MarkWritten();
            buffer.CopyFromHostCore(source);
        }
    }

    internal void CopyToHost<T>(DeviceBuffer<T> buffer, Span<T> destination) where T : unmanaged
    {
        lock (_gate)
        {
            CheckHostCopy("copy to host", buffer, destination.Length);
            _observer?.OnCopyToHost(buffer.Length);
            buffer.CopyToHostCore(destination);
        }
    }

    private void CheckHostCopy<T>(string op, DeviceBuffer<T> buffer, int hostLength) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (buffer.IsDisposed)
            throw new ObjectDisposedException(nameof(buffer), $"{op}: the device buffer has been disposed.");
        if (hostLength != buffer.Length)
            throw new ArgumentException(
                $"{op}: the host span has {hostLength} elements; the device buffer has {buffer.Length}.");
    }

    // ---- what a backend implements: called under the lock, with every argument checked ----

    /// <summary>Allocates <paramref name="length"/> (≥ 0) uninitialised elements.</summary>
    protected abstract DeviceBuffer<T> AllocateCore<T>(long length) where T : unmanaged;

    /// <summary>Waits until every queued op has finished.</summary>
    protected abstract void SynchronizeCore();

    /// <summary>Releases the backend's resources; called once.</summary>
    protected abstract void DisposeCore();

    /// <summary>An op has passed its checks: refuses a disposed backend, counts a write to each of its
    /// <paramref name="outputs"/> (DeviceBuffer.Version) and tells the observer.</summary>
    private void Starting(string op, params ReadOnlySpan<IWrittenBuffer?> outputs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var output in outputs) output?.MarkWritten();
        _observer?.OnOpStarting(op);
    }

    /// <summary>An op has run: tells the observer.</summary>
    private void Finished(string op) => _observer?.OnOpFinished(op);

    // ---- elementwise (ops in ElementwiseOps.cs): every buffer [n]; the output may alias an input ----

    /// <summary>y[i] = op(x[i]) for any elementwise op (see ElementwiseOps.cs).</summary>
    public void Map<T, TOp>(DeviceBuffer<T> x, TOp op, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T> =>
        RunMap(nameof(Map), "map", x, op, y);

    /// <summary>y[i] = op(a[i], b[i]) for any elementwise op (see ElementwiseOps.cs).</summary>
    public void Zip<T, TOp>(DeviceBuffer<T> a, DeviceBuffer<T> b, TOp op, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T> =>
        RunZip(nameof(Zip), "zip", a, b, op, y);

    /// <summary>y[i] = x[i].</summary>
    public void Copy<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        RunMap(nameof(Copy), "copy", x, new IdentityOp<T>(), y);

    /// <summary>y[i] = alpha * x[i].</summary>
    public void Scale<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        RunMap(nameof(Scale), "scale", x, new ScaleOp<T>(alpha), y);

    /// <summary>y[i] = max(x[i], 0), NaN where x[i] is NaN.</summary>
    public void Relu<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        RunMap(nameof(Relu), "relu", x, new ReluOp<T>(), y);

    /// <summary>y[i] = a[i] + b[i].</summary>
    public void Add<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        RunZip(nameof(Add), "add", a, b, new AddOp<T>(), y);

    /// <summary>y[i] = a[i] * b[i].</summary>
    public void Multiply<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        RunZip(nameof(Multiply), "multiply", a, b, new MultiplyOp<T>(), y);

    /// <summary>y[i] += alpha * x[i] (gradient accumulation; not fused).</summary>
    public void Axpy<T>(T alpha, DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        RunZip(nameof(Axpy), "axpy", x, y, new AxpyOp<T>(alpha), y);

    /// <summary>dx[i] = y[i] &gt; 0 ? dy[i] : 0, where y is ReLU's output (0 also where y is NaN).</summary>
    public void ReluBackward<T>(DeviceBuffer<T> y, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        RunZip(nameof(ReluBackward), "relu backward", y, dy, new ReluBackwardOp<T>(), dx);

    /// <summary>y[i] = value.</summary>
    public void Fill<T>(DeviceBuffer<T> y, T value) where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            Validate.Owned(this, "fill", nameof(y), y);
            if (y.Length == 0) return;
            Starting(nameof(Fill), y);
            FillCore(y, value);
            Finished(nameof(Fill));
        }
    }

    /// <summary>y[i] = alpha * scalar[0] (spreads a scalar gradient, e.g. the backward of sum and mean).</summary>
    public void BroadcastScalar<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            Validate.Buffer(this, "broadcast scalar", nameof(scalar), scalar, 1);
            Validate.Owned(this, "broadcast scalar", nameof(y), y);
            if (y.Length == 0) return;
            Starting(nameof(BroadcastScalar), y);
            BroadcastScalarCore(scalar, alpha, y);
            Finished(nameof(BroadcastScalar));
        }
    }

    /// <summary>Checks and runs a unary elementwise op, shown to the observer as <paramref name="name"/> and named
    /// <paramref name="op"/> in messages.</summary>
    private void RunMap<T, TOp>(string name, string op, DeviceBuffer<T> x, TOp unary, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T>
    {
        lock (_gate)
        {
            Validate.SameLength(this, op, x, nameof(x), y, nameof(y));
            if (y.Length == 0) return;
            Starting(name, y);
            MapCore(x, unary, y);
            Finished(name);
        }
    }

    /// <summary>Checks and runs a binary elementwise op, shown to the observer as <paramref name="name"/> and named
    /// <paramref name="op"/> in messages.</summary>
    private void RunZip<T, TOp>(string name, string op, DeviceBuffer<T> a, DeviceBuffer<T> b, TOp binary,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        lock (_gate)
        {
            Validate.SameLength(this, op, a, nameof(a), b, nameof(b), y, nameof(y));
            if (y.Length == 0) return;
            Starting(name, y);
            ZipCore(a, b, binary, y);
            Finished(name);
        }
    }

    /// <summary>y[i] = op(x[i]), y non-empty and as long as x (it may be x).</summary>
    protected abstract void MapCore<T, TOp>(DeviceBuffer<T> x, TOp op, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T>;

    /// <summary>y[i] = op(a[i], b[i]), y non-empty and as long as a and b (it may be either).</summary>
    protected abstract void ZipCore<T, TOp>(DeviceBuffer<T> a, DeviceBuffer<T> b, TOp op, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>;

    /// <summary>y[i] = value, y non-empty.</summary>
    protected abstract void FillCore<T>(DeviceBuffer<T> y, T value) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = alpha * scalar[0], y non-empty.</summary>
    protected abstract void BroadcastScalarCore<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- strided (StridedLayout.cs): permute, broadcast, slice and reduce over up to six axes; scatter ----
    // A layout is checked against its buffer here: extents non-negative, under 2^31 elements, and every offset it
    // reads (or a scatter writes) inside the buffer (in 32 bits). The output never aliases an input. Axes that every
    // layout of an op walks as one are merged before the backend sees them.

    /// <summary>y[i] = x[layout.Offset(i)] for i in [0, layout.Length): a permutation (permuted strides), a
    /// broadcast expansion (stride 0), a slice (an origin and steps, negative ones too) or any other strided
    /// gather into a dense y.</summary>
    public void StridedCopy<T>(StridedLayout layout, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "strided copy";
            CheckLayout(op, nameof(layout), layout, 0, 0, nameof(x), x);
            CheckStridedOutput(op, layout.Length, y, x);
            if (y.Length == 0) return;
            Span<StridedLayout> layouts = [layout];
            StridedLayout.Collapse(layouts);
            Starting(nameof(StridedCopy), y);
            StridedCopyCore(layouts[0], x, y);
            Finished(nameof(StridedCopy));
        }
    }

    /// <summary>y[layout.Offset(i)] = x[i] for i in [0, layout.Length), the rest of y left as it is: the inverse
    /// of a one-to-one StridedCopy, writing a dense x into a window, a slice or a permutation of y (e.g. a padded
    /// tensor's interior). The layout must be one-to-one (no two elements at one offset; see
    /// StridedLayout.IsOneToOne), so the result never depends on the order of the writes.</summary>
    public void StridedScatter<T>(DeviceBuffer<T> x, StridedLayout layout, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "strided scatter";
            CheckLayout(op, nameof(layout), layout, 0, 0, nameof(y), y);
            if (!layout.IsOneToOne())
                throw new ArgumentException($"{op}: layout ({layout}) writes some offset of 'y' twice; a scatter " +
                                            "needs a one-to-one layout.", nameof(layout));
            Validate.Buffer(this, op, nameof(x), x, layout.Length);
            if (ReferenceEquals(x, y))
                throw new ArgumentException($"{op}: the input buffer 'x' is also the output 'y'; use a separate " +
                                            "buffer.", nameof(x));
            if (x.Length == 0) return;
            Span<StridedLayout> layouts = [layout];
            StridedLayout.Collapse(layouts);
            Starting(nameof(StridedScatter), y);
            StridedScatterCore(x, layouts[0], y);
            Finished(nameof(StridedScatter));
        }
    }

    /// <summary>y[i] = op(a[aLayout.Offset(i)], b[bLayout.Offset(i)]) for any elementwise op (see
    /// ElementwiseOps.cs): a binary op with NumPy broadcasting when a layout has stride 0 on an axis. Both layouts
    /// have the same extents; y is dense.</summary>
    public void StridedZip<T, TOp>(StridedLayout aLayout, DeviceBuffer<T> a, StridedLayout bLayout, DeviceBuffer<T> b,
        TOp op, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        lock (_gate)
        {
            const string name = "strided zip";
            CheckLayout(name, nameof(aLayout), aLayout, 0, 0, nameof(a), a);
            CheckLayout(name, nameof(bLayout), bLayout, 0, 0, nameof(b), b);
            if (!aLayout.SameExtents(bLayout))
                throw new ArgumentException($"{name}: layouts cover different extents, a {aLayout.ExtentsText()} " +
                                            $"and b {bLayout.ExtentsText()}.", nameof(bLayout));
            CheckStridedOutput(name, aLayout.Length, y, a, b);
            if (y.Length == 0) return;
            Span<StridedLayout> layouts = [aLayout, bLayout];
            StridedLayout.Collapse(layouts);
            Starting(nameof(StridedZip), y);
            StridedZipCore(layouts[0], a, layouts[1], b, op, y);
            Finished(nameof(StridedZip));
        }
    }

    /// <summary>y[j] = alpha · Σ_r x[kept.Offset(j) + reduced.Offset(r)] for j in [0, kept.Length), summed in the
    /// order r = 0, 1, … (the same bits on every run; 0 where reduced is empty): e.g. the gradient of a broadcast
    /// operand, reduced back to its shape.</summary>
    public void StridedSum<T>(StridedLayout kept, StridedLayout reduced, DeviceBuffer<T> x, T alpha,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "strided sum";
            CheckLayout(op, nameof(reduced), reduced, 0, 0, nameof(x), x);
            bool reads = reduced.Length > 0;   // a sum over nothing reads no element of x
            CheckLayout(op, nameof(kept), kept, reads ? reduced.MinOffset : 0, reads ? reduced.MaxOffset : 0,
                nameof(x), x, reads);
            CheckStridedOutput(op, kept.Length, y, x);
            if (y.Length == 0) return;
            Starting(nameof(StridedSum), y);
            if (reduced.Length == 0) FillCore(y, T.Zero);
            else
            {
                Span<StridedLayout> keptAxes = [kept], reducedAxes = [reduced];
                StridedLayout.Collapse(keptAxes);
                StridedLayout.Collapse(reducedAxes);
                StridedSumCore(keptAxes[0], reducedAxes[0], x, alpha, y);
            }
            Finished(nameof(StridedSum));
        }
    }

    /// <summary>A layout's extents (non-negative, under 2^31 elements) and, when it <paramref name="reads"/>, its
    /// reach into its buffer: every offset it touches, plus an offset between <paramref name="extraLow"/> and
    /// <paramref name="extraHigh"/> (another layout's, added to it), must lie inside the buffer.</summary>
    private void CheckLayout<T>(string op, string layoutName, StridedLayout layout, long extraLow, long extraHigh,
        string bufferName, DeviceBuffer<T> buffer, bool reads = true) where T : unmanaged
    {
        Validate.Owned(this, op, bufferName, buffer);
        for (int d = 0; d < layout.Rank; d++)
            if (layout.Extent(d) < 0)
                throw new ArgumentException($"{op}: {layoutName} ({layout}) has a negative extent.", layoutName);
        if (layout.Length > int.MaxValue)
            throw new ArgumentException($"{op}: {layoutName} ({layout}) covers {layout.Length} elements; at most " +
                                        $"2^31 − 1 are supported.", layoutName);
        if (layout.Length == 0 || !reads) return;
        long low = extraLow + layout.MinOffset, high = extraHigh + layout.MaxOffset;
        if (low < 0)
            throw new ArgumentException($"{op}: {layoutName} ({layout}) reaches a negative offset {low}, before " +
                                        $"buffer '{bufferName}'.", layoutName);
        if (high >= buffer.Length || high > int.MaxValue)
            throw new ArgumentException($"{op}: {layoutName} ({layout}) reaches offset {high}, outside buffer " +
                                        $"'{bufferName}' of {buffer.Length} elements.", layoutName);
    }

    /// <summary>The dense output: as long as its layout, and none of the inputs (a gather would overwrite what it
    /// still has to read).</summary>
    private void CheckStridedOutput<T>(string op, long length, DeviceBuffer<T> y,
        params ReadOnlySpan<DeviceBuffer<T>> inputs) where T : unmanaged
    {
        Validate.Buffer(this, op, nameof(y), y, length);
        foreach (var input in inputs)
            if (ReferenceEquals(input, y))
                throw new ArgumentException($"{op}: the output buffer 'y' is also an input; use a separate buffer.",
                    nameof(y));
    }

    /// <summary>y[i] = x[layout.Offset(i)], y non-empty and not x; the layout checked against x and
    /// collapsed.</summary>
    protected abstract void StridedCopyCore<T>(StridedLayout layout, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[layout.Offset(i)] = x[i], x non-empty and not y; the layout checked against y, one-to-one and
    /// collapsed.</summary>
    protected abstract void StridedScatterCore<T>(DeviceBuffer<T> x, StridedLayout layout, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[i] = op(a[aLayout.Offset(i)], b[bLayout.Offset(i)]), y non-empty and neither input; layouts of the
    /// same extents, checked and collapsed together.</summary>
    protected abstract void StridedZipCore<T, TOp>(StridedLayout aLayout, DeviceBuffer<T> a, StridedLayout bLayout,
        DeviceBuffer<T> b, TOp op, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>;

    /// <summary>y[j] = alpha · Σ_r x[kept.Offset(j) + reduced.Offset(r)] in the order r = 0, 1, …; y non-empty and
    /// not x, reduced non-empty, both layouts checked and collapsed.</summary>
    protected abstract void StridedSumCore<T>(StridedLayout kept, StridedLayout reduced, DeviceBuffer<T> x, T alpha,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- reductions ----

    /// <summary>result[0] = alpha * sum(x) (0 for an empty x). Deterministic: the same inputs give the same bits on
    /// every run.</summary>
    public void Sum<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result) where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            Validate.Owned(this, "sum", nameof(x), x);
            Validate.Buffer(this, "sum", nameof(result), result, 1);
            Starting(nameof(Sum), result);
            if (x.Length == 0) FillCore(result, T.Zero);
            else SumCore(x, alpha, result);
            Finished(nameof(Sum));
        }
    }

    /// <summary>result[c] = sum over n and hw of x[n, c, hw], for x [N, C, HW] (bias gradients; 0 for an empty
    /// batch).</summary>
    public void SumPerChannel<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> result)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "sum per channel";
            Validate.Extents(op, batch, channels, spatial);
            Validate.Buffer(this, op, nameof(x), x, (long)batch * channels * spatial);
            Validate.Buffer(this, op, nameof(result), result, channels);
            if (channels == 0) return;
            Starting(nameof(SumPerChannel), result);
            if (x.Length == 0) FillCore(result, T.Zero);
            else SumPerChannelCore(batch, channels, spatial, x, result);
            Finished(nameof(SumPerChannel));
        }
    }

    /// <summary>y[n, c, hw] += bias[c], for y [N, C, HW].</summary>
    public void AddPerChannel<T>(int batch, int channels, int spatial, DeviceBuffer<T> bias, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "add per channel";
            Validate.Extents(op, batch, channels, spatial);
            Validate.Buffer(this, op, nameof(bias), bias, channels);
            Validate.Buffer(this, op, nameof(y), y, (long)batch * channels * spatial);
            if (y.Length == 0) return;
            Starting(nameof(AddPerChannel), y);
            AddPerChannelCore(batch, channels, spatial, bias, y);
            Finished(nameof(AddPerChannel));
        }
    }

    /// <summary>result[0] = alpha * sum(x), x non-empty.</summary>
    protected abstract void SumCore<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>result[c] = sum over n and hw of x[n, c, hw], x non-empty.</summary>
    protected abstract void SumPerChannelCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> result) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[n, c, hw] += bias[c], y non-empty.</summary>
    protected abstract void AddPerChannelCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> bias,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- convolution: x [N,C,H,W], w [K,C/groups,R,S], bias [K], y [N,K,OH,OW]; dilation per axis ----

    /// <summary>y = conv(x, w) (+ bias when given) (+ <paramref name="residual"/> when given), then ReLU when
    /// <paramref name="relu"/>, with the geometry's strides, pads, dilations and groups: the epilogue of a
    /// convolution whose batch-norm has been folded into w and bias (inference), applied as the output is
    /// stored.</summary>
    /// <param name="g">The convolution's geometry.</param>
    /// <param name="x">Input [N, C, H, W].</param>
    /// <param name="w">Filters [K, C/groups, R, S].</param>
    /// <param name="bias">Per-output-channel bias [K], or null for none.</param>
    /// <param name="y">Output [N, K, OH, OW] (overwritten).</param>
    /// <param name="residual">Added to the output before the ReLU, [N, K, OH, OW]; null for none. It must not be
    /// y, x or w (the output is written block by block while the residual is still read).</param>
    /// <param name="relu">Clamp the result at zero (NaN propagates).</param>
    public void Conv2dForward<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w, DeviceBuffer<T>? bias,
        DeviceBuffer<T> y, DeviceBuffer<T>? residual = null, bool relu = false)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "conv2d forward";
            g = g.Validated();
            Validate.Buffer(this, op, nameof(x), x, g.InputLength);
            Validate.Buffer(this, op, nameof(w), w, g.WeightLength);
            if (bias is not null) Validate.Buffer(this, op, nameof(bias), bias, g.OutChannels);
            Validate.Buffer(this, op, nameof(y), y, g.OutputLength);
            if (residual is not null)
            {
                Validate.Buffer(this, op, nameof(residual), residual, g.OutputLength);
                if (ReferenceEquals(residual, y) || ReferenceEquals(residual, x) || ReferenceEquals(residual, w))
                    throw new ArgumentException($"{op}: the residual must be a buffer of its own, not the output, " +
                                                "the input or the filters.", nameof(residual));
            }
            Starting(nameof(Conv2dForward), y);
            Conv2dForwardCore(g, x, w, bias, y, residual, relu);
            Finished(nameof(Conv2dForward));
        }
    }

    /// <summary>dx = the gradient of the input (overwritten).</summary>
    public void Conv2dBackwardData<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "conv2d backward data";
            g = g.Validated();
            Validate.Buffer(this, op, nameof(dy), dy, g.OutputLength);
            Validate.Buffer(this, op, nameof(w), w, g.WeightLength);
            Validate.Buffer(this, op, nameof(dx), dx, g.InputLength);
            Starting(nameof(Conv2dBackwardData), dx);
            Conv2dBackwardDataCore(g, dy, w, dx);
            Finished(nameof(Conv2dBackwardData));
        }
    }

    /// <summary>dw = the gradient of the weight (overwritten).</summary>
    public void Conv2dBackwardWeight<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy, DeviceBuffer<T> dw)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "conv2d backward weight";
            g = g.Validated();
            Validate.Buffer(this, op, nameof(x), x, g.InputLength);
            Validate.Buffer(this, op, nameof(dy), dy, g.OutputLength);
            Validate.Buffer(this, op, nameof(dw), dw, g.WeightLength);
            Starting(nameof(Conv2dBackwardWeight), dw);
            Conv2dBackwardWeightCore(g, x, dy, dw);
            Finished(nameof(Conv2dBackwardWeight));
        }
    }

    /// <summary>y = conv(x, w) (+ bias) (+ residual), then ReLU when asked, for a validated geometry; the
    /// residual, when given, is as long as y and aliases none of x, w and y.</summary>
    protected abstract void Conv2dForwardCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w,
        DeviceBuffer<T>? bias, DeviceBuffer<T> y, DeviceBuffer<T>? residual, bool relu)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dx = the gradient of the input, for a validated geometry.</summary>
    protected abstract void Conv2dBackwardDataCore<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w,
        DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dw = the gradient of the weight, for a validated geometry.</summary>
    protected abstract void Conv2dBackwardWeightCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy,
        DeviceBuffer<T> dw) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- matrix multiply: row-major matrices ----

    /// <summary>C[m×n] = alpha · op(A) · op(B) + beta · C, op(A) m×k and op(B) k×n; op transposes when asked
    /// (A is stored k×m when transposed, B n×k). beta = 0 ignores C's old contents; k = 0 gives C = beta · C.</summary>
    public void Gemm<T>(bool transposeA, bool transposeB, int m, int n, int k, T alpha, DeviceBuffer<T> a,
        DeviceBuffer<T> b, T beta, DeviceBuffer<T> c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "gemm";
            if (m < 0 || n < 0 || k < 0)
                throw new ArgumentException($"{op}: negative extent (m {m}, n {n}, k {k}).");
            Validate.Buffer(this, op, nameof(a), a, (long)m * k);
            Validate.Buffer(this, op, nameof(b), b, (long)k * n);
            Validate.Buffer(this, op, nameof(c), c, (long)m * n);
            if (m == 0 || n == 0) return;
            Starting(nameof(Gemm), c);
            if (k > 0) GemmCore(transposeA, transposeB, m, n, k, alpha, a, b, beta, c);
            else if (beta == T.Zero) FillCore(c, T.Zero);
            else MapCore(c, new ScaleOp<T>(beta), c);
            Finished(nameof(Gemm));
        }
    }

    /// <summary>C = alpha · op(A) · op(B) + beta · C with m, n, k ≥ 1.</summary>
    protected abstract void GemmCore<T>(bool transposeA, bool transposeB, int m, int n, int k, T alpha,
        DeviceBuffer<T> a, DeviceBuffer<T> b, T beta, DeviceBuffer<T> c) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- batch normalisation: x, y [N, C, HW]; per-channel vectors [C] ----

    /// <summary>Training mode: normalises with the batch mean and biased variance, saves the mean and
    /// 1/sqrt(var + eps) for backward, and updates the running statistics with <paramref name="momentum"/>
    /// (running variance from the unbiased batch variance, as PyTorch, or from the biased one, as ONNX: see
    /// <paramref name="varianceUpdate"/>). With <paramref name="residual"/> [N, C, HW] (which may be y itself), it
    /// is added to the normalised value; with <paramref name="relu"/>, y is max(batch-norm(x) [+ residual], 0): the
    /// fused BN+ReLU of every ResNet block and the fused BN + shortcut add + ReLU of its tail, in one pass.</summary>
    public void BatchNormForwardTraining<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double momentum, double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd,
        bool relu, RunningVarianceUpdate varianceUpdate = RunningVarianceUpdate.Unbiased,
        DeviceBuffer<T>? residual = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "batch-norm forward (training)";
            Validate.Momentum(op, momentum);
            Validate.Epsilon(op, epsilon);
            if (!Enum.IsDefined(varianceUpdate))
                throw new ArgumentException(
                    $"{op}: running-variance update {(int)varianceUpdate} is neither Unbiased nor Biased.",
                    nameof(varianceUpdate));
            CheckBatchNorm(op, batch, channels, spatial, x, nameof(x), y, nameof(y));
            if ((long)batch * spatial < 2)
                throw new ArgumentException($"{op}: expected more than 1 value per channel when training, got input " +
                                            $"[N, C, HW] = [{batch}, {channels}, {spatial}].");
            Validate.Buffer(this, op, nameof(gamma), gamma, channels);
            Validate.Buffer(this, op, nameof(beta), beta, channels);
            Validate.Buffer(this, op, nameof(runningMean), runningMean, channels);
            Validate.Buffer(this, op, nameof(runningVar), runningVar, channels);
            Validate.Buffer(this, op, nameof(savedMean), savedMean, channels);
            Validate.Buffer(this, op, nameof(savedInvStd), savedInvStd, channels);
            if (residual is not null) Validate.Buffer(this, op, nameof(residual), residual, x.Length);
            Starting(nameof(BatchNormForwardTraining), y, runningMean, runningVar, savedMean, savedInvStd);
            BatchNormForwardTrainingCore(batch, channels, spatial, x, gamma, beta, runningMean, runningVar, momentum,
                epsilon, y, savedMean, savedInvStd, relu, varianceUpdate, residual);
            Finished(nameof(BatchNormForwardTraining));
        }
    }

    /// <summary>Eval mode: normalises with the running statistics, adds <paramref name="residual"/> when given (it
    /// may be y itself), then ReLU when <paramref name="relu"/>.</summary>
    public void BatchNormForwardInference<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double epsilon, DeviceBuffer<T> y, bool relu, DeviceBuffer<T>? residual = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "batch-norm forward (inference)";
            Validate.Epsilon(op, epsilon);
            CheckBatchNorm(op, batch, channels, spatial, x, nameof(x), y, nameof(y));
            Validate.Buffer(this, op, nameof(gamma), gamma, channels);
            Validate.Buffer(this, op, nameof(beta), beta, channels);
            Validate.Buffer(this, op, nameof(runningMean), runningMean, channels);
            Validate.Buffer(this, op, nameof(runningVar), runningVar, channels);
            if (residual is not null) Validate.Buffer(this, op, nameof(residual), residual, x.Length);
            Starting(nameof(BatchNormForwardInference), y);
            BatchNormForwardInferenceCore(batch, channels, spatial, x, gamma, beta, runningMean, runningVar, epsilon, y,
                relu, residual);
            Finished(nameof(BatchNormForwardInference));
        }
    }

    /// <summary>Gradients of input, gamma and beta (all overwritten). <paramref name="mean"/> and
    /// <paramref name="invStd"/> are what normalised x; with <paramref name="batchStatistics"/> they depend on x
    /// (training mode), otherwise they are constants (eval mode). <paramref name="reluOutput"/>, when given, is
    /// the output of a fused BN+ReLU (or BN + residual + ReLU): dy counts only where it is positive.
    /// <paramref name="residualGradient"/>, when given, receives the gradient of a fused residual: dy where the
    /// output is positive, 0 elsewhere (dy itself without <paramref name="reluOutput"/>), written by the same
    /// passes.</summary>
    public void BatchNormBackward<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> dy,
        DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd, bool batchStatistics,
        DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta, DeviceBuffer<T>? reluOutput,
        DeviceBuffer<T>? residualGradient = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "batch-norm backward";
            CheckBatchNorm(op, batch, channels, spatial, x, nameof(x), dx, nameof(dx));
            Validate.Buffer(this, op, nameof(dy), dy, x.Length);
            if (reluOutput is not null) Validate.Buffer(this, op, nameof(reluOutput), reluOutput, x.Length);
            Validate.Buffer(this, op, nameof(gamma), gamma, channels);
            Validate.Buffer(this, op, nameof(mean), mean, channels);
            Validate.Buffer(this, op, nameof(invStd), invStd, channels);
            Validate.Buffer(this, op, nameof(dgamma), dgamma, channels);
            Validate.Buffer(this, op, nameof(dbeta), dbeta, channels);
            if (residualGradient is not null)
                Validate.Buffer(this, op, nameof(residualGradient), residualGradient, x.Length);
            Starting(nameof(BatchNormBackward), dx, dgamma, dbeta, residualGradient);
            BatchNormBackwardCore(batch, channels, spatial, x, dy, gamma, mean, invStd, batchStatistics, dx, dgamma,
                dbeta, reluOutput, residualGradient);
            Finished(nameof(BatchNormBackward));
        }
    }

    /// <summary>invStd[c] = 1 / sqrt(variance[c] + epsilon) (eval-mode statistics for BatchNormBackward).</summary>
    public void InverseStandardDeviation<T>(DeviceBuffer<T> variance, double epsilon, DeviceBuffer<T> invStd)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "inverse standard deviation";
            Validate.Epsilon(op, epsilon);
            Validate.SameLength(this, op, variance, nameof(variance), invStd, nameof(invStd));
            if (invStd.Length == 0) return;
            Starting(nameof(InverseStandardDeviation), invStd);
            InverseStandardDeviationCore(variance, epsilon, invStd);
            Finished(nameof(InverseStandardDeviation));
        }
    }

    /// <summary>The [N, C, HW] extents of a batch-norm (each at least 1, under 2^31 elements) and its two
    /// full-size buffers.</summary>
    private void CheckBatchNorm<T>(string op, int batch, int channels, int spatial, DeviceBuffer<T> input,
        string inputName, DeviceBuffer<T> output, string outputName) where T : unmanaged
    {
        if (batch < 1 || channels < 1 || spatial < 1)
            throw new ArgumentException($"{op}: input [N, C, HW] = [{batch}, {channels}, {spatial}] needs at least " +
                                        "one sample, one channel and one position.");
        long length = (long)batch * channels * spatial;
        if (length > int.MaxValue)
            throw new ArgumentException($"{op}: input [N, C, HW] = [{batch}, {channels}, {spatial}] has over 2^31 " +
                                        "elements, which is not supported.");
        Validate.Buffer(this, op, inputName, input, length);
        Validate.Buffer(this, op, outputName, output, length);
    }

    /// <summary>Batch-norm training forward with checked arguments.</summary>
    protected abstract void BatchNormForwardTrainingCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double momentum, double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd,
        bool relu, RunningVarianceUpdate varianceUpdate, DeviceBuffer<T>? residual)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Batch-norm inference forward with checked arguments.</summary>
    protected abstract void BatchNormForwardInferenceCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar,
        double epsilon, DeviceBuffer<T> y, bool relu, DeviceBuffer<T>? residual)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Batch-norm backward with checked arguments.</summary>
    protected abstract void BatchNormBackwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> dy, DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd, bool batchStatistics,
        DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta, DeviceBuffer<T>? reluOutput,
        DeviceBuffer<T>? residualGradient) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>invStd[c] = 1 / sqrt(variance[c] + epsilon), invStd non-empty.</summary>
    protected abstract void InverseStandardDeviationCore<T>(DeviceBuffer<T> variance, double epsilon,
        DeviceBuffer<T> invStd) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- pooling ----

    /// <summary>Max pooling; argmax[o] is the flat index within the (n, c) input plane of the maximum (the first
    /// in row-major window order on ties; a NaN wins).</summary>
    public void MaxPoolForward<T>(PoolGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y, DeviceBuffer<int> argmax)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "max-pool forward";
            g = g.Validated();
            Validate.Buffer(this, op, nameof(x), x, g.InputLength);
            Validate.Buffer(this, op, nameof(y), y, g.OutputLength);
            Validate.Buffer(this, op, nameof(argmax), argmax, g.OutputLength);
            Starting(nameof(MaxPoolForward), y, argmax);
            MaxPoolForwardCore(g, x, y, argmax);
            Finished(nameof(MaxPoolForward));
        }
    }

    /// <summary>dx (overwritten) receives each dy at its argmax, summed where windows overlap.</summary>
    public void MaxPoolBackward<T>(PoolGeometry g, DeviceBuffer<T> dy, DeviceBuffer<int> argmax, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "max-pool backward";
            g = g.Validated();
            Validate.Buffer(this, op, nameof(dy), dy, g.OutputLength);
            Validate.Buffer(this, op, nameof(argmax), argmax, g.OutputLength);
            Validate.Buffer(this, op, nameof(dx), dx, g.InputLength);
            Starting(nameof(MaxPoolBackward), dx);
            MaxPoolBackwardCore(g, dy, argmax, dx);
            Finished(nameof(MaxPoolBackward));
        }
    }

    /// <summary>Average pooling: y[o] = the sum of o's window over the input / its divisor, PyTorch's avg_pool2d
    /// rule (ONNX AveragePool agrees without ceil mode): with <paramref name="countIncludePad"/> the divisor counts
    /// the window's cells inside the padded input (not those past it that ceil mode adds), else only its input
    /// cells. Padding contributes 0 to the sum. A NaN in a window makes its output NaN.</summary>
    public void AvgPoolForward<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "avg-pool forward";
            g = g.ValidatedForAverage();
            Validate.Buffer(this, op, nameof(x), x, g.InputLength);
            Validate.Buffer(this, op, nameof(y), y, g.OutputLength);
            Starting(nameof(AvgPoolForward), y);
            AvgPoolForwardCore(g, countIncludePad, x, y);
            Finished(nameof(AvgPoolForward));
        }
    }

    /// <summary>dx (overwritten)[i] = Σ dy[o] / divisor(o) over the windows o that cover input element i, with
    /// the forward's divisors.</summary>
    public void AvgPoolBackward<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "avg-pool backward";
            g = g.ValidatedForAverage();
            Validate.Buffer(this, op, nameof(dy), dy, g.OutputLength);
            Validate.Buffer(this, op, nameof(dx), dx, g.InputLength);
            Starting(nameof(AvgPoolBackward), dx);
            AvgPoolBackwardCore(g, countIncludePad, dy, dx);
            Finished(nameof(AvgPoolBackward));
        }
    }

    /// <summary>y[n, c] = mean over hw of x[n, c, hw].</summary>
    public void GlobalAveragePoolForward<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "global average pool forward";
            Validate.GlobalPoolExtents(op, batch, channels, spatial);
            Validate.Buffer(this, op, nameof(x), x, (long)batch * channels * spatial);
            Validate.Buffer(this, op, nameof(y), y, (long)batch * channels);
            if (y.Length == 0) return;
            Starting(nameof(GlobalAveragePoolForward), y);
            GlobalAveragePoolForwardCore(batch, channels, spatial, x, y);
            Finished(nameof(GlobalAveragePoolForward));
        }
    }

    /// <summary>dx[n, c, hw] = dy[n, c] / HW.</summary>
    public void GlobalAveragePoolBackward<T>(int batch, int channels, int spatial, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "global average pool backward";
            Validate.GlobalPoolExtents(op, batch, channels, spatial);
            Validate.Buffer(this, op, nameof(dy), dy, (long)batch * channels);
            Validate.Buffer(this, op, nameof(dx), dx, (long)batch * channels * spatial);
            if (dx.Length == 0) return;
            Starting(nameof(GlobalAveragePoolBackward), dx);
            GlobalAveragePoolBackwardCore(batch, channels, spatial, dy, dx);
            Finished(nameof(GlobalAveragePoolBackward));
        }
    }

    /// <summary>Max-pool forward for a validated geometry.</summary>
    protected abstract void MaxPoolForwardCore<T>(PoolGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y,
        DeviceBuffer<int> argmax) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Max-pool backward for a validated geometry.</summary>
    protected abstract void MaxPoolBackwardCore<T>(PoolGeometry g, DeviceBuffer<T> dy, DeviceBuffer<int> argmax,
        DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Average-pool forward for a geometry validated for average pooling.</summary>
    protected abstract void AvgPoolForwardCore<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> x,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Average-pool backward for a geometry validated for average pooling.</summary>
    protected abstract void AvgPoolBackwardCore<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>y[n, c] = mean over hw of x[n, c, hw], y non-empty.</summary>
    protected abstract void GlobalAveragePoolForwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>dx[n, c, hw] = dy[n, c] / HW, dx non-empty.</summary>
    protected abstract void GlobalAveragePoolBackwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- loss: logits [N, classes], labels [N] in [0, classes) (a caller precondition, see the header) ----

    /// <summary>probabilities = softmax(logits) per row; losses[i] = −log p[i, label[i]], computed stably
    /// (log-sum-exp with the row maximum subtracted); NaN for a sample whose label is outside [0, classes).</summary>
    public void SoftmaxCrossEntropyForward<T>(int batch, int classes, DeviceBuffer<T> logits, DeviceBuffer<int> labels,
        DeviceBuffer<T> probabilities, DeviceBuffer<T> losses) where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "softmax cross-entropy forward";
            CheckClassification(op, batch, classes, logits, nameof(logits), labels);
            Validate.Buffer(this, op, nameof(probabilities), probabilities, logits.Length);
            Validate.Buffer(this, op, nameof(losses), losses, batch);
            if (batch == 0) return;
            Starting(nameof(SoftmaxCrossEntropyForward), probabilities, losses);
            SoftmaxCrossEntropyForwardCore(batch, classes, logits, labels, probabilities, losses);
            Finished(nameof(SoftmaxCrossEntropyForward));
        }
    }

    /// <summary>dlogits = (probabilities − onehot(labels)) · alpha · lossGrad[0]; a row whose label lies outside
    /// [0, classes) is NaN.</summary>
    public void SoftmaxCrossEntropyBackward<T>(int batch, int classes, DeviceBuffer<T> probabilities,
        DeviceBuffer<int> labels, DeviceBuffer<T> lossGrad, T alpha, DeviceBuffer<T> dlogits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "softmax cross-entropy backward";
            CheckClassification(op, batch, classes, probabilities, nameof(probabilities), labels);
            Validate.Buffer(this, op, nameof(lossGrad), lossGrad, 1);
            Validate.Buffer(this, op, nameof(dlogits), dlogits, probabilities.Length);
            if (batch == 0) return;
            Starting(nameof(SoftmaxCrossEntropyBackward), dlogits);
            SoftmaxCrossEntropyBackwardCore(batch, classes, probabilities, labels, lossGrad, alpha, dlogits);
            Finished(nameof(SoftmaxCrossEntropyBackward));
        }
    }

    /// <summary>correct[i] = 1 when label[i] is among the <paramref name="k"/> largest logits of row i (ties go to
    /// the lower class index), else 0; also 0 for a row holding a NaN logit and for a label outside
    /// [0, classes).</summary>
    public void TopKCorrect<T>(int batch, int classes, int k, DeviceBuffer<T> logits, DeviceBuffer<int> labels,
        DeviceBuffer<int> correct) where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "top-k correct";
            CheckClassification(op, batch, classes, logits, nameof(logits), labels);
            if (k < 1 || k > classes)
                throw new ArgumentException($"{op}: k = {k} must lie in [1, {classes}] for {classes} classes.",
                    nameof(k));
            Validate.Buffer(this, op, nameof(correct), correct, batch);
            if (batch == 0) return;
            Starting(nameof(TopKCorrect), correct);
            TopKCorrectCore(batch, classes, k, logits, labels, correct);
            Finished(nameof(TopKCorrect));
        }
    }

    /// <summary>The [N, classes] extents (N ≥ 0, classes ≥ 1), the score buffer and the label buffer's length.</summary>
    private void CheckClassification<T>(string op, int batch, int classes, DeviceBuffer<T> scores, string scoresName,
        DeviceBuffer<int> labels) where T : unmanaged
    {
        if (batch < 0 || classes < 1)
            throw new ArgumentException($"{op}: logits [N, classes] = [{batch}, {classes}] need N ≥ 0 and at least " +
                                        "one class.");
        Validate.Buffer(this, op, scoresName, scores, (long)batch * classes);
        Validate.Buffer(this, op, nameof(labels), labels, batch);
    }

    /// <summary>Softmax cross-entropy forward, batch ≥ 1.</summary>
    protected abstract void SoftmaxCrossEntropyForwardCore<T>(int batch, int classes, DeviceBuffer<T> logits,
        DeviceBuffer<int> labels, DeviceBuffer<T> probabilities, DeviceBuffer<T> losses)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Softmax cross-entropy backward, batch ≥ 1.</summary>
    protected abstract void SoftmaxCrossEntropyBackwardCore<T>(int batch, int classes, DeviceBuffer<T> probabilities,
        DeviceBuffer<int> labels, DeviceBuffer<T> lossGrad, T alpha, DeviceBuffer<T> dlogits)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Top-k correctness, batch ≥ 1 and k in [1, classes].</summary>
    protected abstract void TopKCorrectCore<T>(int batch, int classes, int k, DeviceBuffer<T> logits,
        DeviceBuffer<int> labels, DeviceBuffer<int> correct) where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- option-A shortcut ----

    /// <summary>Subsamples by the stride and places the input channels at PadFront, zeros elsewhere.</summary>
    public void ShortcutForward<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "shortcut A forward";
            g = g.Validated();
            Validate.Buffer(this, op, nameof(x), x, g.InputLength);
            Validate.Buffer(this, op, nameof(y), y, g.OutputLength);
            Starting(nameof(ShortcutForward), y);
            ShortcutForwardCore(g, x, y);
            Finished(nameof(ShortcutForward));
        }
    }

    /// <summary>dx (overwritten) = dy at the kept positions and channels, 0 at the skipped positions.</summary>
    public void ShortcutBackward<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        lock (_gate)
        {
            const string op = "shortcut A backward";
            g = g.Validated();
            Validate.Buffer(this, op, nameof(dy), dy, g.OutputLength);
            Validate.Buffer(this, op, nameof(dx), dx, g.InputLength);
            Starting(nameof(ShortcutBackward), dx);
            ShortcutBackwardCore(g, dy, dx);
            Finished(nameof(ShortcutBackward));
        }
    }

    /// <summary>Shortcut forward for a validated geometry.</summary>
    protected abstract void ShortcutForwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Shortcut backward for a validated geometry.</summary>
    protected abstract void ShortcutBackwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T>;

    // ---- optimizers ----

    /// <summary>One SGD step on one parameter, in place, with PyTorch's semantics: g = grad + wd·param;
    /// with momentum, buf = g on the first step, else momentum·buf + (1 − dampening)·g, and g = buf (or
    /// g + momentum·buf with Nesterov); param −= lr·g. <paramref name="momentumBuffer"/> may be null when
    /// momentum is 0. The list op <see cref="SgdSteps{T}"/> with a list of one, checked as it is.</summary>
    public void SgdStep<T>(SgdParameters p, DeviceBuffer<T> param, DeviceBuffer<T> grad,
        DeviceBuffer<T>? momentumBuffer, bool firstStep) where T : unmanaged, IFloatingPointIeee754<T> =>
        SgdSteps(p, [param], [grad], [momentumBuffer], [firstStep]);

    /// <summary>One SGD step on every parameter of a list as one op: the same bits as <see cref="SgdStep{T}"/> on
    /// each (parameters[i], grads[i], momentumBuffers[i], firstSteps[i]). Every argument is checked before any
    /// parameter is updated; a buffer that is written (a parameter or a momentum buffer) may appear only once in
    /// the lists, and no gradient may be such a buffer, since the updates may run in parallel (the checks of
    /// <see cref="AdamSteps{T}"/>). Empty parameters are skipped.
    /// <paramref name="momentumBuffers"/> may be null, and its entries null, when momentum is 0.</summary>
    public void SgdSteps<T>(SgdParameters p, IReadOnlyList<DeviceBuffer<T>> parameters,
        IReadOnlyList<DeviceBuffer<T>> grads, IReadOnlyList<DeviceBuffer<T>?>? momentumBuffers,
        IReadOnlyList<bool> firstSteps) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(firstSteps);
        lock (_gate)
        {
            const string op = "SGD steps";
            p = p.Validated();
            int count = parameters.Count;
            if (grads.Count != count || firstSteps.Count != count ||
                (momentumBuffers is not null && momentumBuffers.Count != count))
                throw new ArgumentException(
                    $"{op}: {count} parameters, {grads.Count} gradients, {momentumBuffers?.Count ?? 0} momentum " +
                    $"buffers and {firstSteps.Count} first-step flags; every list needs one entry per parameter.",
                    nameof(grads));
            var written = new HashSet<DeviceBuffer<T>>(ReferenceEqualityComparer.Instance);
            var tensors = new List<SgdTensor<T>>(count);
            for (int i = 0; i < count; i++)
            {
                Validate.SameLength(this, op, parameters[i], $"parameters[{i}]", grads[i], $"grads[{i}]");
                if (!written.Add(parameters[i]))
                    throw new ArgumentException($"{op}: parameters[{i}] is a buffer already written by this step.",
                        nameof(parameters));
                DeviceBuffer<T>? buffer = null;
                if (p.Momentum != 0)
                {
                    buffer = momentumBuffers?[i] ?? throw new ArgumentException(
                        $"{op}: momentum {p.Momentum} needs a momentum buffer for parameter {i}.",
                        nameof(momentumBuffers));
                    Validate.Buffer(this, op, $"momentumBuffers[{i}]", buffer, parameters[i].Length);
                    if (!written.Add(buffer))
                        throw new ArgumentException(
                            $"{op}: momentumBuffers[{i}] is a buffer already written by this step.",
                            nameof(momentumBuffers));
                }
                if (parameters[i].Length > 0)
                    tensors.Add(new SgdTensor<T>(parameters[i], grads[i], buffer, firstSteps[i]));
            }
            for (int i = 0; i < count; i++)
                if (written.Contains(grads[i]))
                    throw new ArgumentException($"{op}: grads[{i}] is a buffer this step writes.", nameof(grads));
            if (tensors.Count == 0) return;
            Starting(nameof(SgdSteps), [.. written]);
            SgdStepsCore(p, tensors);
            Finished(nameof(SgdSteps));
        }
    }

    /// <summary>Step <paramref name="step"/> (1-based) of Adam or AdamW on one parameter, in place, with PyTorch's
    /// single-tensor semantics: g = grad + wd·param (Adam) or param ·= 1 − lr·wd (AdamW);
    /// m += (1 − beta1)·(g − m); v = beta2·v + (1 − beta2)·g²; with AMSGrad vmax = max(vmax, v) replaces v below
    /// (torch.maximum: a NaN in vmax or v gives NaN);
    /// param −= lr / (1 − beta1^step) · m / (√v / √(1 − beta2^step) + eps). <paramref name="maxExpAvgSq"/> may be
    /// null without AMSGrad. The list op <see cref="AdamSteps{T}"/> with a list of one, checked as it is.</summary>
    public void AdamStep<T>(AdamParameters p, int step, DeviceBuffer<T> param, DeviceBuffer<T> grad,
        DeviceBuffer<T> expAvg, DeviceBuffer<T> expAvgSq, DeviceBuffer<T>? maxExpAvgSq)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        AdamSteps(p, [step], [param], [grad], [expAvg], [expAvgSq], [maxExpAvgSq]);

    /// <summary>One Adam or AdamW step on every parameter of a list as one op: the same bits as
    /// <see cref="AdamStep{T}"/> on each (steps[i], parameters[i], grads[i], expAvgs[i], expAvgSqs[i],
    /// maxExpAvgSqs[i]); each parameter has its own step count (1-based), hence its own bias corrections. Every
    /// argument is checked before any parameter is updated; a buffer that is written (a parameter or one of its
    /// moments) may appear only once in the lists, and no gradient may be such a buffer, since the updates may run
    /// in parallel. Empty parameters are skipped. <paramref name="maxExpAvgSqs"/> may be null, and its entries
    /// null, without AMSGrad.</summary>
    public void AdamSteps<T>(AdamParameters p, IReadOnlyList<int> steps, IReadOnlyList<DeviceBuffer<T>> parameters,
        IReadOnlyList<DeviceBuffer<T>> grads, IReadOnlyList<DeviceBuffer<T>> expAvgs,
        IReadOnlyList<DeviceBuffer<T>> expAvgSqs, IReadOnlyList<DeviceBuffer<T>?>? maxExpAvgSqs)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(expAvgs);
        ArgumentNullException.ThrowIfNull(expAvgSqs);
        lock (_gate)
        {
            const string op = "Adam steps";
            p = p.Validated();
            int count = parameters.Count;
            string? unmatched = steps.Count != count ? nameof(steps)
                : grads.Count != count ? nameof(grads)
                : expAvgs.Count != count ? nameof(expAvgs)
                : expAvgSqs.Count != count ? nameof(expAvgSqs)
                : maxExpAvgSqs is not null && maxExpAvgSqs.Count != count ? nameof(maxExpAvgSqs)
                : null;
            if (unmatched is not null)
                throw new ArgumentException(
                    $"{op}: {count} parameters, {steps.Count} step counts, {grads.Count} gradients, " +
                    $"{expAvgs.Count} first moments, {expAvgSqs.Count} second moments and " +
                    $"{maxExpAvgSqs?.Count ?? 0} maxima of the second moment; every list needs one entry per " +
                    $"parameter ({unmatched} does not).", unmatched);
            var written = new HashSet<DeviceBuffer<T>>(ReferenceEqualityComparer.Instance);
            void Written(DeviceBuffer<T>? buffer, string list, int i)
            {
                if (buffer is not null && !written.Add(buffer))
                    throw new ArgumentException($"{op}: {list}[{i}] is a buffer already written by this step.", list);
            }
            var tensors = new List<AdamTensor<T>>(count);
            for (int i = 0; i < count; i++)
            {
                var maxExpAvgSq = maxExpAvgSqs?[i];
                Validate.AdamBuffers(this, op, p, i, parameters[i], grads[i], expAvgs[i], expAvgSqs[i], maxExpAvgSq);
                if (steps[i] < 1)
                    throw new ArgumentOutOfRangeException(nameof(steps),
                        $"{op}: the step count starts at 1, got {steps[i]} for parameter {i}.");
                Written(parameters[i], nameof(parameters), i);
                Written(expAvgs[i], nameof(expAvgs), i);
                Written(expAvgSqs[i], nameof(expAvgSqs), i);
                Written(maxExpAvgSq, nameof(maxExpAvgSqs), i);
                if (parameters[i].Length > 0)
                    tensors.Add(new AdamTensor<T>(parameters[i], grads[i], expAvgs[i], expAvgSqs[i], maxExpAvgSq,
                        new AdamCoefficients<T>(p, steps[i])));
            }
            for (int i = 0; i < count; i++)
                if (written.Contains(grads[i]))
                    throw new ArgumentException($"{op}: grads[{i}] is a buffer this step writes.", nameof(grads));
            if (tensors.Count == 0) return;
            Starting(nameof(AdamSteps), [.. written]);
            AdamStepsCore(tensors);
            Finished(nameof(AdamSteps));
        }
    }

    /// <summary>One SGD step of validated parameters on validated, non-empty, distinct tensors (at least one);
    /// each momentum buffer is null exactly when momentum is 0.</summary>
    protected abstract void SgdStepsCore<T>(SgdParameters p, IReadOnlyList<SgdTensor<T>> tensors)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>One Adam step on validated, non-empty, distinct tensors (at least one), each with the coefficients of
    /// its own step; each maximum of the second moment is present exactly with AMSGrad.</summary>
    protected abstract void AdamStepsCore<T>(IReadOnlyList<AdamTensor<T>> tensors)
        where T : unmanaged, IFloatingPointIeee754<T>;
}

/// <summary>One parameter of <see cref="Backend.SgdSteps{T}"/>: the parameter, its gradient, its momentum buffer
/// (null when momentum is 0) and whether this is its first step with momentum.</summary>
public readonly record struct SgdTensor<T>(DeviceBuffer<T> Parameter, DeviceBuffer<T> Grad,
    DeviceBuffer<T>? MomentumBuffer, bool FirstStep) where T : unmanaged;

/// <summary>One parameter of <see cref="Backend.AdamSteps{T}"/>: the parameter, its gradient, its first and second
/// moments, the maximum of its second moment (null without AMSGrad) and the coefficients of its step.</summary>
public readonly record struct AdamTensor<T>(DeviceBuffer<T> Parameter, DeviceBuffer<T> Grad, DeviceBuffer<T> ExpAvg,
    DeviceBuffer<T> ExpAvgSq, DeviceBuffer<T>? MaxExpAvgSq, AdamCoefficients<T> Coefficients)
    where T : unmanaged, IFloatingPointIeee754<T>;
