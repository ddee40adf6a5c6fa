// The paper's networks, with torchvision's parameter names.
//   CIFAR (sec. 4.2): 3x3 conv 16 → BN → ReLU → 3 stages of n blocks (16, 32, 64 channels; stride 1, 2, 2) →
//     global average pool → fc 64 → 10. 6n + 2 layers: 20, 32, 44, 56, 110, 1202. Input 3x32x32.
//   ImageNet (table 1): 7x7/2 conv 64 → BN → ReLU → 3x3/2 max-pool → 4 stages (64, 128, 256, 512 planes;
//     stride 1, 2, 2, 2) → global average pool → fc → 1000. 18/34 basic blocks, 50/101/152 bottlenecks.
//     Input 3x224x224.
// Init: Kaiming normal (fan-out) for convs, BN gamma 1 / beta 0, and optionally each block's last BN gamma 0
// ("zero-init residual", Goyal et al.), which makes every residual block start as the identity.
using System.Numerics;
using Engine.Core;
using Engine.Core.Modules;

namespace Engine.Models;

public enum ResNetFamily
{
    Cifar,
    ImageNet,
}

/// <summary>What a model name denotes: family, depth and shortcut option (None for a plain net).</summary>
public sealed record ResNetSpec(ResNetFamily Family, int Depth, ShortcutOption Option)
{
    public bool Bottleneck => Family == ResNetFamily.ImageNet && Depth >= 50;

    /// <summary>Blocks per stage.</summary>
    public int[] StageBlocks => Family == ResNetFamily.Cifar
        ? Enumerable.Repeat((Depth - 2) / 6, 3).ToArray()
        : Depth switch
        {
            18 => [2, 2, 2, 2],
            34 or 50 => [3, 4, 6, 3],
            101 => [3, 4, 23, 3],
            152 => [3, 8, 36, 3],
            _ => throw new ArgumentException($"No ImageNet ResNet of depth {Depth}."),
        };

    public int[] StagePlanes => Family == ResNetFamily.Cifar ? [16, 32, 64] : [64, 128, 256, 512];

    public int InputSize => Family == ResNetFamily.Cifar ? 32 : 224;

    public int DefaultClasses => Family == ResNetFamily.Cifar ? 10 : 1000;

    /// <summary>The canonical name: resnet20-a, plain56, resnet50-b.</summary>
    public string Name => Option == ShortcutOption.None
        ? $"plain{Depth}"
        : $"resnet{Depth}-{Option.ToString().ToLowerInvariant()}";
}

public sealed class ResNet<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public ResNet(ResNetSpec spec, Device device, int seed = 0, int? classes = null, bool zeroInitResidual = false,
        int inputChannels = 3)
    {
        Spec = spec;
        InputChannels = inputChannels;
        Classes = classes ?? spec.DefaultClasses;
        var seeds = new SeedSequence(seed);
        bool cifar = spec.Family == ResNetFamily.Cifar;
        int stem = spec.StagePlanes[0];
        Conv1 = Child("conv1", cifar
            ? new Conv2d<T>(device, inputChannels, stem, 3, 1, 1, bias: false, seeds.Next())
            : new Conv2d<T>(device, inputChannels, stem, 7, 2, 3, bias: false, seeds.Next()));
        Bn1 = Child("bn1", new BatchNorm2d<T>(device, stem));
        int channels = stem;
        var stages = new List<Sequential<T>>();
        for (int s = 0; s < spec.StagePlanes.Length; s++)
        {
            var blocks = new List<Module<T>>();
            for (int b = 0; b < spec.StageBlocks[s]; b++)
            {
                int stride = b == 0 && s > 0 ? 2 : 1;
                ResidualBlock<T> block = spec.Bottleneck
                    ? new Bottleneck<T>(device, channels, spec.StagePlanes[s], stride, spec.Option, seeds)
                    : new BasicBlock<T>(device, channels, spec.StagePlanes[s], stride, spec.Option, seeds);
                if (zeroInitResidual)
                    using (Core.Autograd.GradMode.NoGrad()) block.LastBatchNorm.Weight.Fill(T.Zero);
                channels = block.OutChannels;
                blocks.Add(block);
            }
            stages.Add(Child($"layer{s + 1}", new Sequential<T>([.. blocks])));
        }
        Stages = stages;
        Fc = Child("fc", new Linear<T>(device, channels, Classes, seeds.Next()));
    }

    public ResNetSpec Spec { get; }
    public int Classes { get; }
    public int InputChannels { get; }
    public Conv2d<T> Conv1 { get; }
    public BatchNorm2d<T> Bn1 { get; }
    public IReadOnlyList<Sequential<T>> Stages { get; }
    public Linear<T> Fc { get; }

    public IEnumerable<ResidualBlock<T>> Blocks => Stages.SelectMany(s => s.Layers.Cast<ResidualBlock<T>>());

    /// <summary>x [N, InputChannels, H, W] → logits [N, classes].</summary>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        var h = Bn1.Forward(Conv1.Forward(x), relu: true);
        if (Spec.Family == ResNetFamily.ImageNet) h = h.MaxPool2d(3, 2, 1);
        foreach (var stage in Stages) h = stage.Forward(h);
        return Fc.Forward(h.GlobalAveragePool());
    }
}
