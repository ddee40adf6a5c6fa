// Pooling over NCHW tensors: max-pool (any square window, stride, symmetric padding — ResNet's stem uses 3x3/2
// pad 1) and global average pool (x [N, C, HW] → y [N, C]).
//
// Max-pool forward: one thread per output (grid-stride); padding never wins; ties go to the first element in
// row-major window order, a NaN wins (the window's last NaN, as PyTorch); argmax stores the winner's flat index within its (n, c) plane. Backward is a gather,
// not a scatter: each input element sums dy over the (few) windows that cover it and chose it, so overlapping
// windows need no atomics and the result is reproducible.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>PoolGeometry flattened for kernels.</summary>
public readonly struct PoolShape(PoolGeometry g)
{
    /// <summary>Input rows H and columns W; output rows OH and columns OW.</summary>
    public readonly int H = g.InHeight, W = g.InWidth, OH = g.OutHeight, OW = g.OutWidth;

    /// <summary>Window side, stride between windows, and padding on every side.</summary>
    public readonly int Kernel = g.Kernel, Stride = g.Stride, Padding = g.Padding;
}

/// <summary>The max-pool and global-average-pool kernels over NCHW tensors; grid-stride, one thread per output
/// element.</summary>
public static class PoolingKernels
{
    /// <summary>y[o] = the maximum of o's window (padding skipped, the first maximum in row-major window order wins,
    /// a NaN wins over any number) and argmax[o] = its flat index h·W + w within the (n, c) plane.</summary>
    public static void MaxForward<T>(Index1D thread, ArrayView<T> x, ArrayView<T> y, ArrayView<int> argmax,
        PoolShape s, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long o = thread; o < y.Length; o += stride)
        {
            int ow = (int)(o % s.OW);
            long rest = o / s.OW;
            int oh = (int)(rest % s.OH);
            long plane = rest / s.OH;
            long planeStart = plane * s.H * s.W;
            int best = -1;
            T bestValue = T.Zero;
            for (int r = 0; r < s.Kernel; r++)
            {
                int h = oh * s.Stride - s.Padding + r;
                if (h < 0 || h >= s.H) continue;
                for (int q = 0; q < s.Kernel; q++)
                {
                    int w = ow * s.Stride - s.Padding + q;
                    if (w < 0 || w >= s.W) continue;
                    T value = x[planeStart + h * s.W + w];
                    if (best < 0 || value > bestValue || T.IsNaN(value))
                    {
                        best = h * s.W + w;
                        bestValue = value;
                    }
                }
            }
            y[o] = bestValue;
            argmax[o] = best;
        }
    }

    /// <summary>dx[i] = Σ dy[o] over the windows o that cover input element i and chose it: a gather, so overlapping
    /// windows need no atomics.</summary>
    public static void MaxBackward<T>(Index1D thread, ArrayView<T> dy, ArrayView<int> argmax, ArrayView<T> dx,
        PoolShape s, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < dx.Length; i += stride)
        {
            int w = (int)(i % s.W);
            long rest = i / s.W;
            int h = (int)(rest % s.H);
            long plane = rest / s.H;
            int self = h * s.W + w;
            // Windows covering row h: oh·stride − pad ≤ h ≤ oh·stride − pad + kernel − 1.
            int ohFirst = Math.Max(0, (h + s.Padding - s.Kernel + s.Stride) / s.Stride);
            int ohLast = Math.Min(s.OH - 1, (h + s.Padding) / s.Stride);
            int owFirst = Math.Max(0, (w + s.Padding - s.Kernel + s.Stride) / s.Stride);
            int owLast = Math.Min(s.OW - 1, (w + s.Padding) / s.Stride);
            T sum = T.Zero;
            for (int oh = ohFirst; oh <= ohLast; oh++)
                for (int ow = owFirst; ow <= owLast; ow++)
                {
                    long o = (plane * s.OH + oh) * s.OW + ow;
                    if (argmax[o] == self) sum += dy[o];
                }
            dx[i] = sum;
        }
    }

    /// <summary>y[p] = mean of x[p·HW … p·HW + HW − 1] for each (n, c) plane p.</summary>
    public static void GlobalAverageForward<T>(Index1D thread, ArrayView<T> x, ArrayView<T> y, int spatial,
        T inverseSpatial, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long p = thread; p < y.Length; p += stride)
        {
            T sum = ReductionKernels.BlockedSum<T, ViewValues<T>>(new ViewValues<T>(x), p * spatial, 1, spatial);
            y[p] = sum * inverseSpatial;
        }
    }

    /// <summary>dx[p·HW + i] = dy[p] · inverseSpatial for each (n, c) plane p.</summary>
    public static void GlobalAverageBackward<T>(Index1D thread, ArrayView<T> dy, ArrayView<T> dx, int spatial,
        T inverseSpatial, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < dx.Length; i += stride)
            dx[i] = dy[i / spatial] * inverseSpatial;
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    protected override void MaxPoolForwardCore<T>(PoolGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y,
        DeviceBuffer<int> argmax)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ArrayView<int>,
            PoolShape, int>>(nameof(PoolingKernels.MaxForward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ArrayView<int>, PoolShape, int>(
                PoolingKernels.MaxForward));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), View(argmax), new PoolShape(g), extent);
    }

    /// <inheritdoc/>
    protected override void MaxPoolBackwardCore<T>(PoolGeometry g, DeviceBuffer<T> dy, DeviceBuffer<int> argmax,
        DeviceBuffer<T> dx)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<int>, ArrayView<T>,
            PoolShape, int>>(nameof(PoolingKernels.MaxBackward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<int>, ArrayView<T>, PoolShape, int>(
                PoolingKernels.MaxBackward));
        int extent = StreamExtent(dx.Length);
        kernel(_accelerator.DefaultStream, extent, View(dy), View(argmax), View(dx), new PoolShape(g), extent);
    }

    /// <inheritdoc/>
    protected override void GlobalAveragePoolForwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, int, T, int>>(
            nameof(PoolingKernels.GlobalAverageForward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, int, T, int>(
                PoolingKernels.GlobalAverageForward));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), spatial, T.One / T.CreateChecked(spatial),
            extent);
    }

    /// <inheritdoc/>
    protected override void GlobalAveragePoolBackwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, int, T, int>>(
            nameof(PoolingKernels.GlobalAverageBackward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, int, T, int>(
                PoolingKernels.GlobalAverageBackward));
        int extent = StreamExtent(dx.Length);
        kernel(_accelerator.DefaultStream, extent, View(dy), View(dx), spatial, T.One / T.CreateChecked(spatial),
            extent);
    }
}
