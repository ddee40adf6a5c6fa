// 2-D convolution as implicit GEMM on the tiled kernel of Gemm.cs: x [N,C,H,W], w [K,C/G,R,S], bias [K],
// y [N,K,OH,OW]. Nothing is materialised: loaders gather matrix elements straight from the NCHW tensors.
//
//   forward          y (P×K)   = im2col(x) (P×CRS)  · wᵀ (CRS×K)        P = N·OH·OW output pixels
//   backward data    dx (Qp×C) = gather(dy) (Qp×KT) · w' (KT×C)        per stride phase (below): Qp its pixels
//   backward weight  dw (K×CRS) = dyᵀ (K×P)          · im2col(x) (P×CRS)
//
// Rows of the pixel matrices run along the innermost (W) axis, so consecutive threads of a stage copy gather
// neighbouring pixels and the stores write consecutive addresses.
//
// Backward data by stride phase: tap (r, s) reaches input pixel (h, w) from output pixel ((h + padTop − r·dh)/sh,
// (w + padLeft − s·dw)/sw) only when both divisions are exact, which depends on h mod sh and w mod sw alone. So the
// input pixels split into sh·sw phases (h = ph + i·sh, w = pw + j·sw), and each phase is a dense, stride-1 gather
// over only the T taps that reach it: output pixel (i + a, j + b) with a, b fixed per tap. A strided convolution
// computes no zero products and divides nothing (a stride-1 convolution is one phase with every tap); a phase that no
// tap reaches (1x1/2: three of four) is zero.
//
// Groups: one GEMM per group over views that start at the group's first channel (of x, y, dy, dx and bias) and
// first filter (of w, dw), with C and K above read as C/G and K/G while the tensors keep their full channel
// strides; one group is one GEMM over the whole views.
//
// The gathers never divide a column index: each pass's columns (taps (c, r, s), or the backward-data gather's
// (k, r, s)) come from a small ConvTap table built on the host once per geometry, with the dilation and padding
// folded in. The pixel of a row (forward, backward data) is decomposed once per thread (IMatrixLoader.Locate), and
// again per stored element by the stores (PhasePixelStore: four divisions, outside the K loop); the weight
// gradient's pixels, its reduction axis, once per four gathered elements.
//
// Forward's epilogue (+ bias, + residual, ReLU: a convolution with its batch-norm folded in) runs in the store,
// where each output element is written once with its final sum (after the split-K sum when K is split).
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The integer shape a convolution's loaders need (ConvGeometry flattened for kernels).</summary>
public readonly struct ConvShape(ConvGeometry g)
{
    /// <summary>Input channels C, rows H and columns W; output channels K (the tensors' full channel counts, their
    /// image strides).</summary>
    public readonly int C = g.InChannels, H = g.InHeight, W = g.InWidth, K = g.OutChannels;

    /// <summary>Filter rows R and columns S; output rows OH and columns OW.</summary>
    public readonly int R = g.KernelHeight, S = g.KernelWidth, OH = g.OutHeight, OW = g.OutWidth;

    /// <summary>Strides, and the zero rows above and columns left of the input (the far sides follow from OH and
    /// OW).</summary>
    public readonly int StrideH = g.StrideHeight, StrideW = g.StrideWidth, PadTop = g.PadTop, PadLeft = g.PadLeft;
}

/// <summary>One column of a convolution's gathered matrix, precomputed on the host (one table per geometry and
/// pass) so the gathers never divide a column index: for im2col's tap (c, r, s), <see cref="Offset"/> =
/// c·H·W + r·dh·W + s·dw, <see cref="Row"/> = r·dh, <see cref="Column"/> = s·dw; for a backward-data phase's
/// (k, r, s), <see cref="Offset"/> = k·OH·OW, <see cref="Row"/> = (ph + padTop − r·dh)/sh, <see cref="Column"/> =
/// (pw + padLeft − s·dw)/sw (exact), <see cref="Filter"/> the offset of w[k, 0, r, s]. 16 bytes, so a kernel reads
/// an entry as one vector.</summary>
public readonly struct ConvTap(int offset, int row, int column, int filter = 0)
{
    /// <summary>Element offset of the column's plane (and, for im2col, of the tap inside the window).</summary>
    public readonly int Offset = offset;

    /// <summary>Row shift of the tap.</summary>
    public readonly int Row = row;

    /// <summary>Column shift of the tap.</summary>
    public readonly int Column = column;

    /// <summary>Backward data: the element offset of w[k, 0, r, s] (input channel c adds c·R·S); im2col:
    /// zero.</summary>
    public readonly int Filter = filter;
}

