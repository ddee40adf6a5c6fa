// Pooling over NCHW tensors: max-pool and average pool over any PoolGeometry (rectangular window, strides,
// per-side padding, dilation for max pooling, ceil mode; ResNet's stem is 3x3/2 pad 1) and global average pool
// (x [N, C, HW] → y [N, C]).
//
// Forward: one thread per output (grid-stride) over its window's taps inside the input (PoolGeometry.InputTaps),
// so padding is never read. Max: ties go to the first element in row-major window order, a NaN wins (the window's
// last NaN, as PyTorch); argmax stores the winner's flat index within its (n, c) plane. Average: the sum over the
// input cells / the window's divisor (PoolGeometry.AverageCount). Backward is a gather, not a scatter: each input
// element sums dy over the (few) windows that cover it (max: that chose it) in output order, so overlapping
// windows need no atomics and the result is reproducible. Indices are 32-bit: the geometry keeps every tensor under
// 2^31 elements; only the grid-stride counter is 64-bit.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>PoolGeometry flattened for kernels.</summary>
public readonly struct PoolShape(PoolGeometry g)
{
    /// <summary>Input rows H and columns W; output rows OH and columns OW.</summary>
    public readonly int H = g.InHeight, W = g.InWidth, OH = g.OutHeight, OW = g.OutWidth;

    /// <summary>Window rows and columns, strides and dilations per axis.</summary>
    public readonly int KH = g.KernelHeight, KW = g.KernelWidth, SH = g.StrideHeight, SW = g.StrideWidth,
        DH = g.DilationHeight, DW = g.DilationWidth;

    /// <summary>Padding per side.</summary>
    public readonly int PadTop = g.PadTop, PadBottom = g.PadBottom, PadLeft = g.PadLeft, PadRight = g.PadRight;
}

