// The strided ops as ILGPU kernels (layouts in StridedLayout.cs): a gather (permute, broadcast expansion, slice)
// and its inverse the scatter (the layout is one-to-one, so no two threads write one element), a binary op over two
// strided operands (broadcasting; the op is a struct of ElementwiseOps.cs passed by value, one kernel per (T, op))
// and a sum over the reduced axes of a layout. All are grid-stride loops over their dense output (the scatter: its
// dense input) with 32-bit indices (Backend has checked every extent and offset). The layouts are value arguments whose Offset is
// straight-line integer code, so nothing lands in local memory. The sum gives each output to one thread, which adds
// its inputs in the order r = 0, 1, …: the same bits on every run.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The strided kernels: grid-stride loops over a dense output in which thread t handles elements t,
/// t + stride, …</summary>
public static class StridedKernels
{
    /// <summary>y[i] = x[layout.Offset(i)].</summary>
    public static void Copy<T>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> y, StridedLayout layout, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (int i = thread; i < y.IntLength; i += stride)
            y[i] = x[layout.Offset(i)];
    }

    /// <summary>y[layout.Offset(i)] = x[i].</summary>
    public static void Scatter<T>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> y, StridedLayout layout, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (int i = thread; i < x.IntLength; i += stride)
            y[layout.Offset(i)] = x[i];
    }

    /// <summary>y[i] = op(a[aLayout.Offset(i)], b[bLayout.Offset(i)]).</summary>
    public static void Zip<T, TOp>(Index1D launchIndex, ArrayView<T> a, ArrayView<T> b, ArrayView<T> y,
        StridedLayout aLayout, StridedLayout bLayout, TOp op, int stride)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        int thread = KernelIndex.Global;
        for (int i = thread; i < y.IntLength; i += stride)
            y[i] = op.Apply(a[aLayout.Offset(i)], b[bLayout.Offset(i)]);
    }

    /// <summary>y[j] = alpha · Σ_r x[kept.Offset(j) + reduced.Offset(r)], r = 0, 1, … in order.</summary>
    public static void Sum<T>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> y, StridedLayout kept,
        StridedLayout reduced, int reducedLength, T alpha, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (int j = thread; j < y.IntLength; j += stride)
        {
            int origin = kept.Offset(j);
            T sum = T.Zero;
            for (int r = 0; r < reducedLength; r++)
                sum += x[origin + reduced.Offset(r)];
            y[j] = alpha * sum;
        }
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    protected override void StridedCopyCore<T>(StridedLayout layout, DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, StridedLayout, int>>(
            nameof(StridedKernels) + nameof(StridedKernels.Copy),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, StridedLayout, int>(
                StridedKernels.Copy));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), layout, extent);
    }

    /// <inheritdoc/>
    protected override void StridedScatterCore<T>(DeviceBuffer<T> x, StridedLayout layout, DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, StridedLayout, int>>(
            nameof(StridedKernels) + nameof(StridedKernels.Scatter),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, StridedLayout, int>(
                StridedKernels.Scatter));
        int extent = StreamExtent(x.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), layout, extent);
    }

    /// <inheritdoc/>
    protected override void StridedZipCore<T, TOp>(StridedLayout aLayout, DeviceBuffer<T> a, StridedLayout bLayout,
        DeviceBuffer<T> b, TOp op, DeviceBuffer<T> y)
    {
        var kernel = Kernel<TOp, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>,
            StridedLayout, StridedLayout, TOp, int>>(
            nameof(StridedKernels) + nameof(StridedKernels.Zip),
            static acc => acc.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<T>, StridedLayout,
                StridedLayout, TOp, int>(StridedKernels.Zip));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(a), View(b), View(y), aLayout, bLayout, op, extent);
    }

    /// <inheritdoc/>
    protected override void StridedSumCore<T>(StridedLayout kept, StridedLayout reduced, DeviceBuffer<T> x, T alpha,
        DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, StridedLayout,
            StridedLayout, int, T, int>>(
            nameof(StridedKernels) + nameof(StridedKernels.Sum),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, StridedLayout, StridedLayout, int,
                T, int>(StridedKernels.Sum));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), kept, reduced, (int)reduced.Length, alpha,
            extent);
    }
}
