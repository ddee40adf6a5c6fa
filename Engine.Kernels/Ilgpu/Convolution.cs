// 2-D convolution as implicit GEMM on the tiled kernel of Gemm.cs: x [N,C,H,W], w [K,C/G,R,S], bias [K],
// y [N,K,OH,OW]. Nothing is materialised: loaders gather matrix elements straight from the NCHW tensors.
//
//   forward          y (P×K)   = im2col(x) (P×CRS)  · wᵀ (CRS×K)        P = N·OH·OW output pixels
//   backward data    dx (Q×C)  = gather(dy) (Q×KRS) · w' (KRS×C)        Q = N·H·W input pixels
//   backward weight  dw (K×CRS) = dyᵀ (K×P)          · im2col(x) (P×CRS)
//
// Rows of the pixel matrices run along the innermost (W) axis, so the GEMM's row-fastest staging reads and its
// stores write consecutive addresses. The backward-data gather maps input pixel (h, w) and tap (r, s) to the
// output pixel ((h + padTop − r·dh)/stride, (w + padLeft − s·dw)/stride) when that division is exact and in range
// (dh, dw the dilations).
//
// Groups: one GEMM per group over views that start at the group's first channel (of x, y, dy, dx and bias) and
// first filter (of w, dw), with C and K above read as C/G and K/G while the tensors keep their full channel
// strides; one group is one GEMM over the whole views. The tap spacing is a type parameter (DenseTaps,
// DilatedTaps), so dilation-1 convolutions run the very kernels they ran before dilation existed.
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

    /// <summary>Input channels of one group, C/G: the second extent of w.</summary>
    public readonly int GroupC = g.GroupInChannels;

    /// <summary>Filter rows R and columns S; output rows OH and columns OW.</summary>
    public readonly int R = g.KernelHeight, S = g.KernelWidth, OH = g.OutHeight, OW = g.OutWidth;

    /// <summary>Strides, and the zero rows above and columns left of the input (the far sides follow from OH and
    /// OW).</summary>
    public readonly int StrideH = g.StrideHeight, StrideW = g.StrideWidth, PadTop = g.PadTop, PadLeft = g.PadLeft;

    /// <summary>Rows and columns between neighbouring filter taps (read only by <see cref="DilatedTaps"/>).</summary>
    public readonly int DilationH = g.DilationHeight, DilationW = g.DilationWidth;
}

/// <summary>Where filter tap r (or s) lands in its window, as a type so that each spacing compiles its own
/// kernel.</summary>
public interface ITapSpacing
{
    /// <summary>The offset of tap <paramref name="tap"/> from the window's first row (or column).</summary>
    int Offset(int tap, int dilation);
}

/// <summary>Neighbouring taps (dilation 1): tap r is r rows in.</summary>
public readonly struct DenseTaps : ITapSpacing
{
    /// <inheritdoc/>
    public int Offset(int tap, int dilation) => tap;
}

/// <summary>Spread taps: tap r is r·dilation rows in.</summary>
public readonly struct DilatedTaps : ITapSpacing
{
    /// <inheritdoc/>
    public int Offset(int tap, int dilation) => tap * dilation;
}

/// <summary>im2col(x): row = output pixel (n, oh, ow), column = tap (c, r, s); zero in the padding.</summary>
public readonly struct Im2ColLoader<T, TTaps>(ArrayView<T> x, ConvShape s) : IMatrixLoader<T>
    where T : unmanaged, IFloatingPointIeee754<T> where TTaps : struct, ITapSpacing
{
    private readonly ArrayView<T> _x = x;
    private readonly ConvShape _s = s;

    /// <inheritdoc/>
    public T Load(int row, int col)
    {
        int ow = row % _s.OW, rest = row / _s.OW;
        int oh = rest % _s.OH, image = rest / _s.OH;
        int q = col % _s.S, taps = col / _s.S;
        int r = taps % _s.R, channel = taps / _s.R;
        int h = oh * _s.StrideH - _s.PadTop + default(TTaps).Offset(r, _s.DilationH);
        int w = ow * _s.StrideW - _s.PadLeft + default(TTaps).Offset(q, _s.DilationW);
        if (h < 0 || h >= _s.H || w < 0 || w >= _s.W) return T.Zero;
        return _x[(((long)image * _s.C + channel) * _s.H + h) * _s.W + w];
    }
}