/// <summary>The max-pool, average-pool and global-average-pool kernels over NCHW tensors; grid-stride, one thread
/// per output element.</summary>
public static class PoolingKernels
{
    /// <summary>y[o] = the maximum of o's window (padding skipped, the first maximum in row-major window order wins,
    /// a NaN wins over any number) and argmax[o] = its flat index h·W + w within the (n, c) plane.</summary>
    public static void MaxForward<T>(Index1D thread, ArrayView<T> x, ArrayView<T> y, ArrayView<int> argmax,
        PoolShape s, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < y.Length; i += stride)
        {
            int o = (int)i;
            int ow = o % s.OW, rest = o / s.OW;
            int oh = rest % s.OH, planeStart = rest / s.OH * s.H * s.W;
            int h0 = oh * s.SH - s.PadTop, w0 = ow * s.SW - s.PadLeft;
            var (rFirst, rEnd) = PoolGeometry.InputTaps(h0, s.KH, s.DH, s.H);
            var (qFirst, qEnd) = PoolGeometry.InputTaps(w0, s.KW, s.DW, s.W);
            int best = (h0 + rFirst * s.DH) * s.W + w0 + qFirst * s.DW;
            T bestValue = x[planeStart + best];
            for (int r = rFirst; r < rEnd; r++)
            {
                int rowStart = (h0 + r * s.DH) * s.W + w0;
                for (int q = qFirst; q < qEnd; q++)
                {
                    int index = rowStart + q * s.DW;
                    T value = x[planeStart + index];
                    if (value > bestValue || T.IsNaN(value))
                    {
                        best = index;
                        bestValue = value;
                    }
                }
            }
            y[i] = bestValue;
            argmax[i] = best;
        }
    }

    /// <summary>dx[i] = Σ dy[o] over the windows o that cover input element i and chose it, in output order: a
    /// gather, so overlapping windows need no atomics.</summary>
    public static void MaxBackward<T>(Index1D thread, ArrayView<T> dy, ArrayView<int> argmax, ArrayView<T> dx,
        PoolShape s, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < dx.Length; i += stride)
        {
            int flat = (int)i;
            int w = flat % s.W, rest = flat / s.W;
            int h = rest % s.H, outPlaneStart = rest / s.H * s.OH * s.OW;
            int self = h * s.W + w;
            var (ohFirst, ohLast) = CoveringWindows(h, s.PadTop, (s.KH - 1) * s.DH + 1, s.SH, s.OH);
            var (owFirst, owLast) = CoveringWindows(w, s.PadLeft, (s.KW - 1) * s.DW + 1, s.SW, s.OW);
            T sum = T.Zero;
            // A dilated window may span element i without a tap on it; its argmax is then never i.
            for (int oh = ohFirst; oh <= ohLast; oh++)
                for (int ow = owFirst; ow <= owLast; ow++)
                {
                    int o = outPlaneStart + oh * s.OW + ow;
                    if (argmax[o] == self) sum += dy[o];
                }
            dx[i] = sum;
        }
    }

    /// <summary>y[o] = the sum of o's input cells (row-major) / its divisor (PoolGeometry.AverageCount per axis;
    /// <paramref name="countIncludePad"/> ≠ 0 counts padding cells).</summary>
    public static void AverageForward<T>(Index1D thread, ArrayView<T> x, ArrayView<T> y, PoolShape s,
        int countIncludePad, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < y.Length; i += stride)
        {
            int o = (int)i;
            int ow = o % s.OW, rest = o / s.OW;
            int oh = rest % s.OH, planeStart = rest / s.OH * s.H * s.W;
            int h0 = oh * s.SH - s.PadTop, w0 = ow * s.SW - s.PadLeft;
            int hEnd = Math.Min(h0 + s.KH, s.H), wEnd = Math.Min(w0 + s.KW, s.W);
            T sum = T.Zero;
            for (int h = Math.Max(h0, 0); h < hEnd; h++)
                for (int w = Math.Max(w0, 0); w < wEnd; w++)
                    sum += x[planeStart + h * s.W + w];
            y[i] = sum / Divisor<T>(s, h0, w0, countIncludePad);
        }
    }

    /// <summary>dx[i] = Σ dy[o] / divisor(o) over the windows o that cover input element i, in output order.</summary>
    public static void AverageBackward<T>(Index1D thread, ArrayView<T> dy, ArrayView<T> dx, PoolShape s,
        int countIncludePad, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < dx.Length; i += stride)
        {
            int flat = (int)i;
            int w = flat % s.W, rest = flat / s.W;
            int h = rest % s.H, outPlaneStart = rest / s.H * s.OH * s.OW;
            var (ohFirst, ohLast) = CoveringWindows(h, s.PadTop, s.KH, s.SH, s.OH);
            var (owFirst, owLast) = CoveringWindows(w, s.PadLeft, s.KW, s.SW, s.OW);
            T sum = T.Zero;
            for (int oh = ohFirst; oh <= ohLast; oh++)
                for (int ow = owFirst; ow <= owLast; ow++)
                    sum += dy[outPlaneStart + oh * s.OW + ow] /
                           Divisor<T>(s, oh * s.SH - s.PadTop, ow * s.SW - s.PadLeft, countIncludePad);
            dx[i] = sum;
        }
    }

    /// <summary>The windows [first, last] along one axis whose span covers input index <paramref name="index"/>:
    /// o·stride − pad ≤ index ≤ o·stride − pad + span − 1, clipped to [0, outExtent − 1] (empty when first &gt;
    /// last). Written so that no sum can pass 2^31.</summary>
    private static (int First, int Last) CoveringWindows(int index, int pad, int span, int stride, int outExtent)
    {
        int lowest = index + pad - span + 1; // o·stride ≥ lowest
        int first = lowest <= 0 ? 0 : (lowest - 1) / stride + 1;
        return (first, Math.Min(outExtent - 1, (index + pad) / stride));
    }

    /// <summary>The divisor of the window starting at (h0, w0), as T. Built by adding ones (exact below 2^24 in
    /// float): the generic int → T conversions are not kernel code.</summary>
    private static T Divisor<T>(PoolShape s, int h0, int w0, int countIncludePad)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool include = countIncludePad != 0;
        int rows = PoolGeometry.AverageCount(h0, s.KH, s.H, s.PadBottom, include);
        int columns = PoolGeometry.AverageCount(w0, s.KW, s.W, s.PadRight, include);
        T count = T.Zero;
        for (int n = rows * columns; n > 0; n--) count += T.One;
        return count;
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
    protected override void AvgPoolForwardCore<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> x,
        DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, PoolShape, int, int>>(
            nameof(PoolingKernels.AverageForward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, PoolShape, int, int>(
                PoolingKernels.AverageForward));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), new PoolShape(g), countIncludePad ? 1 : 0,
            extent);
    }

    /// <inheritdoc/>
    protected override void AvgPoolBackwardCore<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, PoolShape, int, int>>(
            nameof(PoolingKernels.AverageBackward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, PoolShape, int, int>(
                PoolingKernels.AverageBackward));
        int extent = StreamExtent(dx.Length);
        kernel(_accelerator.DefaultStream, extent, View(dy), View(dx), new PoolShape(g), countIncludePad ? 1 : 0,
            extent);
    }

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
