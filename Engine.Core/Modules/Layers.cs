// The layers a ResNet is made of, with PyTorch's parameter names and default initialisation choices:
//   Conv2d     weight [K, C/groups, R, S] (+ bias [K]); Kaiming normal, fan-out, gain √2 (torchvision's ResNet
//              init); strides, dilations per axis, pads per side, channel groups
//   BatchNorm2d weight (gamma) = 1, bias (beta) = 0, running_mean = 0, running_var = 1; momentum 0.1, eps 1e-5;
//              optionally followed by a ReLU fused into the same pass (conv → BN → ReLU, everywhere in a ResNet)
//   MaxPool2d, AvgPool2d, GlobalAveragePool: no parameters
//   Linear     weight [Out, In], bias [Out]; U(−1/√In, 1/√In) (PyTorch's nn.Linear default)
//   Sequential children named "0", "1", … applied in order
// Initialisation is seeded: every layer draws from its own seed through the engine's version-stable generator
// (Tensor.RandomNormal / RandomUniform), so a network is reproducible across runs, devices and .NET versions.
using System.Numerics;
using Engine.Kernels;

namespace Engine.Core.Modules;

/// <summary>2-D convolution layer, as torch.nn.Conv2d: maps [N, InChannels, H, W] to [N, OutChannels, OH, OW].
/// Parameters <c>weight</c> [OutChannels, InChannels/Groups, KernelHeight, KernelWidth] and optional <c>bias</c>
/// [OutChannels]. Strides and dilations per axis, zero padding per side (ONNX Conv's asymmetric pads), and grouped
/// channels (Groups = InChannels is depthwise).</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class Conv2d<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the layer with a square kernel, the same stride and dilation along both axes and the same
    /// padding on every side, with seeded initialisation: weight Kaiming normal (fan-out, gain √2, as
    /// torchvision's ResNet), bias U(−1/√fan-in, 1/√fan-in) from <paramref name="seed"/> + 1.</summary>
    /// <param name="device">Where the parameters live.</param>
    /// <param name="inChannels">Input channels C.</param>
    /// <param name="outChannels">Output channels (filters) K.</param>
    /// <param name="kernel">Kernel height and width.</param>
    /// <param name="stride">Stride along both spatial axes.</param>
    /// <param name="padding">Zero padding on every side.</param>
    /// <param name="bias">Whether to add a learned per-channel bias (ResNet convolutions have none: batch norm
    /// follows).</param>
    /// <param name="seed">Seed of the weight initialisation.</param>
    /// <param name="dilation">Spacing of the kernel's taps along both axes (1: neighbouring pixels).</param>
    /// <param name="groups">Channel groups; C and K must be divisible by it.</param>
    /// <exception cref="ArgumentException">An extent, stride or dilation below 1, a negative padding, or channels
    /// not divisible by <paramref name="groups"/>.</exception>
    public Conv2d(Device device, int inChannels, int outChannels, int kernel, int stride, int padding, bool bias,
        int seed, int dilation = 1, int groups = 1)
        : this(device, inChannels, outChannels, kernel, kernel, stride, stride, padding, padding, padding, padding,
            dilation, dilation, groups, bias, seed)
    {
    }

    /// <summary>Creates the layer with every extent given per axis (and padding per side), as an ONNX Conv node
    /// describes it; initialisation as the square constructor, with fan-in C/Groups·R·S and fan-out K·R·S (as
    /// PyTorch).</summary>
    /// <param name="device">Where the parameters live.</param>
    /// <param name="inChannels">Input channels C.</param>
    /// <param name="outChannels">Output channels (filters) K.</param>
    /// <param name="kernelHeight">Kernel rows R.</param>
    /// <param name="kernelWidth">Kernel columns S.</param>
    /// <param name="strideHeight">Vertical stride.</param>
    /// <param name="strideWidth">Horizontal stride.</param>
    /// <param name="padTop">Zero rows above the input.</param>
    /// <param name="padBottom">Zero rows below the input.</param>
    /// <param name="padLeft">Zero columns left of the input.</param>
    /// <param name="padRight">Zero columns right of the input.</param>
    /// <param name="dilationHeight">Rows between neighbouring kernel taps.</param>
    /// <param name="dilationWidth">Columns between neighbouring kernel taps.</param>
    /// <param name="groups">Channel groups; C and K must be divisible by it.</param>
    /// <param name="bias">Whether to add a learned per-channel bias.</param>
    /// <param name="seed">Seed of the weight initialisation.</param>
    /// <exception cref="ArgumentException">An extent, stride or dilation below 1, a negative padding, or channels
    /// not divisible by <paramref name="groups"/>.</exception>
    public Conv2d(Device device, int inChannels, int outChannels, int kernelHeight, int kernelWidth,
        int strideHeight, int strideWidth, int padTop, int padBottom, int padLeft, int padRight, int dilationHeight,
        int dilationWidth, int groups, bool bias, int seed)
    {
        string layer = $"Conv2d({inChannels}→{outChannels}, kernel {kernelHeight}x{kernelWidth}, stride " +
                       $"{strideHeight}x{strideWidth}, padding ({padTop}, {padBottom}, {padLeft}, {padRight}), " +
                       $"dilation {dilationHeight}x{dilationWidth}, groups {groups})";
        if (inChannels < 1 || outChannels < 1 || kernelHeight < 1 || kernelWidth < 1 || strideHeight < 1 ||
            strideWidth < 1 || dilationHeight < 1 || dilationWidth < 1 || groups < 1)
            throw new ArgumentException($"{layer}: channels, kernel, strides, dilations and groups must be at least 1.");
        if (padTop < 0 || padBottom < 0 || padLeft < 0 || padRight < 0)
            throw new ArgumentException($"{layer}: padding must not be negative.");
        if (inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"{layer}: input and output channels must both be divisible by the groups.");
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelHeight = kernelHeight;
        KernelWidth = kernelWidth;
        StrideHeight = strideHeight;
        StrideWidth = strideWidth;
        PadTop = padTop;
        PadBottom = padBottom;
        PadLeft = padLeft;
        PadRight = padRight;
        DilationHeight = dilationHeight;
        DilationWidth = dilationWidth;
        Groups = groups;
        int kernelArea = kernelHeight * kernelWidth;
        double std = Math.Sqrt(2.0 / (outChannels * kernelArea));
        Weight = Parameter("weight",
            Tensor.RandomNormal<T>([outChannels, inChannels / groups, kernelHeight, kernelWidth], seed, 0, std,
                device));
        if (bias)
        {
            double bound = 1 / Math.Sqrt(inChannels / groups * kernelArea);
            Bias = Parameter("bias", Tensor.RandomUniform<T>([outChannels], seed + 1, -bound, bound, device));
        }
    }

    /// <summary>Input channels C.</summary>
    public int InChannels { get; }
    /// <summary>Output channels K.</summary>
    public int OutChannels { get; }
    /// <summary>Kernel rows R.</summary>
    public int KernelHeight { get; }
    /// <summary>Kernel columns S.</summary>
    public int KernelWidth { get; }
    /// <summary>Vertical stride.</summary>
    public int StrideHeight { get; }
    /// <summary>Horizontal stride.</summary>
    public int StrideWidth { get; }
    /// <summary>Zero rows above the input.</summary>
    public int PadTop { get; }
    /// <summary>Zero rows below the input.</summary>
    public int PadBottom { get; }
    /// <summary>Zero columns left of the input.</summary>
    public int PadLeft { get; }
    /// <summary>Zero columns right of the input.</summary>
    public int PadRight { get; }
    /// <summary>Rows between neighbouring kernel taps (1: dense).</summary>
    public int DilationHeight { get; }
    /// <summary>Columns between neighbouring kernel taps (1: dense).</summary>
    public int DilationWidth { get; }
    /// <summary>Channel groups: output group g reads input group g alone (1: a dense convolution).</summary>
    public int Groups { get; }
    /// <summary>Parameter <c>weight</c>, [OutChannels, InChannels/Groups, KernelHeight, KernelWidth].</summary>
    public Tensor<T> Weight { get; }
    /// <summary>Parameter <c>bias</c>, [OutChannels]; null when created without bias.</summary>
    public Tensor<T>? Bias { get; }

    /// <summary>The convolution's geometry on a batch of <paramref name="batch"/> images of
    /// <paramref name="height"/> × <paramref name="width"/> pixels, validated.</summary>
    /// <exception cref="ArgumentException">The input is empty or smaller than the dilated kernel after
    /// padding.</exception>
    public ConvGeometry Geometry(int batch, int height, int width) =>
        new ConvGeometry(batch, InChannels, height, width, OutChannels, KernelHeight, KernelWidth, StrideHeight,
            StrideWidth, PadTop, PadBottom, PadLeft, PadRight, DilationHeight, DilationWidth, Groups).Validated();

    /// <summary>Convolves <paramref name="x"/> [N, InChannels, H, W] into [N, OutChannels, OH, OW] with
    /// OH = (H + PadTop + PadBottom − ((KernelHeight − 1)·DilationHeight + 1)) / StrideHeight + 1 (likewise OW);
    /// records a backward to x, weight and bias.</summary>
    /// <exception cref="ArgumentException"><paramref name="x"/> is not 4-D, has the wrong channel count, lives on
    /// another device, or is smaller than the dilated kernel after padding.</exception>
    public override Tensor<T> Forward(Tensor<T> x) =>
        x.Conv2d(Weight, Bias, StrideHeight, StrideWidth, PadTop, PadBottom, PadLeft, PadRight, DilationHeight,
            DilationWidth, Groups);
}

