// The layers a ResNet is made of, with PyTorch's parameter names and default initialisation choices:
//   Conv2d     weight [K, C, R, S] (+ bias [K]); Kaiming normal, fan-out, gain √2 (torchvision's ResNet init)
//   BatchNorm2d weight (gamma) = 1, bias (beta) = 0, running_mean = 0, running_var = 1; momentum 0.1, eps 1e-5;
//              optionally followed by a ReLU fused into the same pass (conv → BN → ReLU, everywhere in a ResNet)
//   MaxPool2d, GlobalAveragePool: no parameters
//   Linear     weight [Out, In], bias [Out]; U(−1/√In, 1/√In) (PyTorch's nn.Linear default)
//   Sequential children named "0", "1", … applied in order
// Initialisation is seeded: every layer draws from its own seed through the engine's version-stable generator
// (Tensor.RandomNormal / RandomUniform), so a network is reproducible across runs, devices and .NET versions.
using System.Numerics;

namespace Engine.Core.Modules;

/// <summary>2-D convolution layer with a square kernel, as torch.nn.Conv2d (groups 1, dilation 1): maps
/// [N, InChannels, H, W] to [N, OutChannels, OH, OW]. Parameters <c>weight</c> [OutChannels, InChannels, Kernel,
/// Kernel] and optional <c>bias</c> [OutChannels].</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class Conv2d<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the layer with seeded initialisation: weight Kaiming normal (fan-out, gain √2, as
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
    public Conv2d(Device device, int inChannels, int outChannels, int kernel, int stride, int padding, bool bias,
        int seed)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        Kernel = kernel;
        Stride = stride;
        Padding = padding;
        double std = Math.Sqrt(2.0 / (outChannels * kernel * kernel));
        Weight = Parameter("weight",
            Tensor.RandomNormal<T>([outChannels, inChannels, kernel, kernel], seed, 0, std, device));
        if (bias)
        {
            double bound = 1 / Math.Sqrt(inChannels * kernel * kernel);
            Bias = Parameter("bias", Tensor.RandomUniform<T>([outChannels], seed + 1, -bound, bound, device));
        }
    }

    /// <summary>Input channels C.</summary>
    public int InChannels { get; }
    /// <summary>Output channels K.</summary>
    public int OutChannels { get; }
    /// <summary>Kernel height and width.</summary>
    public int Kernel { get; }
    /// <summary>Stride along both spatial axes.</summary>
    public int Stride { get; }
    /// <summary>Zero padding on every side.</summary>
    public int Padding { get; }
    /// <summary>Parameter <c>weight</c>, [OutChannels, InChannels, Kernel, Kernel].</summary>
    public Tensor<T> Weight { get; }
    /// <summary>Parameter <c>bias</c>, [OutChannels]; null when created without bias.</summary>
    public Tensor<T>? Bias { get; }

    /// <summary>Convolves <paramref name="x"/> [N, InChannels, H, W] into [N, OutChannels, OH, OW] with
    /// OH = (H + 2·Padding − Kernel) / Stride + 1 (likewise OW); records a backward to x, weight and bias.</summary>
    /// <exception cref="ArgumentException"><paramref name="x"/> is not 4-D, has the wrong channel count, lives on
    /// another device, or is smaller than the kernel after padding.</exception>
    public override Tensor<T> Forward(Tensor<T> x) => x.Conv2d(Weight, Bias, Stride, Padding);
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
    public BatchNorm2d(Device device, int channels, double momentum = 0.1, double epsilon = 1e-5, bool relu = false)
    {
        Channels = channels;
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
    /// <summary>Parameter <c>weight</c> (gamma, the per-channel scale), [C].</summary>
    public Tensor<T> Weight { get; }
    /// <summary>Parameter <c>bias</c> (beta, the per-channel shift), [C].</summary>
    public Tensor<T> Bias { get; }
    /// <summary>Buffer <c>running_mean</c>, [C]: updated in place by every training-mode forward.</summary>
    public Tensor<T> RunningMean { get; }
    /// <summary>Buffer <c>running_var</c>, [C]: the unbiased batch variance, averaged like the mean.</summary>
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
            : x.BatchNorm(Weight, Bias, RunningMean, RunningVar, Training, Momentum, Epsilon, Relu);
}

/// <summary>Max pooling with a square window, as torch.nn.MaxPool2d (ceil_mode false): [N, C, H, W] →
/// [N, C, OH, OW] with OH = (H + 2·Padding − Kernel) / Stride + 1. No parameters.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
/// <param name="kernel">Side of the window.</param>
/// <param name="stride">Step between windows.</param>
/// <param name="padding">Rows and columns added on every side (they never win the maximum).</param>
public sealed class MaxPool2d<T>(int kernel, int stride, int padding) : Module<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Side of the window.</summary>
    public int Kernel { get; } = kernel;
    /// <summary>Step between windows.</summary>
    public int Stride { get; } = stride;
    /// <summary>Rows and columns added on every side.</summary>
    public int Padding { get; } = padding;

    /// <summary>Pools <paramref name="x"/> [N, C, H, W]; records a backward to x.</summary>
    public override Tensor<T> Forward(Tensor<T> x) => x.MaxPool2d(Kernel, Stride, Padding);
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
