// Transposed convolution (torch.nn.ConvTranspose2d, ONNX ConvTranspose) with its gradients, on the convolution
// kernels that exist: a transposed convolution is the backward-data pass of the convolution that maps its output's
// shape back to its input's, so the forward is Conv2dBackwardData, the input's gradient is that convolution's
// forward, and the weight's gradient its backward-weight pass with the roles of input and output exchanged.
using Engine.Core.Autograd;
using Engine.Core.Ops;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>Transposed convolution of this [N, C, H, W] with <paramref name="weight"/> [C, K/groups, R, S]
    /// (torch.nn.ConvTranspose2d's layout): output [N, K, OH, OW], OH = strideHeight·(H − 1) +
    /// outputPaddingHeight + (R − 1)·dilationHeight + 1 − padTop − padBottom (OW likewise); every input element
    /// spreads its weighted kernel over the output at stride steps. Backward: dx (the convolution's forward), dweight,
    /// dbias (sum of dy per output channel).</summary>
    /// <exception cref="ArgumentException">The tensors are not 4-D, the weight does not have C filters or C is not
    /// divisible by <paramref name="groups"/>, an output padding is not smaller than its stride, or the geometry of
    /// the convolution it transposes is invalid (see <see cref="ConvGeometry.Validated"/>).</exception>
    public Tensor<T> ConvTranspose2d(Tensor<T> weight, Tensor<T>? bias, int strideHeight, int strideWidth,
        int padTop, int padBottom, int padLeft, int padRight, int outputPaddingHeight, int outputPaddingWidth,
        int dilationHeight, int dilationWidth, int groups)
    {
        const string op = "conv-transpose2d";
        var x = this;
        if (x.Rank != 4 || weight.Rank != 4)
            throw new ArgumentException($"{op}: input {x.Shape} and weight {weight.Shape} must both be 4-D " +
                                        "([N, C, H, W] and [C, K/groups, R, S]).");
        if (groups < 1 || weight.Shape[0] != x.Shape[1] || x.Shape[1] % groups != 0)
            throw new ArgumentException($"{op}: weight {weight.Shape} must have the input's {x.Shape[1]} channels as " +
                                        $"filters, divisible by groups {groups} (at least 1); input {x.Shape}.");
        if (outputPaddingHeight < 0 || outputPaddingWidth < 0 || outputPaddingHeight >= strideHeight ||
            outputPaddingWidth >= strideWidth)
            throw new ArgumentException($"{op}: output padding {outputPaddingHeight}x{outputPaddingWidth} must be " +
                                        $"non-negative and smaller than the stride {strideHeight}x{strideWidth}.");
        Check.SameDevice(op, x, weight);
        int outChannels = checked(weight.Shape[1] * groups);
        if (bias is not null)
        {
            if (bias.Shape != new Shape(outChannels))
                throw new ArgumentException($"{op}: bias {bias.Shape} must be [{outChannels}].");
            Check.SameDevice(op, x, bias);
        }
        long Extent(int input, int stride, int kernel, int dilation, int before, int after, int extra) =>
            (long)stride * (input - 1) + extra + (long)(kernel - 1) * dilation + 1 - before - after;
        long height = Extent(x.Shape[2], strideHeight, weight.Shape[2], dilationHeight, padTop, padBottom, outputPaddingHeight);
        long width = Extent(x.Shape[3], strideWidth, weight.Shape[3], dilationWidth, padLeft, padRight, outputPaddingWidth);
        if (height < 1 || width < 1 || height > int.MaxValue || width > int.MaxValue)
            throw new ArgumentException($"{op}: input {x.Shape} and weight {weight.Shape} give an output of " +
                                        $"{height}x{width}; it must be at least 1x1 and under 2^31 per side.");
        // The convolution this one transposes: from the output [N, K, OH, OW] back to the input [N, C, H, W].
        var g = new ConvGeometry(x.Shape[0], outChannels, (int)height, (int)width, x.Shape[1], weight.Shape[2],
            weight.Shape[3], strideHeight, strideWidth, padTop, padBottom, padLeft, padRight, dilationHeight,
            dilationWidth, groups).Validated();
        if (g.OutHeight != x.Shape[2] || g.OutWidth != x.Shape[3])
            throw new ArgumentException($"{op}: input {x.Shape} is not what a convolution of the {height}x{width} " +
                                        $"output gives ({g.OutHeight}x{g.OutWidth}) with weight {weight.Shape}.");

        var backend = Device.Backend;
        var y = new Tensor<T>(Device, [g.Batch, outChannels, g.InHeight, g.InWidth]);
        backend.Conv2dBackwardData(g, x.Buffer, weight.Buffer, y.Buffer);
        if (bias is not null) backend.AddPerChannel(g.Batch, outChannels, g.InHeight * g.InWidth, bias.Buffer, y.Buffer);
        Tensor<T>[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        return Graph.Record(y, op, inputs, dy =>
        {
            Tensor<T>? dx = null, dw = null, db = null;
            if (x.RequiresGrad)
            {
                dx = new Tensor<T>(dy.Device, x.Shape);
                backend.Conv2dForward(g, dy.Buffer, weight.Buffer, null, dx.Buffer);
            }
            if (weight.RequiresGrad)
            {
                dw = new Tensor<T>(dy.Device, weight.Shape);
                backend.Conv2dBackwardWeight(g, dy.Buffer, x.Buffer, dw.Buffer);
            }
            if (bias is { RequiresGrad: true })
            {
                db = new Tensor<T>(dy.Device, bias.Shape);
                backend.SumPerChannel(g.Batch, outChannels, g.InHeight * g.InWidth, dy.Buffer, db.Buffer);
            }
            return bias is null ? [dx, dw] : [dx, dw, db];
        });
    }
}