/// <summary>Batch normalisation per channel, as torch.nn.BatchNorm2d (affine, tracking running statistics):
/// training mode normalises with the batch's statistics and updates the running ones in place; eval mode uses the
/// running ones. Takes [N, C, H, W] (or any [N, C, …]). Parameters <c>weight</c> (gamma) and <c>bias</c> (beta),
/// buffers <c>running_mean</c> and <c>running_var</c>, all [C]. Created with <c>relu: true</c> it is BN followed by
/// ReLU, fused into one pass (PyTorch's <c>nn.Sequential(BatchNorm2d, ReLU)</c>).</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class BatchNorm2d<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the layer with gamma 1, beta 0, running mean 0 and running variance 1.</summary>
    /// <param name="device">Where the parameters and buffers live.</param>
    /// <param name="channels">Channels C.</param>
    /// <param name="momentum">Weight of the batch statistic in each running-statistic update:
    /// running = (1 − momentum)·running + momentum·batch (PyTorch's convention).</param>
    /// <param name="epsilon">Added to the variance before the square root.</param>
    /// <param name="relu">Apply a ReLU to the output, fused into the same pass.</param>
    /// <param name="varianceUpdate">The batch variance averaged into <c>running_var</c>: PyTorch's unbiased one (the
    /// default) or ONNX's biased one.</param>
    public BatchNorm2d(Device device, int channels, double momentum = 0.1, double epsilon = 1e-5, bool relu = false,
        RunningVarianceUpdate varianceUpdate = RunningVarianceUpdate.Unbiased)
    {
        Channels = channels;
        VarianceUpdate = varianceUpdate;
        Relu = relu;
        Momentum = momentum;
        Epsilon = epsilon;
        Weight = Parameter("weight", Tensor.Ones<T>([channels], device));
        Bias = Parameter("bias", Tensor.Zeros<T>([channels], device));
        RunningMean = Buffer("running_mean", Tensor.Zeros<T>([channels], device));
        RunningVar = Buffer("running_var", Tensor.Ones<T>([channels], device));
    }

    /// <summary>Channels C.</summary>
    public int Channels { get; }
    /// <summary>Weight of the batch statistic in each running-statistic update.</summary>
    public double Momentum { get; }
    /// <summary>Added to the variance before the square root.</summary>
    public double Epsilon { get; }
    /// <summary>True when a ReLU follows the normalisation, fused into the same pass.</summary>
    public bool Relu { get; }
    /// <summary>The batch variance each training-mode forward averages into <see cref="RunningVar"/>.</summary>
    public RunningVarianceUpdate VarianceUpdate { get; }
    /// <summary>Parameter <c>weight</c> (gamma, the per-channel scale), [C].</summary>
    public Tensor<T> Weight { get; }
    /// <summary>Parameter <c>bias</c> (beta, the per-channel shift), [C].</summary>
    public Tensor<T> Bias { get; }
    /// <summary>Buffer <c>running_mean</c>, [C]: updated in place by every training-mode forward.</summary>
    public Tensor<T> RunningMean { get; }
    /// <summary>Buffer <c>running_var</c>, [C]: the batch variance (unbiased unless <see cref="VarianceUpdate"/> says
    /// biased), averaged like the mean.</summary>
    public Tensor<T> RunningVar { get; }
    /// <summary>When set (data-parallel training), training-mode statistics are those of every rank's batch
    /// together (<see cref="Distributed.SyncBatchNorm"/>); null (default): this process's batch alone.</summary>
    public Distributed.ICommunicator? SyncStatistics { get; set; }

    /// <summary>Normalises <paramref name="x"/> [N, C, …] (same shape out) in the module's mode, then applies the
    /// ReLU when <see cref="Relu"/>; records a backward to x, gamma and beta (none to the running
    /// statistics).</summary>
    /// <exception cref="ArgumentException"><paramref name="x"/> has fewer than 2 dimensions, another channel count
    /// or device, or (in training) only one value per channel.</exception>
    public override Tensor<T> Forward(Tensor<T> x) =>
        Training && SyncStatistics is { } communicator
            ? Distributed.SyncBatchNorm.Forward(communicator, x, Weight, Bias, RunningMean, RunningVar, Momentum, Epsilon, Relu)
            : x.BatchNorm(Weight, Bias, RunningMean, RunningVar, Training, Momentum, Epsilon, Relu, VarianceUpdate);

    /// <summary>relu(bn(<paramref name="x"/>) + <paramref name="residual"/>): the tail of a residual block
    /// (torchvision's <c>out = bn(out); out += identity; out = relu(out)</c>) in one pass each way, whatever
    /// <see cref="Relu"/> says; relu(bn(x)) when <paramref name="residual"/> is null (a plain block's tail). Records
    /// a backward to x, gamma, beta and the residual. With <see cref="SyncStatistics"/> in training, the
    /// synchronised batch-norm, the add and the ReLU run one after the other.</summary>
    /// <exception cref="ArgumentException">As <see cref="Forward"/>, or <paramref name="residual"/> differs from x in
    /// shape or device.</exception>
    public Tensor<T> ForwardAddRelu(Tensor<T> x, Tensor<T>? residual)
    {
        if (Training && SyncStatistics is { } communicator)
        {
            var normalized = Distributed.SyncBatchNorm.Forward(communicator, x, Weight, Bias, RunningMean, RunningVar,
                Momentum, Epsilon);
            return (residual is null ? normalized : normalized + residual).Relu();
        }
        return x.BatchNorm(Weight, Bias, RunningMean, RunningVar, Training, Momentum, Epsilon, relu: true,
            VarianceUpdate, residual);
    }
}

