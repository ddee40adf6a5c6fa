// Elementwise ops as ILGPU kernels: fill, copy, add, multiply, scale, axpy, ReLU forward and backward, the
// scalar broadcast that sum/mean backward use, and the per-channel bias add. Buffers are flat with n elements
// (per-channel: [N, C, HW]).
//
// One generic grid-stride kernel per arity (Unary, Binary) serves every op: the op is a struct implementing
// IUnaryOp/IBinaryOp, passed by value as a kernel argument (so it can carry a scalar such as alpha), and ILGPU
// compiles one specialised kernel per (T, op) pair. Thread t handles elements t, t+stride, t+2*stride, …
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>A function of one element, passed by value to <see cref="ElementwiseKernels.Unary{T,TOp}"/>; ILGPU compiles
/// one kernel per (T, op) pair.</summary>
public interface IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The result for element <paramref name="x"/>.</summary>
    T Apply(T x);
}

/// <summary>A function of two elements at the same index, passed by value to
/// <see cref="ElementwiseKernels.Binary{T,TOp}"/>.</summary>
public interface IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The result for elements <paramref name="a"/> and <paramref name="b"/>.</summary>
    T Apply(T a, T b);
}

/// <summary>x (copy).</summary>
public readonly struct IdentityOp<T> : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T x) => x;
}

/// <summary>alpha · x.</summary>
/// <param name="alpha">The scale factor.</param>
public readonly struct ScaleOp<T>(T alpha) : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = alpha;

    /// <inheritdoc/>
    public T Apply(T x) => _alpha * x;
}

/// <summary>max(x, 0) that propagates NaN (as PyTorch): 0 where x ≤ 0, which is false for NaN, else x.</summary>
public readonly struct ReluOp<T> : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T x) => x <= T.Zero ? T.Zero : x;
}

/// <summary>a + b.</summary>
public readonly struct AddOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T a, T b) => a + b;
}

/// <summary>a · b.</summary>
public readonly struct MultiplyOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T a, T b) => a * b;
}

/// <summary>alpha * a + b.</summary>
public readonly struct AxpyOp<T>(T alpha) : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = alpha;

    /// <inheritdoc/>
    public T Apply(T a, T b) => _alpha * a + b;
}

/// <summary>a is ReLU's output, b the output gradient: b where a &gt; 0, else 0 (also where a is NaN, as PyTorch's
/// threshold backward).</summary>
public readonly struct ReluBackwardOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T a, T b) => a > T.Zero ? b : T.Zero;
}

/// <summary>The elementwise kernels: grid-stride loops in which thread t handles elements t, t + stride, …, where
/// stride is the number of threads launched.</summary>
public static class ElementwiseKernels
{
    /// <summary>y[i] = value.</summary>
    public static void Fill<T>(Index1D thread, ArrayView<T> y, T value, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < y.Length; i += stride)
            y[i] = value;
    }

    /// <summary>y[i] = op(x[i]).</summary>
    public static void Unary<T, TOp>(Index1D thread, ArrayView<T> x, ArrayView<T> y, TOp op, int stride)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T>
    {
        for (long i = thread; i < y.Length; i += stride)
            y[i] = op.Apply(x[i]);
    }

    /// <summary>y[i] = op(a[i], b[i]); y may alias a or b.</summary>
    public static void Binary<T, TOp>(Index1D thread, ArrayView<T> a, ArrayView<T> b, ArrayView<T> y, TOp op,
        int stride) where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        for (long i = thread; i < y.Length; i += stride)
            y[i] = op.Apply(a[i], b[i]);
    }

    /// <summary>y[n, c, hw] += bias[c].</summary>
    public static void AddPerChannel<T>(Index1D thread, ArrayView<T> bias, ArrayView<T> y, int channels, int spatial,
        int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < y.Length; i += stride)
            y[i] += bias[(int)(i / spatial % channels)];
    }

    /// <summary>y[i] = alpha * scalar[0].</summary>
    public static void BroadcastScalar<T>(Index1D thread, ArrayView<T> scalar, ArrayView<T> y, T alpha, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T value = alpha * scalar[0];
        for (long i = thread; i < y.Length; i += stride)
            y[i] = value;
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    protected override void FillCore<T>(DeviceBuffer<T> y, T value)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, T, int>>(nameof(Fill),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, T, int>(ElementwiseKernels.Fill));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(y), value, extent);
    }

    /// <inheritdoc/>
    protected override void CopyCore<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) =>
        LaunchUnary(x, y, new IdentityOp<T>());

    /// <inheritdoc/>
    protected override void ScaleCore<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> y) =>
        LaunchUnary(x, y, new ScaleOp<T>(alpha));

    /// <inheritdoc/>
    protected override void ReluCore<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) =>
        LaunchUnary(x, y, new ReluOp<T>());

    /// <inheritdoc/>
    protected override void AddCore<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) =>
        LaunchBinary(a, b, y, new AddOp<T>());

    /// <inheritdoc/>
    protected override void MultiplyCore<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) => LaunchBinary(a, b, y, new MultiplyOp<T>());

    /// <inheritdoc/>
    protected override void AxpyCore<T>(T alpha, DeviceBuffer<T> x, DeviceBuffer<T> y) =>
        LaunchBinary(x, y, y, new AxpyOp<T>(alpha));

    /// <inheritdoc/>
    protected override void ReluBackwardCore<T>(DeviceBuffer<T> y, DeviceBuffer<T> dy, DeviceBuffer<T> dx) => LaunchBinary(y, dy, dx, new ReluBackwardOp<T>());

    /// <inheritdoc/>
    protected override void BroadcastScalarCore<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, T, int>>(
            nameof(BroadcastScalar),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, T, int>(
                ElementwiseKernels.BroadcastScalar));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(scalar), View(y), alpha, extent);
    }

    /// <inheritdoc/>
    protected override void AddPerChannelCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> bias, DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, int, int, int>>(
            nameof(AddPerChannel),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int, int>(
                ElementwiseKernels.AddPerChannel));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(bias), View(y), channels, spatial, extent);
    }

    private void LaunchUnary<T, TOp>(DeviceBuffer<T> x, DeviceBuffer<T> y, TOp unary)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T>
    {
        var kernel = Kernel<TOp, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, TOp, int>>(
            nameof(ElementwiseKernels.Unary),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, TOp, int>(
                ElementwiseKernels.Unary));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), unary, extent);
    }

    private void LaunchBinary<T, TOp>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y,
        TOp binary) where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        var kernel = Kernel<TOp,
            Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, TOp, int>>(
            nameof(ElementwiseKernels.Binary),
            static acc => acc.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, TOp, int>(
                ElementwiseKernels.Binary));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(a), View(b), View(y), binary, extent);
    }
}
