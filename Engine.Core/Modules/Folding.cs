// Batch-norm folding for inference (what torch.fx's fuse and torch.ao.quantization.fuse_modules do, and what ONNX
// Runtime and TensorRT do when they load a graph): in eval mode a batch-norm after a convolution is a per-channel
// affine map, so it folds into the convolution's weight and bias,
//   scale[k] = γ[k] / √(var[k] + ε)
//   w'[k, …] = w[k, …] · scale[k]
//   b'[k]    = β[k] − mean[k] · scale[k] (+ the convolution's own bias[k] · scale[k])
// computed in float64 on the host and rounded to T once. What followed the batch-norm (a ReLU, a block's residual
// add and ReLU) becomes the convolution's epilogue (Tensor.Conv2dFused): one pass over the output instead of three.
using System.Numerics;
using Engine.Kernels;

namespace Engine.Core.Modules;

/// <summary>A convolution with a batch-norm folded into its weight and bias, and an epilogue: y = conv(x, w') + b'
/// (+ a residual), then ReLU when <see cref="Relu"/>. Inference only: buffers <c>weight</c> and <c>bias</c> are not
/// learned, and the forward records no backward. Made by <see cref="Fold"/>.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class FusedConv2d<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Conv2dShape _shape;

    private FusedConv2d(Conv2dShape shape, Tensor<T> weight, Tensor<T> bias, bool relu)
    {
        _shape = shape;
        Relu = relu;
        Weight = Buffer("weight", weight);
        Bias = Buffer("bias", bias);
    }

    /// <summary>Folds eval-mode <paramref name="batchNorm"/> (its running statistics, γ, β and ε) into
    /// <paramref name="convolution"/>'s weight and bias, in float64, rounded to <typeparamref name="T"/> once. Both
    /// modules are left untouched; the new module owns copies.</summary>
    /// <param name="convolution">The convolution the batch-norm follows.</param>
    /// <param name="batchNorm">The batch-norm over the convolution's output channels.</param>
    /// <param name="relu">Apply a ReLU in the epilogue (the batch-norm's own fused ReLU, or a block tail's).</param>
    /// <exception cref="ArgumentException">The batch-norm's channels differ from the convolution's output
    /// channels.</exception>
    public static FusedConv2d<T> Fold(Conv2d<T> convolution, BatchNorm2d<T> batchNorm, bool relu)
    {
        if (batchNorm.Channels != convolution.OutChannels)
            throw new ArgumentException($"Folding a batch-norm of {batchNorm.Channels} channels into a convolution " +
                                        $"with {convolution.OutChannels} output channels: they must match.");
        int channels = convolution.OutChannels;
        double[] gamma = ToDouble(batchNorm.Weight), beta = ToDouble(batchNorm.Bias);
        double[] mean = ToDouble(batchNorm.RunningMean), variance = ToDouble(batchNorm.RunningVar);
        double[]? convBias = convolution.Bias is null ? null : ToDouble(convolution.Bias);
        T[] weight = convolution.Weight.ToArray();
        var bias = new T[channels];
        int perFilter = weight.Length / channels;
        for (int k = 0; k < channels; k++)
        {
            double scale = gamma[k] / Math.Sqrt(variance[k] + batchNorm.Epsilon);
            bias[k] = T.CreateTruncating(beta[k] + ((convBias?[k] ?? 0) - mean[k]) * scale);
            for (int i = k * perFilter; i < (k + 1) * perFilter; i++)
                weight[i] = T.CreateTruncating(double.CreateTruncating(weight[i]) * scale);
        }
        var device = convolution.Weight.Device;
        return new FusedConv2d<T>(new Conv2dShape(convolution),
            Tensor.FromArray(weight, convolution.Weight.Shape, device), Tensor.FromArray(bias, [channels], device),
            relu);
    }

    /// <summary>True when the epilogue ends with a ReLU.</summary>
    public bool Relu { get; }

    /// <summary>Buffer <c>weight</c>, the folded filters w' [OutChannels, InChannels/Groups, R, S].</summary>
    public Tensor<T> Weight { get; }

    /// <summary>Buffer <c>bias</c>, the folded bias b' [OutChannels].</summary>
    public Tensor<T> Bias { get; }

    /// <summary>relu?(conv(x, w') + b') for x [N, InChannels, H, W].</summary>
    /// <exception cref="ArgumentException">As <see cref="Conv2d{T}.Forward"/>.</exception>
    /// <exception cref="InvalidOperationException">Grad mode is on and x requires grad.</exception>
    public override Tensor<T> Forward(Tensor<T> x) => Forward(x, null);

    /// <summary>relu?(conv(x, w') + b' + <paramref name="residual"/>): a residual block's tail in the
    /// convolution's epilogue; without a residual, as <see cref="Forward(Tensor{T})"/>.</summary>
    /// <exception cref="ArgumentException">As <see cref="Conv2d{T}.Forward"/>, or the residual's shape is not the
    /// output's.</exception>
    /// <exception cref="InvalidOperationException">Grad mode is on and x or the residual requires grad.</exception>
    public Tensor<T> Forward(Tensor<T> x, Tensor<T>? residual) =>
        x.Conv2dFused(Weight, Bias, residual, Relu, _shape.StrideHeight, _shape.StrideWidth, _shape.PadTop,
            _shape.PadBottom, _shape.PadLeft, _shape.PadRight, _shape.DilationHeight, _shape.DilationWidth,
            _shape.Groups);

    private static double[] ToDouble(Tensor<T> tensor) => [.. tensor.ToArray().Select(double.CreateTruncating)];

    /// <summary>The strides, pads, dilations and groups of the folded convolution.</summary>
    private readonly record struct Conv2dShape(int StrideHeight, int StrideWidth, int PadTop, int PadBottom,
        int PadLeft, int PadRight, int DilationHeight, int DilationWidth, int Groups)
    {
        public Conv2dShape(Conv2d<T> c) : this(c.StrideHeight, c.StrideWidth, c.PadTop, c.PadBottom, c.PadLeft,
            c.PadRight, c.DilationHeight, c.DilationWidth, c.Groups)
        {
        }
    }
}