/// <summary>One stride phase of the backward-data pass: the input pixels (<see cref="Row"/> + i·<see
/// cref="StrideH"/>, <see cref="Column"/> + j·<see cref="StrideW"/>) for i &lt; <see cref="Rows"/>, j &lt; <see
/// cref="Columns"/> of each image.</summary>
public readonly record struct StridePhase(int Row, int Column, int Rows, int Columns, int StrideH, int StrideW)
{
    /// <summary>The phase's pixels in one image.</summary>
    public int Pixels => Rows * Columns;
}

/// <summary>im2col(x): pixel (n, oh, ow) × tap (c, r, s), zero in the padding; the pixel is the outer index
/// (forward: A; its window located once per thread) or the depth (backward-weight: B; located once per four
/// elements). Quads run along the taps, taken from <paramref name="taps"/>.</summary>
public readonly struct Im2ColLoader<T>(ArrayView<T> x, ArrayView<ConvTap> taps, ConvShape s, bool pixelIsOuter)
    : IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _x = x;
    private readonly ArrayView<ConvTap> _taps = taps;
    private readonly ConvShape _s = s;
    private readonly int _pixelIsOuter = pixelIsOuter ? 1 : 0;

    /// <inheritdoc/>
    public bool QuadAlongDepth => _pixelIsOuter != 0;

    /// <inheritdoc/>
    public OuterOrigin Locate(int outer) => _pixelIsOuter != 0 ? Window(outer) : default;

    /// <inheritdoc/>
    public Quad<T> Load(OuterOrigin origin, int outer, int depth, int outerEnd, int depthEnd)
    {
        if (_pixelIsOuter != 0) return outer < outerEnd ? Gather(origin, depth, depthEnd) : default;
        return depth < depthEnd ? Gather(Window(depth), outer, outerEnd) : default;
    }

    /// <summary>Output pixel (n, oh, ow)'s window: its top-left input element's offset (possibly in the padding),
    /// row and column.</summary>
    private OuterOrigin Window(int pixel)
    {
        int ow = pixel % _s.OW, rest = pixel / _s.OW;
        int oh = rest % _s.OH, image = rest / _s.OH;
        int top = oh * _s.StrideH - _s.PadTop, left = ow * _s.StrideW - _s.PadLeft;
        return new OuterOrigin(image * _s.C * _s.H * _s.W + top * _s.W + left, top, left);
    }

    /// <summary>Taps tap..tap+3 of one window.</summary>
    private Quad<T> Gather(OuterOrigin window, int tap, int tapEnd)
    {
        var quad = default(Quad<T>);
        if (tap < tapEnd) quad.X = Tap(window.Offset, window.Row, window.Column, tap);
        if (tap + 1 < tapEnd) quad.Y = Tap(window.Offset, window.Row, window.Column, tap + 1);
        if (tap + 2 < tapEnd) quad.Z = Tap(window.Offset, window.Row, window.Column, tap + 2);
        if (tap + 3 < tapEnd) quad.W = Tap(window.Offset, window.Row, window.Column, tap + 3);
        return quad;
    }

    private T Tap(int origin, int top, int left, int tap)
    {
        var t = _taps[tap];
        int h = top + t.Row, w = left + t.Column;
        return (uint)h < (uint)_s.H && (uint)w < (uint)_s.W ? _x[origin + t.Offset] : T.Zero;
    }
}