/// <summary>What max and average pooling share: the window geometry of torch.nn.MaxPool2d / AvgPool2d and ONNX
/// MaxPool / AveragePool, exposed for exporters. No parameters.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public abstract class Pool2d<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Stores the window; the op validates it against each input.</summary>
    private protected Pool2d(int kernelHeight, int kernelWidth, int strideHeight, int strideWidth, int padTop,
        int padBottom, int padLeft, int padRight, int dilationHeight, int dilationWidth, bool ceilMode)
    {
        (KernelHeight, KernelWidth, StrideHeight, StrideWidth) = (kernelHeight, kernelWidth, strideHeight, strideWidth);
        (PadTop, PadBottom, PadLeft, PadRight) = (padTop, padBottom, padLeft, padRight);
        (DilationHeight, DilationWidth, CeilMode) = (dilationHeight, dilationWidth, ceilMode);
    }

    /// <summary>Rows of the window.</summary>
    public int KernelHeight { get; }
    /// <summary>Columns of the window.</summary>
    public int KernelWidth { get; }
    /// <summary>Vertical step between windows.</summary>
    public int StrideHeight { get; }
    /// <summary>Horizontal step between windows.</summary>
    public int StrideWidth { get; }
    /// <summary>Rows added above the input.</summary>
    public int PadTop { get; }
    /// <summary>Rows added below the input.</summary>
    public int PadBottom { get; }
    /// <summary>Columns added left of the input.</summary>
    public int PadLeft { get; }
    /// <summary>Columns added right of the input.</summary>
    public int PadRight { get; }
    /// <summary>Step between the window's rows (1: adjacent).</summary>
    public int DilationHeight { get; }
    /// <summary>Step between the window's columns.</summary>
    public int DilationWidth { get; }
    /// <summary>Output extents rounded up (PyTorch's ceil_mode, ONNX's ceil_mode = 1).</summary>
    public bool CeilMode { get; }

    /// <summary>The window applied to an input [batch, channels, height, width] (not validated).</summary>
    public PoolGeometry Geometry(int batch, int channels, int height, int width) =>
        new(batch, channels, height, width, KernelHeight, KernelWidth, StrideHeight, StrideWidth, PadTop, PadBottom,
            PadLeft, PadRight, DilationHeight, DilationWidth, CeilMode);
}

