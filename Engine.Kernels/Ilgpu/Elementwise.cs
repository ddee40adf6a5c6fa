// Elementwise ops as ILGPU kernels: fill, the scalar broadcast that sum/mean backward use, the per-channel bias add,
// and one generic grid-stride kernel per arity (Unary, Binary) that serves every op of ElementwiseOps.cs: the op is
// a struct passed by value as a kernel argument (so it can carry a scalar such as alpha), ILGPU compiles one
// specialised kernel per (T, op) pair and calls its scalar Apply. Buffers are flat with n elements (per-channel:
// [N, C, HW]). Thread t handles elements t, t+stride, t+2*stride, … Unary and Binary move quads of 4 elements
// (one 16-byte access per operand for float: device buffers are aligned, and quad i starts at element 4i), then
// the last n mod 4 elements one by one.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The elementwise kernels: grid-stride loops in which thread t handles elements t, t + stride, …, where
/// stride is the number of threads launched.</summary>
public static class ElementwiseKernels
{
    /// <summary>y[i] = value.</summary>
    public static void Fill<T>(Index1D launchIndex, ArrayView<T> y, T value, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (long i = thread; i < y.Length; i += stride)
            y[i] = value;
    }

    /// <summary>y[i] = op(x[i]), by quads, then the tail.</summary>
    public static void Unary<T, TOp>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> y, TOp op, int stride)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T>
    {
        int thread = KernelIndex.Global;
        long quads = y.Length >> 2;
        var xq = x.Cast<Quad<T>>();
        var yq = y.Cast<Quad<T>>();
        for (long i = thread; i < quads; i += stride)
        {
            var v = xq[i];
            yq[i] = new Quad<T> { X = op.Apply(v.X), Y = op.Apply(v.Y), Z = op.Apply(v.Z), W = op.Apply(v.W) };
        }
        for (long i = (quads << 2) + thread; i < y.Length; i += stride)
            y[i] = op.Apply(x[i]);
    }

    /// <summary>y[i] = op(a[i], b[i]), by quads, then the tail; y may alias a or b.</summary>
    public static void Binary<T, TOp>(Index1D launchIndex, ArrayView<T> a, ArrayView<T> b, ArrayView<T> y, TOp op,
        int stride) where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        int thread = KernelIndex.Global;
        long quads = y.Length >> 2;
        var aq = a.Cast<Quad<T>>();
        var bq = b.Cast<Quad<T>>();
        var yq = y.Cast<Quad<T>>();
        for (long i = thread; i < quads; i += stride)
        {
            Quad<T> u = aq[i], v = bq[i];
            yq[i] = new Quad<T>
            {
                X = op.Apply(u.X, v.X), Y = op.Apply(u.Y, v.Y), Z = op.Apply(u.Z, v.Z), W = op.Apply(u.W, v.W),
            };
        }
        for (long i = (quads << 2) + thread; i < y.Length; i += stride)
            y[i] = op.Apply(a[i], b[i]);
    }

    /// <summary>y[n, c, hw] += bias[c].</summary>
    public static void AddPerChannel<T>(Index1D launchIndex, ArrayView<T> bias, ArrayView<T> y, int channels,
        int spatial, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (long i = thread; i < y.Length; i += stride)
            y[i] += bias[(int)(i / spatial % channels)];
    }

    /// <summary>y[i] = alpha * scalar[0].</summary>
    public static void BroadcastScalar<T>(Index1D launchIndex, ArrayView<T> scalar, ArrayView<T> y, T alpha, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
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
    protected override void AddPerChannelCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> bias,
        DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, int, int, int>>(
            nameof(AddPerChannel),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, int, int, int>(
                ElementwiseKernels.AddPerChannel));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(bias), View(y), channels, spatial, extent);
    }

    /// <inheritdoc/>
    protected override void MapCore<T, TOp>(DeviceBuffer<T> x, TOp op, DeviceBuffer<T> y)
    {
        var kernel = Kernel<TOp, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, TOp, int>>(
            nameof(ElementwiseKernels.Unary),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, TOp, int>(
                ElementwiseKernels.Unary));
        int extent = StreamExtent((y.Length + 3) / 4);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), op, extent);
    }

    /// <inheritdoc/>
    protected override void ZipCore<T, TOp>(DeviceBuffer<T> a, DeviceBuffer<T> b, TOp op, DeviceBuffer<T> y)
    {
        var kernel = Kernel<TOp,
            Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, TOp, int>>(
            nameof(ElementwiseKernels.Binary),
            static acc => acc.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, TOp, int>(
                ElementwiseKernels.Binary));
        int extent = StreamExtent((y.Length + 3) / 4);
        kernel(_accelerator.DefaultStream, extent, View(a), View(b), View(y), op, extent);
    }
}
