// 2-D convolution as implicit GEMM on the tiled kernel of Gemm.cs: x [N,C,H,W], w [K,C,R,S], bias [K],
// y [N,K,OH,OW]. Nothing is materialised: loaders gather matrix elements straight from the NCHW tensors.
//
//   forward          y (P×K)   = im2col(x) (P×CRS)  · wᵀ (CRS×K)        P = N·OH·OW output pixels
//   backward data    dx (Q×C)  = gather(dy) (Q×KRS) · w' (KRS×C)        Q = N·H·W input pixels
//   backward weight  dw (K×CRS) = dyᵀ (K×P)          · im2col(x) (P×CRS)
//
// Rows of the pixel matrices run along the innermost (W) axis, so the GEMM's row-fastest staging reads and its
// stores write consecutive addresses. The backward-data gather maps input pixel (h, w) and tap (r, s) to the
// output pixel ((h + padTop − r)/stride, (w + padLeft − s)/stride) when that division is exact and in range.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>The integer shape a convolution's loaders need (ConvGeometry flattened for kernels).</summary>
public readonly struct ConvShape(ConvGeometry g)
{
    /// <summary>Input channels C, rows H and columns W; output channels K.</summary>
    public readonly int C = g.InChannels, H = g.InHeight, W = g.InWidth, K = g.OutChannels;

    /// <summary>Filter rows R and columns S; output rows OH and columns OW.</summary>
    public readonly int R = g.KernelHeight, S = g.KernelWidth, OH = g.OutHeight, OW = g.OutWidth;

    /// <summary>Strides, and the zero rows above and columns left of the input (the far sides follow from OH and
    /// OW).</summary>
    public readonly int StrideH = g.StrideHeight, StrideW = g.StrideWidth, PadTop = g.PadTop, PadLeft = g.PadLeft;
}

/// <summary>im2col(x): row = output pixel (n, oh, ow), column = tap (c, r, s); zero in the padding.</summary>
public readonly struct Im2ColLoader<T>(ArrayView<T> x, ConvShape s) : IMatrixLoader<T>
    where T : unmanaged, IFloatingPointIeee754<T>
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
        int h = oh * _s.StrideH - _s.PadTop + r, w = ow * _s.StrideW - _s.PadLeft + q;
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
public readonly struct OutputGradientGatherLoader<T>(ArrayView<T> dy, ConvShape s) : IMatrixLoader<T>
    where T : unmanaged, IFloatingPointIeee754<T>
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
        int ohScaled = h + _s.PadTop - r, owScaled = w + _s.PadLeft - q;
        if (ohScaled < 0 || owScaled < 0) return T.Zero;
        int oh = ohScaled / _s.StrideH, ow = owScaled / _s.StrideW;
        if (oh * _s.StrideH != ohScaled || ow * _s.StrideW != owScaled || oh >= _s.OH || ow >= _s.OW)
            return T.Zero;
        return _dy[(((long)image * _s.K + channel) * _s.OH + oh) * _s.OW + ow];
    }
}

/// <summary>w [K, C, R, S] read as a (K·R·S × C) matrix: row = (k, r, s), column = c.</summary>
public readonly struct WeightByInputChannelLoader<T>(ArrayView<T> w, ConvShape s) : IMatrixLoader<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _w = w;
    private readonly ConvShape _s = s;

    /// <inheritdoc/>
    public T Load(int row, int col)
    {
        int tap = row % (_s.R * _s.S), channel = row / (_s.R * _s.S);
        return _w[((long)channel * _s.C + col) * _s.R * _s.S + tap];
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
        var s = new ConvShape(g);
        int taps = g.InChannels * g.KernelHeight * g.KernelWidth, pixels = g.OutHeight * g.OutWidth;
        LaunchGemm<T, Im2ColLoader<T>, RowMajorLoader<T>, PixelMatrixStore<T>>(
            new Im2ColLoader<T>(View(x), s),
            new RowMajorLoader<T>(View(w), taps, transposed: true),
            new PixelMatrixStore<T>(View(y), bias is null ? View(y) : View(bias), bias is not null, g.OutChannels,
                pixels),
            g.Batch * pixels, g.OutChannels, taps);
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardDataCore<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w,
        DeviceBuffer<T> dx)
    {
        var s = new ConvShape(g);
        int pixels = g.InHeight * g.InWidth;
        LaunchGemm<T, OutputGradientGatherLoader<T>, WeightByInputChannelLoader<T>, PixelMatrixStore<T>>(
            new OutputGradientGatherLoader<T>(View(dy), s),
            new WeightByInputChannelLoader<T>(View(w), s),
            new PixelMatrixStore<T>(View(dx), View(dx), hasBias: false, g.InChannels, pixels),
            g.Batch * pixels, g.InChannels, g.OutChannels * g.KernelHeight * g.KernelWidth);
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardWeightCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy,
        DeviceBuffer<T> dw)
    {
        var s = new ConvShape(g);
        int taps = g.InChannels * g.KernelHeight * g.KernelWidth, pixels = g.OutHeight * g.OutWidth;
        LaunchGemm<T, PixelMatrixLoader<T>, Im2ColLoader<T>, ScaledRowMajorStore<T>>(
            new PixelMatrixLoader<T>(View(dy), g.OutChannels, pixels, transposed: true),
            new Im2ColLoader<T>(View(x), s),
            new ScaledRowMajorStore<T>(View(dw), taps, T.One, T.Zero),
            g.OutChannels, taps, g.Batch * pixels);
    }
}