/// <summary>Max pooling, as torch.nn.MaxPool2d and ONNX MaxPool: [N, C, H, W] → [N, C, OH, OW]; padding counts as
/// −∞, a NaN wins its window, ties go to the first element. No parameters.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class MaxPool2d<T> : Pool2d<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Square window, equal strides, the same padding on every side (ResNet's stem: 3, 2, 1).</summary>
    /// <param name="kernel">Side of the window.</param>
    /// <param name="stride">Step between windows.</param>
    /// <param name="padding">Rows and columns added on every side (they never win the maximum).</param>
    public MaxPool2d(int kernel, int stride, int padding)
        : this(kernel, kernel, stride, stride, padding, padding, padding, padding)
    {
    }

    /// <summary>The general window; see <see cref="Pool2d{T}"/>'s properties.</summary>
    public MaxPool2d(int kernelHeight, int kernelWidth, int strideHeight, int strideWidth, int padTop, int padBottom,
        int padLeft, int padRight, int dilationHeight = 1, int dilationWidth = 1, bool ceilMode = false)
        : base(kernelHeight, kernelWidth, strideHeight, strideWidth, padTop, padBottom, padLeft, padRight,
            dilationHeight, dilationWidth, ceilMode)
    {
    }

    /// <summary>Pools <paramref name="x"/> [N, C, H, W]; records a backward to x.</summary>
    public override Tensor<T> Forward(Tensor<T> x) =>
        x.MaxPool2d(KernelHeight, KernelWidth, StrideHeight, StrideWidth, PadTop, PadBottom, PadLeft, PadRight,
            DilationHeight, DilationWidth, CeilMode);
}

