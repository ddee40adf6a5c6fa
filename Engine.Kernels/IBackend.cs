// The backend interface: the only door from Engine.Core to compute.
//
// A backend owns device memory (DeviceBuffer<T>) and runs every op on it. Buffers are flat, densely packed
// arrays; shapes are the caller's business, but every method validates the lengths it is given before any launch
// and throws ArgumentException naming them, so an out-of-bounds access inside a kernel cannot be reached.
// Element types are float and double (any T : unmanaged, INumber<T> compiles; the engine uses those two).
//
// Gradient rule (as in llm.c): forward ops write their output (=); the autograd engine accumulates gradients
// with Axpy (+=).
using System.Numerics;

namespace Engine.Kernels;

/// <summary>A flat array of <typeparamref name="T"/> living on one backend.</summary>
public abstract class DeviceBuffer<T> : IDisposable where T : unmanaged, INumber<T>
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
    DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged, INumber<T>;

    /// <summary>Waits until every queued op has finished.</summary>
    void Synchronize();

    // ---- elementwise (Elementwise.cs) ----

    /// <summary>y[i] = value.</summary>
    void Fill<T>(DeviceBuffer<T> y, T value) where T : unmanaged, INumber<T>;

    /// <summary>y[i] = x[i].</summary>
    void Copy<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, INumber<T>;

    /// <summary>y[i] = a[i] + b[i].</summary>
    void Add<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) where T : unmanaged, INumber<T>;

    /// <summary>y[i] = a[i] * b[i].</summary>
    void Multiply<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) where T : unmanaged, INumber<T>;

    /// <summary>y[i] = alpha * x[i].</summary>
    void Scale<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> y) where T : unmanaged, INumber<T>;

    /// <summary>y[i] += alpha * x[i] (gradient accumulation).</summary>
    void Axpy<T>(T alpha, DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, INumber<T>;

    /// <summary>y[i] = max(x[i], 0).</summary>
    void Relu<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, INumber<T>;

    /// <summary>dx[i] = y[i] &gt; 0 ? dy[i] : 0, where y is ReLU's output.</summary>
    void ReluBackward<T>(DeviceBuffer<T> y, DeviceBuffer<T> dy, DeviceBuffer<T> dx) where T : unmanaged, INumber<T>;

    /// <summary>y[i] = alpha * scalar[0] (spreads a scalar gradient, e.g. the backward of sum and mean).</summary>
    void BroadcastScalar<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y) where T : unmanaged, INumber<T>;

    // ---- reductions (Reduction.cs) ----

    /// <summary>result[0] = alpha * sum(x). Deterministic: the same inputs give the same bits on every run.</summary>
    void Sum<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result) where T : unmanaged, INumber<T>;
}