/// <summary>dyᵀ for the weight gradient (A): outer = output channel, depth = output pixel (n, oh, ow) of an NCHW
/// tensor with <paramref name="channels"/> channels; quads run along the pixels and load as one vector when
/// <paramref name="vectorised"/> (the host has checked that planes and the view's start are multiples of 4
/// elements) and the quad is inside the matrix.</summary>
public readonly struct PixelMatrixLoader<T>(ArrayView<T> data, int channels, int pixelsPerImage, bool vectorised)
    : IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly int _channels = channels;
    private readonly int _pixels = pixelsPerImage;
    private readonly int _vectorised = vectorised ? 1 : 0;

    /// <inheritdoc/>
    public bool QuadAlongDepth => true;

    /// <inheritdoc/>
    public OuterOrigin Locate(int outer) => new(outer * _pixels, 0, 0);

    /// <inheritdoc/>
    public Quad<T> Load(OuterOrigin origin, int outer, int depth, int outerEnd, int depthEnd)
    {
        var quad = default(Quad<T>);
        if (outer >= outerEnd) return quad;
        if (_vectorised != 0 && depth + 3 < depthEnd) // a quad never straddles two images here
            return _data.Cast<Quad<T>>()[Index(origin.Offset, depth) >> 2];
        if (depth < depthEnd) quad.X = _data[Index(origin.Offset, depth)];
        if (depth + 1 < depthEnd) quad.Y = _data[Index(origin.Offset, depth + 1)];
        if (depth + 2 < depthEnd) quad.Z = _data[Index(origin.Offset, depth + 2)];
        if (depth + 3 < depthEnd) quad.W = _data[Index(origin.Offset, depth + 3)];
        return quad;
    }

    /// <summary>Element (channel, pixel), the channel's plane starting <paramref name="plane"/> into each image.</summary>
    private int Index(int plane, int pixel)
    {
        int image = pixel / _pixels;
        return image * _channels * _pixels + plane + pixel - image * _pixels;
    }
}

/// <summary>Writes a (pixels × channels) product into an NCHW tensor with the convolution epilogue: + bias[channel]
/// when <paramref name="hasBias"/>, + the residual at the same NCHW index when <paramref name="hasResidual"/>, then
/// ReLU when <paramref name="relu"/> (NaN propagates). Each element is stored once, with its final sum.</summary>
public readonly struct PixelMatrixStore<T>(ArrayView<T> data, ArrayView<T> bias, bool hasBias, int channels,
    int pixelsPerImage, ArrayView<T> residual, bool hasResidual, bool relu)
    : IMatrixStore<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly ArrayView<T> _bias = bias;
    private readonly ArrayView<T> _residual = residual;
    private readonly int _flags = (hasBias ? 1 : 0) | (hasResidual ? 2 : 0) | (relu ? 4 : 0);
    private readonly int _channels = channels;
    private readonly int _pixels = pixelsPerImage;

    /// <summary>A plain store of the product (no epilogue), into <paramref name="data"/>.</summary>
    public static PixelMatrixStore<T> Plain(ArrayView<T> data, int channels, int pixelsPerImage) =>
        new(data, data, hasBias: false, channels, pixelsPerImage, data, hasResidual: false, relu: false);

    /// <inheritdoc/>
    public void Store(int row, int col, T value)
    {
        int image = row / _pixels, within = row - image * _pixels;
        int index = (image * _channels + col) * _pixels + within;
        if ((_flags & 1) != 0) value += _bias[col];
        if ((_flags & 2) != 0) value += _residual[index];
        _data[index] = (_flags & 4) != 0 && value < T.Zero ? T.Zero : value;
    }
}

/// <summary>Writes a (phase pixels × channels) product into its phase's pixels of an NCHW tensor of <paramref
/// name="channels"/> channels and H×W images (no epilogue).</summary>
public readonly struct PhasePixelStore<T>(ArrayView<T> data, int channels, int height, int width, StridePhase phase)
    : IMatrixStore<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly int _channels = channels, _height = height, _width = width;
    private readonly StridePhase _phase = phase;

    /// <inheritdoc/>
    public void Store(int row, int col, T value)
    {
        int j = row % _phase.Columns, rest = row / _phase.Columns;
        int i = rest % _phase.Rows, image = rest / _phase.Rows;
        int h = _phase.Row + i * _phase.StrideH, w = _phase.Column + j * _phase.StrideW;
        _data[((image * _channels + col) * _height + h) * _width + w] = value;
    }
}