/// <summary>Average pooling, as torch.nn.AvgPool2d (and ONNX AveragePool without dilation): [N, C, H, W] →
/// [N, C, OH, OW]; see <see cref="Tensor{T}.AvgPool2d(int, int, int, int, int, int, int, int, bool, bool)"/> for the
/// divisor. No parameters.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class AvgPool2d<T> : Pool2d<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Square window, equal strides, the same padding on every side.</summary>
    /// <param name="kernel">Side of the window.</param>
    /// <param name="stride">Step between windows.</param>
    /// <param name="padding">Rows and columns of zeros added on every side.</param>
    /// <param name="ceilMode">Output extents rounded up.</param>
    /// <param name="countIncludePad">Whether the divisor counts padding cells (PyTorch's default).</param>
    public AvgPool2d(int kernel, int stride, int padding = 0, bool ceilMode = false, bool countIncludePad = true)
        : this(kernel, kernel, stride, stride, padding, padding, padding, padding, ceilMode, countIncludePad)
    {
    }

    /// <summary>The general window (no dilation); see <see cref="Pool2d{T}"/>'s properties.</summary>
    public AvgPool2d(int kernelHeight, int kernelWidth, int strideHeight, int strideWidth, int padTop, int padBottom,
        int padLeft, int padRight, bool ceilMode = false, bool countIncludePad = true)
        : base(kernelHeight, kernelWidth, strideHeight, strideWidth, padTop, padBottom, padLeft, padRight, 1, 1,
            ceilMode)
    {
        CountIncludePad = countIncludePad;
    }

    /// <summary>Whether the divisor counts the window's padding cells (PyTorch's count_include_pad, ONNX's
    /// count_include_pad = 1).</summary>
    public bool CountIncludePad { get; }

    /// <summary>Pools <paramref name="x"/> [N, C, H, W]; records a backward to x.</summary>
    public override Tensor<T> Forward(Tensor<T> x) =>
        x.AvgPool2d(KernelHeight, KernelWidth, StrideHeight, StrideWidth, PadTop, PadBottom, PadLeft, PadRight,
            CeilMode, CountIncludePad);
}

