// 2-D convolution with its gradients: x [N, C, H, W], weight [K, C/groups, R, S], optional bias [K] →
// y [N, K, OH, OW]. Zero padding per side (top, bottom, left, right), separate strides, dilation per axis and
// grouped channels (groups = C is depthwise); the common symmetric case has its own overload. Conv2dFused is the
// inference form with the epilogue a folded batch-norm leaves: + bias [+ residual], then ReLU, in the same pass.
using Engine.Core.Autograd;
using Engine.Core.Ops;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>Convolution with a square stride and the same zero padding on every side.</summary>
    public Tensor<T> Conv2d(Tensor<T> weight, Tensor<T>? bias = null, int stride = 1, int padding = 0) =>
        Conv2d(weight, bias, stride, stride, padding, padding, padding, padding);

    /// <summary>Convolution with per-axis strides and per-side zero padding. Backward: dx (backward data), dweight
    /// (backward weight), dbias (sum of dy per output channel).</summary>
    public Tensor<T> Conv2d(Tensor<T> weight, Tensor<T>? bias, int strideHeight, int strideWidth, int padTop,
        int padBottom, int padLeft, int padRight) =>
        Conv2d(weight, bias, strideHeight, strideWidth, padTop, padBottom, padLeft, padRight, 1, 1, 1);

    /// <summary>Convolution with per-axis strides, per-side zero padding, per-axis dilation (tap r reads input row
    /// oh·strideHeight − padTop + r·dilationHeight) and <paramref name="groups"/> channel groups: weight
    /// [K, C/groups, R, S], output channel k convolving only input group k / (K/groups) (torch.nn.Conv2d's and ONNX
    /// Conv's semantics). Backward: dx (backward data), dweight (backward weight), dbias (sum of dy per output
    /// channel).</summary>
    /// <exception cref="ArgumentException">The tensors are not 4-D, the weight's channels are not C/groups, C or K
    /// is not divisible by <paramref name="groups"/>, or the geometry is invalid (see
    /// <see cref="ConvGeometry.Validated"/>); the message names the shapes.</exception>
    public Tensor<T> Conv2d(Tensor<T> weight, Tensor<T>? bias, int strideHeight, int strideWidth, int padTop,
        int padBottom, int padLeft, int padRight, int dilationHeight, int dilationWidth, int groups)
    {
        var x = this;
        var g = ConvGeometryOf(weight, bias, strideHeight, strideWidth, padTop, padBottom, padLeft, padRight,
            dilationHeight, dilationWidth, groups);
        var backend = Device.Backend;
        var y = new Tensor<T>(Device, [g.Batch, g.OutChannels, g.OutHeight, g.OutWidth]);
        backend.Conv2dForward(g, x.Buffer, weight.Buffer, bias?.Buffer, y.Buffer);
        Tensor<T>[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        return Graph.Record(y, "conv2d", inputs, dy =>
        {
            Tensor<T>? dx = null, dw = null, db = null;
            if (x.RequiresGrad)
            {
                dx = new Tensor<T>(dy.Device, x.Shape);
                backend.Conv2dBackwardData(g, dy.Buffer, weight.Buffer, dx.Buffer);
            }
            if (weight.RequiresGrad)
            {
                dw = new Tensor<T>(dy.Device, weight.Shape);
                backend.Conv2dBackwardWeight(g, x.Buffer, dy.Buffer, dw.Buffer);
            }
            if (bias is { RequiresGrad: true })
            {
                db = new Tensor<T>(dy.Device, bias.Shape);
                backend.SumPerChannel(g.Batch, g.OutChannels, g.OutHeight * g.OutWidth, dy.Buffer, db.Buffer);
            }
            return bias is null ? [dx, dw] : [dx, dw, db];
        });
    }

    /// <summary>Inference-mode convolution with its epilogue: conv(x, weight) + bias (when given) +
    /// <paramref name="residual"/> (when given, the output's shape), then ReLU when <paramref name="relu"/> — in one
    /// pass, the form a convolution takes once the batch-norm after it is folded into its weight and bias (see
    /// <c>FusedConv2d</c>). Geometry arguments as <see cref="Conv2d(Tensor{T}, Tensor{T}?, int, int, int, int, int,
    /// int, int, int, int)"/>. Records no backward: it is for inference only.</summary>
    /// <exception cref="ArgumentException">As Conv2d, or the residual differs from the output in shape or
    /// device.</exception>
    /// <exception cref="InvalidOperationException">Grad mode is on and an input requires grad (train the unfused
    /// model instead).</exception>
    public Tensor<T> Conv2dFused(Tensor<T> weight, Tensor<T>? bias, Tensor<T>? residual, bool relu,
        int strideHeight, int strideWidth, int padTop, int padBottom, int padLeft, int padRight, int dilationHeight,
        int dilationWidth, int groups)
    {
        var x = this;
        var g = ConvGeometryOf(weight, bias, strideHeight, strideWidth, padTop, padBottom, padLeft, padRight,
            dilationHeight, dilationWidth, groups);
        Shape outputShape = [g.Batch, g.OutChannels, g.OutHeight, g.OutWidth];
        if (residual is not null)
        {
            if (residual.Shape != outputShape)
                throw new ArgumentException($"conv2d (fused): residual {residual.Shape} must be the output's shape " +
                                            $"{outputShape} (input {x.Shape}, weight {weight.Shape}).");
            Check.SameDevice("conv2d (fused)", x, residual);
        }
        if (GradMode.IsEnabled &&
            (x.RequiresGrad || weight.RequiresGrad || bias is { RequiresGrad: true } ||
             residual is { RequiresGrad: true }))
            throw new InvalidOperationException(
                "conv2d (fused): inference only, it records no backward; an input requires grad. Run it under " +
                "GradMode.NoGrad(), or train the unfused model.");
        var y = new Tensor<T>(Device, outputShape);
        Device.Backend.Conv2dForward(g, x.Buffer, weight.Buffer, bias?.Buffer, y.Buffer, residual?.Buffer, relu);
        return y;
    }

    /// <summary>The validated geometry of this input convolved with <paramref name="weight"/> (and
    /// <paramref name="bias"/>), with the arguments checked as <see cref="Conv2d(Tensor{T}, Tensor{T}?, int, int,
    /// int, int, int, int, int, int, int)"/> documents.</summary>
    private ConvGeometry ConvGeometryOf(Tensor<T> weight, Tensor<T>? bias, int strideHeight, int strideWidth,
        int padTop, int padBottom, int padLeft, int padRight, int dilationHeight, int dilationWidth, int groups)
    {
        var x = this;
        if (x.Rank != 4 || weight.Rank != 4)
            throw new ArgumentException($"conv2d: input {x.Shape} and weight {weight.Shape} must both be 4-D " +
                                        "([N, C, H, W] and [K, C/groups, R, S]).");
        if (groups < 1)
            throw new ArgumentException($"conv2d: groups {groups} must be at least 1 (input {x.Shape}, weight " +
                                        $"{weight.Shape}).");
        if (x.Shape[1] % groups != 0 || weight.Shape[0] % groups != 0)
            throw new ArgumentException($"conv2d: input {x.Shape} has {x.Shape[1]} channels and weight " +
                                        $"{weight.Shape} {weight.Shape[0]} filters; both must be divisible by " +
                                        $"groups {groups}.");
        if ((long)weight.Shape[1] * groups != x.Shape[1])
            throw new ArgumentException(groups == 1
                ? $"conv2d: weight {weight.Shape} expects {weight.Shape[1]} input channels; input {x.Shape} has " +
                  $"{x.Shape[1]}."
                : $"conv2d: weight {weight.Shape} expects {weight.Shape[1]} input channels per group, " +
                  $"{(long)weight.Shape[1] * groups} in all with groups {groups}; input {x.Shape} has {x.Shape[1]}.");
        Check.SameDevice("conv2d", x, weight);
        if (bias is not null)
        {
            if (bias.Shape != new Shape(weight.Shape[0]))
                throw new ArgumentException($"conv2d: bias {bias.Shape} must be [{weight.Shape[0]}].");
            Check.SameDevice("conv2d", x, bias);
        }
        return new ConvGeometry(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], weight.Shape[0], weight.Shape[2],
            weight.Shape[3], strideHeight, strideWidth, padTop, padBottom, padLeft, padRight, dilationHeight,
            dilationWidth, groups).Validated();
    }
}