/// <summary>An NCHW tensor read as a (pixels × channels) matrix, transposed when asked.</summary>
public readonly struct PixelMatrixLoader<T>(ArrayView<T> data, int channels, int pixelsPerImage, bool transposed)
    : IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly int _channels = channels;
    private readonly int _pixels = pixelsPerImage;
    private readonly int _transposed = transposed ? 1 : 0;

    /// <inheritdoc/>
    public T Load(int row, int col)
    {
        int pixel = _transposed != 0 ? col : row, channel = _transposed != 0 ? row : col;
        int image = pixel / _pixels, within = pixel - image * _pixels;
        return _data[((long)image * _channels + channel) * _pixels + within];
    }
}

/// <summary>Writes a (pixels × channels) product into an NCHW tensor, adding bias[channel] when present.</summary>
public readonly struct PixelMatrixStore<T>(ArrayView<T> data, ArrayView<T> bias, bool hasBias, int channels,
    int pixelsPerImage) : IMatrixStore<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly ArrayView<T> _bias = bias;
    private readonly int _hasBias = hasBias ? 1 : 0;
    private readonly int _channels = channels;
    private readonly int _pixels = pixelsPerImage;

    /// <inheritdoc/>
    public void Store(int row, int col, T value)
    {
        int image = row / _pixels, within = row - image * _pixels;
        _data[((long)image * _channels + col) * _pixels + within] = _hasBias != 0 ? value + _bias[col] : value;
    }
}

/// <summary>Backward-data gather: row = input pixel (n, h, w), column = (k, r, s) → dy at the output pixel
/// whose window puts tap (r, s) on (h, w), or zero.</summary>
public readonly struct OutputGradientGatherLoader<T, TTaps>(ArrayView<T> dy, ConvShape s) : IMatrixLoader<T>
    where T : unmanaged, IFloatingPointIeee754<T> where TTaps : struct, ITapSpacing
{
    private readonly ArrayView<T> _dy = dy;
    private readonly ConvShape _s = s;

    /// <inheritdoc/>
    public T Load(int row, int col)
    {
        int w = row % _s.W, rest = row / _s.W;
        int h = rest % _s.H, image = rest / _s.H;
        int q = col % _s.S, taps = col / _s.S;
        int r = taps % _s.R, channel = taps / _s.R;
        int ohScaled = h + _s.PadTop - default(TTaps).Offset(r, _s.DilationH);
        int owScaled = w + _s.PadLeft - default(TTaps).Offset(q, _s.DilationW);
        if (ohScaled < 0 || owScaled < 0) return T.Zero;
        int oh = ohScaled / _s.StrideH, ow = owScaled / _s.StrideW;
        if (oh * _s.StrideH != ohScaled || ow * _s.StrideW != owScaled || oh >= _s.OH || ow >= _s.OW)
            return T.Zero;
        return _dy[(((long)image * _s.K + channel) * _s.OH + oh) * _s.OW + ow];
    }
}