/// <summary>Mean over the spatial axes, as torch.nn.AdaptiveAvgPool2d(1) followed by flatten: [N, C, H, W] →
/// [N, C]. No parameters.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class GlobalAveragePool<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Averages <paramref name="x"/> [N, C, H, W] into [N, C]; records a backward to x.</summary>
    public override Tensor<T> Forward(Tensor<T> x) => x.GlobalAveragePool();
}

/// <summary>Fully connected layer y = x·Wᵀ + b, as torch.nn.Linear: maps [N, InFeatures] to [N, OutFeatures].
/// Parameters <c>weight</c> [OutFeatures, InFeatures] and <c>bias</c> [OutFeatures].</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class Linear<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the layer with PyTorch's default initialisation, weight and bias
    /// U(−1/√InFeatures, 1/√InFeatures), seeded by <paramref name="seed"/> (weight) and
    /// <paramref name="seed"/> + 1 (bias).</summary>
    /// <param name="device">Where the parameters live.</param>
    /// <param name="inFeatures">Input features per sample.</param>
    /// <param name="outFeatures">Output features per sample.</param>
    /// <param name="seed">Seed of the initialisation.</param>
    public Linear(Device device, int inFeatures, int outFeatures, int seed)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        double bound = 1 / Math.Sqrt(inFeatures);
        Weight = Parameter("weight", Tensor.RandomUniform<T>([outFeatures, inFeatures], seed, -bound, bound, device));
        Bias = Parameter("bias", Tensor.RandomUniform<T>([outFeatures], seed + 1, -bound, bound, device));
    }

    /// <summary>Input features per sample.</summary>
    public int InFeatures { get; }
    /// <summary>Output features per sample.</summary>
    public int OutFeatures { get; }
    /// <summary>Parameter <c>weight</c>, [OutFeatures, InFeatures].</summary>
    public Tensor<T> Weight { get; }
    /// <summary>Parameter <c>bias</c>, [OutFeatures].</summary>
    public Tensor<T> Bias { get; }

    /// <summary>Maps <paramref name="x"/> [N, InFeatures] to [N, OutFeatures]; records a backward to x, weight and
    /// bias.</summary>
    /// <exception cref="ArgumentException"><paramref name="x"/> is not [N, InFeatures] or lives on another
    /// device.</exception>
    public override Tensor<T> Forward(Tensor<T> x) => x.Linear(Weight, Bias);
}

/// <summary>Layers applied in order, as torch.nn.Sequential; the children are named <c>0</c>, <c>1</c>, … so
/// that their entries read <c>0.weight</c>, <c>1.running_mean</c>.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class Sequential<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Module<T>[] _layers;

    /// <summary>Registers <paramref name="layers"/> as children <c>0</c>, <c>1</c>, … (disposed with this
    /// module).</summary>
    public Sequential(params Module<T>[] layers)
    {
        _layers = layers;
        for (int i = 0; i < layers.Length; i++) Child(i.ToString(), layers[i]);
    }

    /// <summary>The layers, in the order they are applied.</summary>
    public IReadOnlyList<Module<T>> Layers => _layers;

    /// <summary>Feeds <paramref name="x"/> through each layer in turn and returns the last output.</summary>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        foreach (var layer in _layers) x = layer.Forward(x);
        return x;
    }
}
