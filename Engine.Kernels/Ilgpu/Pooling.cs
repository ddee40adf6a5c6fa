// Pooling over NCHW tensors: max-pool and average pool over any PoolGeometry (rectangular window, strides,
// per-side padding, dilation for max pooling, ceil mode; ResNet's stem is 3x3/2 pad 1) and global average pool
// (x [N, C, HW] → y [N, C]).
//
// Forward: a row of lanes per output row (n, c, oh; several rows per group), striding along the row; each output
// reads its window's taps inside the input (rows from PoolGeometry.InputTaps once per row; columns skip the
// padding), so padding is never read. Max: ties go to the first element in row-major window order, a NaN wins (the
// window's last NaN, as PyTorch); argmax stores the winner's flat index within its (n, c) plane. Average: the sum
// over the input cells / the window's divisor (PoolGeometry.AverageCount). Backward is a gather, not a scatter: a
// row of lanes per input row, each input element summing dy over the (few) windows that cover it (max: that chose
// it) in output order, so overlapping windows need no atomics and the result is reproducible. The row is decomposed
// once per thread with 32-bit indices (the geometry keeps every tensor under 2^31 elements); columns, pointers and
// the covering windows' quotients advance as loop variables, so no element pays a division.
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

    /// <summary>(n, c) planes: N·C.</summary>
    public readonly int Planes = checked(g.Batch * g.Channels);
}

/// <summary>A backward thread's step along its input row (its row's lanes) divided by the horizontal stride on the
/// host, so the covering windows advance without a division.</summary>
public readonly struct ColumnStep(int step, int stride)
{
    /// <summary>⌊step / stride⌋.</summary>
    public readonly int Quotient = step / stride;

    /// <summary>step mod stride.</summary>
    public readonly int Remainder = step % stride;
}

/// <summary>The max-pool and average-pool kernels (a row of lanes per row of their output, striding along the
/// row) and the global-average-pool kernels (grid-stride) over NCHW tensors.</summary>
public static class PoolingKernels
{
    /// <summary>Row r = (n·C + c)·OH + oh of y (one row of lanes each): y[o] = the maximum of o's window (padding
    /// skipped, the first maximum in row-major window order wins, a NaN wins over any number) and argmax[o] = its
    /// flat index h·W + w within the (n, c) plane.</summary>
    public static void MaxForward<T>(ArrayView<T> x, ArrayView<T> y, ArrayView<int> argmax, PoolShape s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int row = KernelIndex.Row;
        if (row >= s.Planes * s.OH) return;
        int oh = row % s.OH, planeStart = row / s.OH * s.H * s.W;
        int h0 = oh * s.SH - s.PadTop;
        var (rFirst, rEnd) = PoolGeometry.InputTaps(h0, s.KH, s.DH, s.H);
        // Indices advance as loop variables (source: x's flat index of row 0, column w0 of the plane), so the row's
        // decomposition stays before the loop.
        int target = row * s.OW + Group.IdxX, end = (row + 1) * s.OW, w0 = Group.IdxX * s.SW - s.PadLeft;
        int source = planeStart + w0;
        for (; target < end; target += Group.DimX, w0 += Group.DimX * s.SW, source += Group.DimX * s.SW)
        {
            // best < 0 until the window's first tap: a flag of its own (a bool set to true in the loop) was taken for
            // warp-uniform by ILGPU 1.5.3 at O2 and branched on with bra.uni, though threads whose windows start in
            // the padding reach their first tap later than the others.
            int best = -1;
            T bestValue = T.Zero;
            for (int r = rFirst; r < rEnd; r++)
            {
                int rowStart = (h0 + r * s.DH) * s.W;
                // Every window holds an input tap (PoolGeometry checks it); the last tap stays below 2^31.
                for (int q = 0, offset = 0; q < s.KW && w0 + offset < s.W; q++, offset += s.DW)
                {
                    if (w0 + offset < 0) continue;
                    T value = x[source + rowStart + offset];
                    if (best < 0 || value > bestValue || T.IsNaN(value))
                    {
                        best = rowStart + w0 + offset;
                        bestValue = value;
                    }
                }
            }
            y[target] = bestValue;
            argmax[target] = best;
        }
    }