/// <summary>w [K, C/G, R, S] read as a (K·R·S × C/G) matrix: row = (k, r, s), column = c.</summary>
public readonly struct WeightByInputChannelLoader<T>(ArrayView<T> w, ConvShape s) : IMatrixLoader<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _w = w;
    private readonly ConvShape _s = s;

    /// <inheritdoc/>
    public T Load(int row, int col)
    {
        int tap = row % (_s.R * _s.S), channel = row / (_s.R * _s.S);
        return _w[((long)channel * _s.GroupC + col) * _s.R * _s.S + tap];
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    protected override void Conv2dForwardCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w,
        DeviceBuffer<T>? bias,
        DeviceBuffer<T> y)
    {
        if (bias is not null) Validate.Buffer(this, "conv2d forward", nameof(bias), bias, g.OutChannels);
        if (g.DilationHeight == 1 && g.DilationWidth == 1) Forward<T, DenseTaps>(g, x, w, bias, y);
        else Forward<T, DilatedTaps>(g, x, w, bias, y);
    }

    private void Forward<T, TTaps>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w, DeviceBuffer<T>? bias,
        DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> where TTaps : struct, ITapSpacing
    {
        var s = new ConvShape(g);
        int taps = g.GroupInChannels * g.KernelHeight * g.KernelWidth, pixels = g.OutHeight * g.OutWidth;
        int groupOut = g.GroupOutChannels;
        for (int group = 0; group < g.Groups; group++)
        {
            var yGroup = From(View(y), (long)group * groupOut * pixels);
            LaunchGemm<T, Im2ColLoader<T, TTaps>, RowMajorLoader<T>, PixelMatrixStore<T>>(
                new Im2ColLoader<T, TTaps>(From(View(x), (long)group * g.GroupInChannels * g.InHeight * g.InWidth), s),
                new RowMajorLoader<T>(From(View(w), (long)group * groupOut * taps), taps, transposed: true),
                new PixelMatrixStore<T>(yGroup, bias is null ? yGroup : From(View(bias), (long)group * groupOut),
                    bias is not null, g.OutChannels, pixels),
                g.Batch * pixels, groupOut, taps);
        }
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardDataCore<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w,
        DeviceBuffer<T> dx)
    {
        if (g.DilationHeight == 1 && g.DilationWidth == 1) BackwardData<T, DenseTaps>(g, dy, w, dx);
        else BackwardData<T, DilatedTaps>(g, dy, w, dx);
    }

    private void BackwardData<T, TTaps>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w, DeviceBuffer<T> dx)
        where T : unmanaged, IFloatingPointIeee754<T> where TTaps : struct, ITapSpacing
    {
        var s = new ConvShape(g);
        int pixels = g.InHeight * g.InWidth, kernelArea = g.KernelHeight * g.KernelWidth;
        int groupIn = g.GroupInChannels, groupOut = g.GroupOutChannels;
        for (int group = 0; group < g.Groups; group++)
        {
            var dxGroup = From(View(dx), (long)group * groupIn * pixels);
            LaunchGemm<T, OutputGradientGatherLoader<T, TTaps>, WeightByInputChannelLoader<T>, PixelMatrixStore<T>>(
                new OutputGradientGatherLoader<T, TTaps>(
                    From(View(dy), (long)group * groupOut * g.OutHeight * g.OutWidth), s),
                new WeightByInputChannelLoader<T>(From(View(w), (long)group * groupOut * groupIn * kernelArea), s),
                new PixelMatrixStore<T>(dxGroup, dxGroup, hasBias: false, g.InChannels, pixels),
                g.Batch * pixels, groupIn, groupOut * kernelArea);
        }
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardWeightCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy,
        DeviceBuffer<T> dw)
    {
        if (g.DilationHeight == 1 && g.DilationWidth == 1) BackwardWeight<T, DenseTaps>(g, x, dy, dw);
        else BackwardWeight<T, DilatedTaps>(g, x, dy, dw);
    }

    private void BackwardWeight<T, TTaps>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy, DeviceBuffer<T> dw)
        where T : unmanaged, IFloatingPointIeee754<T> where TTaps : struct, ITapSpacing
    {
        var s = new ConvShape(g);
        int taps = g.GroupInChannels * g.KernelHeight * g.KernelWidth, pixels = g.OutHeight * g.OutWidth;
        int groupOut = g.GroupOutChannels;
        for (int group = 0; group < g.Groups; group++)
        {
            LaunchGemm<T, PixelMatrixLoader<T>, Im2ColLoader<T, TTaps>, ScaledRowMajorStore<T>>(
                new PixelMatrixLoader<T>(From(View(dy), (long)group * groupOut * pixels), g.OutChannels, pixels,
                    transposed: true),
                new Im2ColLoader<T, TTaps>(From(View(x), (long)group * g.GroupInChannels * g.InHeight * g.InWidth), s),
                new ScaledRowMajorStore<T>(From(View(dw), (long)group * groupOut * taps), taps, T.One, T.Zero),
                groupOut, taps, g.Batch * pixels);
        }
    }

    /// <summary>The view from element <paramref name="offset"/> to the end: a group's slice, whose loaders and
    /// stores keep the full tensor's strides (offset 0 is the view itself).</summary>
    private static ArrayView<T> From<T>(ArrayView<T> view, long offset) where T : unmanaged =>
        offset == 0 ? view : view.SubView(offset, view.Length - offset);
}