/// <summary>Backward-data gather (A) of one stride phase: outer = the phase's input pixel (n, i, j), depth = its
/// taps (k, r, s) → dy at output pixel (i + tap.Row, j + tap.Column) of channel k, or zero outside dy. Quads run
/// along the taps, taken from <paramref name="taps"/> (the phase's slice of the table); the pixel is located once
/// per thread.</summary>
public readonly struct OutputGradientGatherLoader<T>(ArrayView<T> dy, ArrayView<ConvTap> taps, ConvShape s,
    StridePhase phase) : IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _dy = dy;
    private readonly ArrayView<ConvTap> _taps = taps;
    private readonly ConvShape _s = s;
    private readonly StridePhase _phase = phase;

    /// <inheritdoc/>
    public bool QuadAlongDepth => true;

    /// <inheritdoc/>
    public OuterOrigin Locate(int outer)
    {
        int j = outer % _phase.Columns, rest = outer / _phase.Columns;
        int i = rest % _phase.Rows, image = rest / _phase.Rows;
        return new OuterOrigin(image * _s.K * _s.OH * _s.OW, i, j);
    }

    /// <inheritdoc/>
    public Quad<T> Load(OuterOrigin origin, int outer, int depth, int outerEnd, int depthEnd)
    {
        var quad = default(Quad<T>);
        if (outer >= outerEnd) return quad;
        if (depth < depthEnd) quad.X = Tap(origin.Offset, origin.Row, origin.Column, depth);
        if (depth + 1 < depthEnd) quad.Y = Tap(origin.Offset, origin.Row, origin.Column, depth + 1);
        if (depth + 2 < depthEnd) quad.Z = Tap(origin.Offset, origin.Row, origin.Column, depth + 2);
        if (depth + 3 < depthEnd) quad.W = Tap(origin.Offset, origin.Row, origin.Column, depth + 3);
        return quad;
    }

    private T Tap(int origin, int i, int j, int column)
    {
        var t = _taps[column];
        int oh = i + t.Row, ow = j + t.Column;
        return (uint)oh < (uint)_s.OH && (uint)ow < (uint)_s.OW ? _dy[origin + t.Offset + oh * _s.OW + ow] : T.Zero;
    }
}

/// <summary>w [K, C/G, R, S] read as a backward-data phase's B: outer = input channel c, depth = the phase's tap
/// (k, r, s), whose w[k, 0, r, s] the tap table holds. Quads run along the channels (4 loads R·S apart): one table
/// read per four elements.</summary>
public readonly struct WeightByInputChannelLoader<T>(ArrayView<T> w, ArrayView<ConvTap> taps, ConvShape s)
    : IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _w = w;
    private readonly ArrayView<ConvTap> _taps = taps;
    private readonly ConvShape _s = s;

    /// <inheritdoc/>
    public bool QuadAlongDepth => false;

    /// <inheritdoc/>
    public OuterOrigin Locate(int outer) => default;

    /// <inheritdoc/>
    public Quad<T> Load(OuterOrigin origin, int outer, int depth, int outerEnd, int depthEnd)
    {
        var quad = default(Quad<T>);
        if (depth >= depthEnd) return quad;
        int area = _s.R * _s.S, first = _taps[depth].Filter + outer * area;
        if (outer < outerEnd) quad.X = _w[first];
        if (outer + 1 < outerEnd) quad.Y = _w[first + area];
        if (outer + 2 < outerEnd) quad.Z = _w[first + 2 * area];
        if (outer + 3 < outerEnd) quad.W = _w[first + 3 * area];
        return quad;
    }
}

public sealed partial class IlgpuBackend
{
    /// <summary>im2col tap tables by geometry (batch 1: the tables do not depend on the batch), uploaded once per
    /// geometry and kept for the backend's life.</summary>
    private readonly Dictionary<ConvGeometry, MemoryBuffer1D<ConvTap, Stride1D.Dense>> _tapTables = new();