    /// <summary>Row r = (n·C + c)·H + h of dx (one row of lanes each): dx[i] = Σ dy[o] over the windows o that cover
    /// input element i and chose it, in output order: a gather, so overlapping windows need no atomics.</summary>
    public static void MaxBackward<T>(ArrayView<T> dy, ArrayView<int> argmax, ArrayView<T> dx, PoolShape s,
        ColumnStep step) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int row = KernelIndex.Row;
        if (row >= s.Planes * s.H) return;
        int h = row % s.H, outPlaneStart = row / s.H * s.OH * s.OW;
        var (ohFirst, ohLast) = CoveringWindows(h, s.PadTop, (s.KH - 1) * s.DH + 1, s.SH, s.OH);
        var columns = new CoveringColumns(Group.IdxX, s.PadLeft, (s.KW - 1) * s.DW + 1, s.SW, step);
        // first, last: dy's flat indices of the thread's first covering window in the first and the last covering
        // window row (last < first when no window row covers h). Loop variables, so the row's decomposition stays
        // before the loop.
        int first = outPlaneStart + ohFirst * s.OW + columns.First, last = first + (ohLast - ohFirst) * s.OW;
        int target = row * s.W + Group.IdxX, end = (row + 1) * s.W, self = h * s.W + Group.IdxX;
        while (target < end)
        {
            int owFirst = columns.First, lastColumn = Math.Min(s.OW - 1, columns.Last) - owFirst;
            T sum = T.Zero;
            // A dilated window may span element i without a tap on it; its argmax is then never i.
            for (int o = first, left = last - first; left >= 0; o += s.OW, left -= s.OW)
                for (int window = o; window <= o + lastColumn; window++)
                    if (argmax[window] == self) sum += dy[window];
            dx[target] = sum;
            target += Group.DimX;
            self += Group.DimX;
            columns.Advance();
            int shift = columns.First - owFirst;
            first += shift;
            last += shift;
        }
    }

    /// <summary>Row r = (n·C + c)·OH + oh of y (one row of lanes each): y[o] = the sum of o's input cells
    /// (row-major) / its divisor (PoolGeometry.AverageCount per axis; <paramref name="countIncludePad"/> ≠ 0 counts
    /// padding cells).</summary>
    public static void AverageForward<T>(ArrayView<T> x, ArrayView<T> y, PoolShape s, int countIncludePad)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int row = KernelIndex.Row;
        if (row >= s.Planes * s.OH) return;
        // oh from the quotient rather than a remainder: the quotient feeds a loop variable (source), which keeps
        // the one division before the loop; what the loop recomputes from it is multiplication alone.
        int plane = row / s.OH, oh = row - plane * s.OH, planeStart = plane * s.H * s.W;
        int h0 = oh * s.SH - s.PadTop;
        int hFirst = Math.Max(h0, 0), hEnd = Math.Min(h0 + s.KH, s.H);
        // Indices advance as loop variables (source: x's flat index of row 0, column w0 of the plane), so the row's
        // decomposition stays before the loop.
        int target = row * s.OW + Group.IdxX, end = (row + 1) * s.OW, w0 = Group.IdxX * s.SW - s.PadLeft;
        int source = planeStart + w0;
        for (; target < end; target += Group.DimX, w0 += Group.DimX * s.SW, source += Group.DimX * s.SW)
        {
            int wFirst = Math.Max(w0, 0), wEnd = Math.Min(w0 + s.KW, s.W);
            T sum = T.Zero;
            for (int h = hFirst; h < hEnd; h++)
                for (int w = wFirst; w < wEnd; w++)
                    sum += x[source + h * s.W + (w - w0)];
            y[target] = sum / Divisor<T>(s, h0, w0, countIncludePad);
        }
    }

    /// <summary>Row r = (n·C + c)·H + h of dx (one row of lanes each): dx[i] = Σ dy[o] / divisor(o) over the
    /// windows o that cover input element i, in output order.</summary>
    public static void AverageBackward<T>(ArrayView<T> dy, ArrayView<T> dx, PoolShape s, int countIncludePad,
        ColumnStep step) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int row = KernelIndex.Row;
        if (row >= s.Planes * s.H) return;
        int h = row % s.H, outPlaneStart = row / s.H * s.OH * s.OW;
        var (ohFirst, ohLast) = CoveringWindows(h, s.PadTop, s.KH, s.SH, s.OH);
        var columns = new CoveringColumns(Group.IdxX, s.PadLeft, s.KW, s.SW, step);
        // first and last as in MaxBackward: loop variables, so the row's decomposition stays before the loop.
        int first = outPlaneStart + ohFirst * s.OW + columns.First, last = first + (ohLast - ohFirst) * s.OW;
        int target = row * s.W + Group.IdxX, end = (row + 1) * s.W;
        while (target < end)
        {
            int owFirst = columns.First, lastColumn = Math.Min(s.OW - 1, columns.Last) - owFirst;
            T sum = T.Zero;
            for (int o = first, left = last - first, h0 = ohFirst * s.SH - s.PadTop; left >= 0;
                 o += s.OW, left -= s.OW, h0 += s.SH)
                for (int k = 0, w0 = owFirst * s.SW - s.PadLeft; k <= lastColumn; k++, w0 += s.SW)
                    sum += dy[o + k] / Divisor<T>(s, h0, w0, countIncludePad);
            dx[target] = sum;
            target += Group.DimX;
            columns.Advance();
            int shift = columns.First - owFirst;
            first += shift;
            last += shift;
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

    /// <summary><see cref="CoveringWindows"/> along the columns of a thread that advances by a fixed step: the
    /// windows covering column w are [max(⌊(w + pad − span) / stride⌋ + 1, 0), ⌊(w + pad) / stride⌋] (the last
    /// one still to be clipped to OW − 1), both floor quotients kept as quotient and remainder that each step
    /// advances by additions alone.</summary>
    private struct CoveringColumns
    {
        private FloorQuotient _before, _through;

        /// <summary>The windows covering column <paramref name="column"/>, the thread stepping by
        /// <paramref name="step"/> columns.</summary>
        public CoveringColumns(int column, int pad, int span, int stride, ColumnStep step)
        {
            _before = new FloorQuotient(column + pad - span, stride, step);
            _through = new FloorQuotient(column + pad, stride, step);
        }

        /// <summary>The first covering window (0 when the column is inside the first window).</summary>
        public readonly int First => Math.Max(_before.Quotient + 1, 0);

        /// <summary>The last window starting at or before the column, not yet clipped to OW − 1.</summary>
        public readonly int Last => _through.Quotient;

        /// <summary>Moves to the column one step further.</summary>
        public void Advance()
        {
            _before.Advance();
            _through.Advance();
        }
    }

    /// <summary>⌊value / divisor⌋ of a value that advances by a fixed step: value = Quotient·divisor + remainder
    /// with 0 ≤ remainder &lt; divisor, divided once and then advanced by additions (none passes 2^31).</summary>
    private struct FloorQuotient
    {
        private readonly int _divisor, _stepQuotient, _stepRemainder;
        private int _remainder;

        /// <summary>⌊<paramref name="value"/> / <paramref name="divisor"/>⌋, the value advancing by
        /// <paramref name="step"/> (divided by the same divisor on the host).</summary>
        public FloorQuotient(int value, int divisor, ColumnStep step)
        {
            _divisor = divisor;
            Quotient = value / divisor;
            _remainder = value % divisor;
            if (_remainder < 0)
            {
                _remainder += divisor;
                Quotient--;
            }
            _stepQuotient = step.Quotient;
            _stepRemainder = step.Remainder;
        }

        /// <summary>The floor quotient of the current value.</summary>
        public int Quotient { get; private set; }

        /// <summary>Adds the step to the value.</summary>
        public void Advance()
        {
            Quotient += _stepQuotient;
            int room = _divisor - _stepRemainder;
            if (_remainder >= room)
            {
                _remainder -= room;
                Quotient++;
            }
            else _remainder += _stepRemainder;
        }
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
    public static void GlobalAverageForward<T>(Index1D launchIndex, ArrayView<T> x, ArrayView<T> y, int spatial,
        T inverseSpatial, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
        for (long p = thread; p < y.Length; p += stride)
        {
            T sum = ReductionKernels.BlockedSum<T, ViewValues<T>>(new ViewValues<T>(x), p * spatial, 1, spatial);
            y[p] = sum * inverseSpatial;
        }
    }

    /// <summary>dx[p·HW + i] = dy[p] · inverseSpatial for each (n, c) plane p.</summary>
    public static void GlobalAverageBackward<T>(Index1D launchIndex, ArrayView<T> dy, ArrayView<T> dx, int spatial,
        T inverseSpatial, int stride) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int thread = KernelIndex.Global;
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
        var kernel = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, PoolShape, int>>(
            nameof(PoolingKernels.AverageForward),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, PoolShape, int>(PoolingKernels.AverageForward));
        var s = new PoolShape(g);
        kernel(_accelerator.DefaultStream, RowConfig(checked(s.Planes * s.OH), s.OW), View(x), View(y),
            s, countIncludePad ? 1 : 0);
    }

    /// <inheritdoc/>
    protected override void AvgPoolBackwardCore<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, PoolShape, int,
            ColumnStep>>(nameof(PoolingKernels.AverageBackward),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, PoolShape, int, ColumnStep>(
                PoolingKernels.AverageBackward));
        var s = new PoolShape(g);
        var config = RowConfig(checked(s.Planes * s.H), s.W);
        kernel(_accelerator.DefaultStream, config, View(dy), View(dx), s, countIncludePad ? 1 : 0,
            new ColumnStep(config.GroupDim.X, s.SW));
    }

    /// <inheritdoc/>
    protected override void MaxPoolForwardCore<T>(PoolGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y,
        DeviceBuffer<int> argmax)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<int>,
            PoolShape>>(nameof(PoolingKernels.MaxForward),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, ArrayView<int>, PoolShape>(PoolingKernels.MaxForward));
        var s = new PoolShape(g);
        kernel(_accelerator.DefaultStream, RowConfig(checked(s.Planes * s.OH), s.OW), View(x), View(y),
            View(argmax), s);
    }

    /// <inheritdoc/>
    protected override void MaxPoolBackwardCore<T>(PoolGeometry g, DeviceBuffer<T> dy, DeviceBuffer<int> argmax,
        DeviceBuffer<T> dx)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<int>, ArrayView<T>,
            PoolShape, ColumnStep>>(nameof(PoolingKernels.MaxBackward),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<int>, ArrayView<T>, PoolShape, ColumnStep>(
                PoolingKernels.MaxBackward));
        var s = new PoolShape(g);
        var config = RowConfig(checked(s.Planes * s.H), s.W);
        kernel(_accelerator.DefaultStream, config, View(dy), View(argmax), View(dx), s,
            new ColumnStep(config.GroupDim.X, s.SW));
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
