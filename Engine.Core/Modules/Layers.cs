// The layers a ResNet is made of, with PyTorch's parameter names and default initialisation choices:
//   Conv2d     weight [K, C, R, S] (+ bias [K]); Kaiming normal, fan-out, gain √2 (torchvision's ResNet init)
//   BatchNorm2d weight (gamma) = 1, bias (beta) = 0, running_mean = 0, running_var = 1; momentum 0.1, eps 1e-5
//   Linear     weight [Out, In], bias [Out]; U(−1/√In, 1/√In) (PyTorch's nn.Linear default)
//   Sequential children named "0", "1", … applied in order
// Initialisation is seeded: every layer draws from its own seed, so a network is reproducible.
using System.Numerics;

namespace Engine.Core.Modules;

public sealed class Conv2d<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
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

    public int InChannels { get; }
    public int OutChannels { get; }
    public int Kernel { get; }
    public int Stride { get; }
    public int Padding { get; }
    public Tensor<T> Weight { get; }
    public Tensor<T>? Bias { get; }

    public override Tensor<T> Forward(Tensor<T> x) => x.Conv2d(Weight, Bias, Stride, Padding);
}

public sealed class BatchNorm2d<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public BatchNorm2d(Device device, int channels, double momentum = 0.1, double epsilon = 1e-5)
    {
        Channels = channels;
        Momentum = momentum;
        Epsilon = epsilon;
        Weight = Parameter("weight", Tensor.Ones<T>([channels], device));
        Bias = Parameter("bias", Tensor.Zeros<T>([channels], device));
        RunningMean = Buffer("running_mean", Tensor.Zeros<T>([channels], device));
        RunningVar = Buffer("running_var", Tensor.Ones<T>([channels], device));
    }

    public int Channels { get; }
    public double Momentum { get; }
    public double Epsilon { get; }
    public Tensor<T> Weight { get; }
    public Tensor<T> Bias { get; }
    public Tensor<T> RunningMean { get; }
    public Tensor<T> RunningVar { get; }

    public override Tensor<T> Forward(Tensor<T> x) => Forward(x, relu: false);

    /// <summary>Batch norm, then ReLU when <paramref name="relu"/> (fused into one pass).</summary>
    public Tensor<T> Forward(Tensor<T> x, bool relu) =>
        x.BatchNorm(Weight, Bias, RunningMean, RunningVar, Training, Momentum, Epsilon, relu);
}

public sealed class Linear<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public Linear(Device device, int inFeatures, int outFeatures, int seed)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        double bound = 1 / Math.Sqrt(inFeatures);
        Weight = Parameter("weight", Tensor.RandomUniform<T>([outFeatures, inFeatures], seed, -bound, bound, device));
        Bias = Parameter("bias", Tensor.RandomUniform<T>([outFeatures], seed + 1, -bound, bound, device));
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Tensor<T> Weight { get; }
    public Tensor<T> Bias { get; }

    public override Tensor<T> Forward(Tensor<T> x) => x.Linear(Weight, Bias);
}

public sealed class Sequential<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Module<T>[] _layers;

    public Sequential(params Module<T>[] layers)
    {
        _layers = layers;
        for (int i = 0; i < layers.Length; i++) Child(i.ToString(), layers[i]);
    }

    public IReadOnlyList<Module<T>> Layers => _layers;

    public override Tensor<T> Forward(Tensor<T> x)
    {
        foreach (var layer in _layers) x = layer.Forward(x);
        return x;
    }
}
