// The shapes of the structured ops, validated once on the host. All tensors are NCHW, densely packed.
//   conv:     x [N, C, H, W], w [K, C, R, S], bias [K], y [N, K, OH, OW]
//   pool:     x [N, C, H, W], y [N, C, OH, OW]
//   shortcut: x [N, C, H, W], y [N, K, OH, OW] with K ≥ C (option A: subsample by the stride, zero channels)
namespace Engine.Kernels;

/// <summary>A 2-D convolution: zero padding per side (imported models use asymmetric pads).</summary>
public readonly record struct ConvGeometry(
    int Batch, int InChannels, int InHeight, int InWidth,
    int OutChannels, int KernelHeight, int KernelWidth,
    int StrideHeight, int StrideWidth,
    int PadTop, int PadBottom, int PadLeft, int PadRight)
{
    /// <summary>Square kernel, equal strides, the same padding on every side.</summary>
    public static ConvGeometry Square(int batch, int inChannels, int height, int width, int outChannels,
        int kernel, int stride, int padding) =>
        new ConvGeometry(batch, inChannels, height, width, outChannels, kernel, kernel, stride, stride,
            padding, padding, padding, padding).Validated();

    public int OutHeight => (InHeight + PadTop + PadBottom - KernelHeight) / StrideHeight + 1;
    public int OutWidth => (InWidth + PadLeft + PadRight - KernelWidth) / StrideWidth + 1;
    public long InputLength => (long)Batch * InChannels * InHeight * InWidth;
    public long WeightLength => (long)OutChannels * InChannels * KernelHeight * KernelWidth;
    public long OutputLength => (long)Batch * OutChannels * OutHeight * OutWidth;

    /// <summary>Multiply-accumulates of the forward pass.</summary>
    public long Macs => OutputLength * InChannels * KernelHeight * KernelWidth;

    public ConvGeometry Validated()
    {
        if (Batch < 1 || InChannels < 1 || InHeight < 1 || InWidth < 1 || OutChannels < 1 ||
            KernelHeight < 1 || KernelWidth < 1 || StrideHeight < 1 || StrideWidth < 1 ||
            PadTop < 0 || PadBottom < 0 || PadLeft < 0 || PadRight < 0)
            throw new ArgumentException($"conv2d: invalid geometry {this}.");
        if (InHeight + PadTop + PadBottom < KernelHeight || InWidth + PadLeft + PadRight < KernelWidth)
            throw new ArgumentException(
                $"conv2d: kernel {KernelHeight}x{KernelWidth} is larger than the padded input " +
                $"{InHeight + PadTop + PadBottom}x{InWidth + PadLeft + PadRight}.");
        if (OutputLength > int.MaxValue || InputLength > int.MaxValue || WeightLength > int.MaxValue)
            throw new ArgumentException($"conv2d: tensors over 2^31 elements are not supported ({this}).");
        return this;
    }
}

/// <summary>Max pooling with a square window, equal strides and symmetric padding (padding counts as −∞).</summary>
public readonly record struct PoolGeometry(int Batch, int Channels, int InHeight, int InWidth, int Kernel, int Stride,
    int Padding)
{
    public int OutHeight => (InHeight + 2 * Padding - Kernel) / Stride + 1;
    public int OutWidth => (InWidth + 2 * Padding - Kernel) / Stride + 1;
    public long InputLength => (long)Batch * Channels * InHeight * InWidth;
    public long OutputLength => (long)Batch * Channels * OutHeight * OutWidth;

    public PoolGeometry Validated()
    {
        if (Batch < 1 || Channels < 1 || InHeight < 1 || InWidth < 1 || Kernel < 1 || Stride < 1 || Padding < 0)
            throw new ArgumentException($"max-pool: invalid geometry {this}.");
        if (2 * Padding > Kernel)
            throw new ArgumentException($"max-pool: padding {Padding} exceeds half the window {Kernel}.");
        if (InHeight + 2 * Padding < Kernel || InWidth + 2 * Padding < Kernel)
            throw new ArgumentException($"max-pool: window {Kernel} is larger than the padded input ({this}).");
        return this;
    }
}

/// <summary>The paper's option-A shortcut: y[n, k, i, j] = x[n, k − PadFront, i·s, j·s] when that channel exists,
/// else 0.</summary>
public readonly record struct ShortcutGeometry(int Batch, int InChannels, int InHeight, int InWidth,
    int OutChannels, int Stride, int PadFront)
{
    /// <summary>Extra channels split evenly before and after the input's (the common PyTorch CIFAR layout).</summary>
    public static ShortcutGeometry Centered(int batch, int inChannels, int height, int width, int outChannels,
        int stride) =>
        new ShortcutGeometry(batch, inChannels, height, width, outChannels, stride,
            (outChannels - inChannels) / 2).Validated();

    public int OutHeight => (InHeight - 1) / Stride + 1;
    public int OutWidth => (InWidth - 1) / Stride + 1;
    public long InputLength => (long)Batch * InChannels * InHeight * InWidth;
    public long OutputLength => (long)Batch * OutChannels * OutHeight * OutWidth;

    public ShortcutGeometry Validated()
    {
        if (Batch < 1 || InChannels < 1 || InHeight < 1 || InWidth < 1 || Stride < 1 || OutChannels < InChannels ||
            PadFront < 0 || PadFront > OutChannels - InChannels)
            throw new ArgumentException($"shortcut A: invalid geometry {this}.");
        return this;
    }
}

/// <summary>One SGD step's hyper-parameters, with PyTorch's semantics (torch.optim.SGD).</summary>
public readonly record struct SgdParameters(double LearningRate, double Momentum = 0, double Dampening = 0,
    double WeightDecay = 0, bool Nesterov = false)
{
    public SgdParameters Validated()
    {
        if (!(LearningRate >= 0) || !(Momentum >= 0) || !(WeightDecay >= 0) || Dampening < 0)
            throw new ArgumentException($"SGD: invalid hyper-parameters {this}.");
        if (Nesterov && (Momentum <= 0 || Dampening != 0))
            throw new ArgumentException("SGD: Nesterov momentum requires a momentum and zero dampening.");
        return this;
    }
}