    /// <summary>Backward-data phase plans by geometry, likewise.</summary>
    private readonly Dictionary<ConvGeometry, DataGradientPlan> _dataGradientPlans = new();

    /// <summary>The backward-data passes of one geometry: its stride phases with input pixels, each with its slice
    /// (first entry, entries) of one uploaded table of (k, r, s) taps; <see cref="Uncovered"/> when some phase's
    /// pixels are reached by no tap (their gradient is zero).</summary>
    private sealed record DataGradientPlan(MemoryBuffer1D<ConvTap, Stride1D.Dense> Table,
        (StridePhase Phase, int First, int Entries)[] Phases, bool Uncovered);

    /// <summary>The im2col <see cref="ConvTap"/> table of <paramref name="g"/>: its C/G·R·S taps.</summary>
    private ArrayView<ConvTap> TapTable(ConvGeometry g)
    {
        g = g with { Batch = 1 };
        if (_tapTables.TryGetValue(g, out var table)) return table.View;
        int area = g.KernelHeight * g.KernelWidth;
        var entries = new ConvTap[g.GroupInChannels * area];
        for (int column = 0; column < entries.Length; column++)
        {
            int channel = column / area, row = column % area / g.KernelWidth * g.DilationHeight;
            int col = column % g.KernelWidth * g.DilationWidth;
            entries[column] = new ConvTap((channel * g.InHeight + row) * g.InWidth + col, row, col);
        }
        table = _accelerator.Allocate1D(entries);
        _tapTables[g] = table;
        return table.View;
    }

    /// <summary>The stride phases of <paramref name="g"/>'s backward data (module header): for phase (ph, pw), the
    /// taps with (ph + padTop − r·dh) and (pw + padLeft − s·dw) divisible by the strides, for every filter
    /// k.</summary>
    private DataGradientPlan DataGradientPhases(ConvGeometry g)
    {
        g = g with { Batch = 1 };
        if (_dataGradientPlans.TryGetValue(g, out var plan)) return plan;
        int sh = g.StrideHeight, sw = g.StrideWidth, area = g.KernelHeight * g.KernelWidth;
        var entries = new List<ConvTap>();
        var phases = new List<(StridePhase, int, int)>();
        bool uncovered = false;
        for (int ph = 0; ph < Math.Min(sh, g.InHeight); ph++)
        for (int pw = 0; pw < Math.Min(sw, g.InWidth); pw++)
        {
            var taps = new List<(int R, int S)>();
            for (int r = 0; r < g.KernelHeight; r++)
            for (int s = 0; s < g.KernelWidth; s++)
                if (RowShift(r) % sh == 0 && ColumnShift(s) % sw == 0) taps.Add((r, s));
            if (taps.Count == 0)
            {
                uncovered = true;
                continue;
            }
            int first = entries.Count;
            for (int k = 0; k < g.GroupOutChannels; k++)
                foreach (var (r, s) in taps)
                    entries.Add(new ConvTap(k * g.OutHeight * g.OutWidth, RowShift(r) / sh, ColumnShift(s) / sw,
                        k * g.GroupInChannels * area + r * g.KernelWidth + s));
            var phase = new StridePhase(ph, pw, (g.InHeight - ph + sh - 1) / sh, (g.InWidth - pw + sw - 1) / sw, sh,
                sw);
            phases.Add((phase, first, entries.Count - first));

            int RowShift(int r) => ph + g.PadTop - r * g.DilationHeight;
            int ColumnShift(int s) => pw + g.PadLeft - s * g.DilationWidth;
        }
        if (entries.Count == 0) entries.Add(default); // every input pixel uncovered: a table is never read
        plan = new DataGradientPlan(_accelerator.Allocate1D(entries.ToArray()), [.. phases], uncovered);
        _dataGradientPlans[g] = plan;
        return plan;
    }

    /// <inheritdoc/>
    protected override void Conv2dForwardCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w,
        DeviceBuffer<T>? bias, DeviceBuffer<T> y, DeviceBuffer<T>? residual, bool relu)
    {
        var s = new ConvShape(g);
        var taps = TapTable(g);
        int depth = g.GroupInChannels * g.KernelHeight * g.KernelWidth, pixels = g.OutHeight * g.OutWidth;
        int groupOut = g.GroupOutChannels;
        for (int group = 0; group < g.Groups; group++)
        {
            long groupOffset = (long)group * groupOut * pixels;
            var yGroup = From(View(y), groupOffset);
            long wOffset = (long)group * groupOut * depth;
            LaunchGemm<T, Im2ColLoader<T>, RowMajorLoader<T>, PixelMatrixStore<T>>(
                new Im2ColLoader<T>(From(View(x), (long)group * g.GroupInChannels * g.InHeight * g.InWidth), taps, s,
                    pixelIsOuter: true),
                new RowMajorLoader<T>(From(View(w), wOffset), depth, depthContiguous: true,
                    QuadAligned(wOffset, depth)),
                new PixelMatrixStore<T>(yGroup, bias is null ? yGroup : From(View(bias), (long)group * groupOut),
                    bias is not null, g.OutChannels, pixels,
                    residual is null ? yGroup : From(View(residual), groupOffset), residual is not null, relu),
                g.Batch * pixels, groupOut, depth);
        }
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardDataCore<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w,
        DeviceBuffer<T> dx)
    {
        var s = new ConvShape(g);
        var plan = DataGradientPhases(g);
        if (plan.Uncovered) View(dx).MemSetToZero(_accelerator.DefaultStream);
        int kernelArea = g.KernelHeight * g.KernelWidth, groupIn = g.GroupInChannels, groupOut = g.GroupOutChannels;
        for (int group = 0; group < g.Groups; group++)
        {
            var dyGroup = From(View(dy), (long)group * groupOut * g.OutHeight * g.OutWidth);
            var wGroup = From(View(w), (long)group * groupOut * groupIn * kernelArea);
            var dxGroup = From(View(dx), (long)group * groupIn * g.InHeight * g.InWidth);
            foreach (var (phase, first, entries) in plan.Phases)
            {
                var taps = plan.Table.View.SubView(first, entries);
                LaunchGemm<T, OutputGradientGatherLoader<T>, WeightByInputChannelLoader<T>, PhasePixelStore<T>>(
                    new OutputGradientGatherLoader<T>(dyGroup, taps, s, phase),
                    new WeightByInputChannelLoader<T>(wGroup, taps, s),
                    new PhasePixelStore<T>(dxGroup, g.InChannels, g.InHeight, g.InWidth, phase),
                    g.Batch * phase.Pixels, groupIn, entries);
            }
        }
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardWeightCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy,
        DeviceBuffer<T> dw)
    {
        var s = new ConvShape(g);
        var taps = TapTable(g);
        int depth = g.GroupInChannels * g.KernelHeight * g.KernelWidth, pixels = g.OutHeight * g.OutWidth;
        int groupOut = g.GroupOutChannels;
        for (int group = 0; group < g.Groups; group++)
        {
            long dyOffset = (long)group * groupOut * pixels;
            LaunchGemm<T, PixelMatrixLoader<T>, Im2ColLoader<T>, ScaledRowMajorStore<T>>(
                new PixelMatrixLoader<T>(From(View(dy), dyOffset), g.OutChannels, pixels,
                    QuadAligned(dyOffset, pixels)),
                new Im2ColLoader<T>(From(View(x), (long)group * g.GroupInChannels * g.InHeight * g.InWidth), taps, s,
                    pixelIsOuter: false),
                new ScaledRowMajorStore<T>(From(View(dw), (long)group * groupOut * depth), depth, T.One, T.Zero),
                groupOut, depth, g.Batch * pixels);
        }
    }

    /// <summary>The view from element <paramref name="offset"/> to the end: a group's slice, whose loaders and
    /// stores keep the full tensor's strides (offset 0 is the view itself).</summary>
    private static ArrayView<T> From<T>(ArrayView<T> view, long offset) where T : unmanaged =>
        offset == 0 ? view : view.SubView(offset, view.Length - offset);
}
