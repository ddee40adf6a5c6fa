// The paper's networks, with torchvision's parameter names.
//   CIFAR (sec. 4.2): 3x3 conv 16 → BN → ReLU → 3 stages of n blocks (16, 32, 64 channels; stride 1, 2, 2) →
//     global average pool → fc 64 → 10. 6n + 2 layers: 20, 32, 44, 56, 110, 1202. Input 3x32x32.
//   ImageNet (table 1): 7x7/2 conv 64 → BN → ReLU → 3x3/2 max-pool → 4 stages (64, 128, 256, 512 planes;
//     stride 1, 2, 2, 2) → global average pool → fc → 1000. 18/34 basic blocks, 50/101/152 bottlenecks.
//     Input 3x224x224.
// The forward pass applies the network's children in order (conv1, bn1 with its ReLU, maxpool, layer1 …, avgpool,
// fc), so the layers as built are the one description of the architecture (the cost counter walks the same tree).
// Init: Kaiming normal (fan-out) for convs, BN gamma 1 / beta 0, and optionally each block's last BN gamma 0
// ("zero-init residual", Goyal et al.), which makes every residual block start as the identity.
using System.Numerics;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Core.Onnx;

namespace Engine.Models;

/// <summary>The paper's two network families.</summary>
public enum ResNetFamily
{
    /// <summary>CIFAR-10 nets (sec. 4.2): 3x32x32 inputs, a 3x3 stem, 3 stages of 16/32/64 channels, basic
    /// blocks.</summary>
    Cifar,

    /// <summary>ImageNet nets (table 1): 3x224x224 inputs, a 7x7/2 stem and max-pool, 4 stages; bottleneck blocks
    /// from depth 50.</summary>
    ImageNet,
}

/// <summary>What a model name denotes: family, depth and shortcut option (None for a plain net).</summary>
/// <param name="Family">CIFAR or ImageNet.</param>
/// <param name="Depth">Weighted layers: 6n + 2 for CIFAR (20 … 1202), 18/34/50/101/152 for ImageNet.</param>
/// <param name="Option">The shortcut option of every block; None for a plain net.</param>
public sealed record ResNetSpec(ResNetFamily Family, int Depth, ShortcutOption Option)
{
    /// <summary>True for a plain network (no shortcuts, the paper's "plain" baselines).</summary>
    public bool IsPlain => Option == ShortcutOption.None;

    /// <summary>True for ImageNet nets of depth 50 and more (bottleneck blocks), false for basic blocks.</summary>
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

    /// <summary>Planes (block width) of each stage: 16, 32, 64 (CIFAR) or 64, 128, 256, 512 (ImageNet).</summary>
    public int[] StagePlanes => Family == ResNetFamily.Cifar ? [16, 32, 64] : [64, 128, 256, 512];

    /// <summary>Side of the square input images: 32 (CIFAR) or 224 (ImageNet).</summary>
    public int InputSize => Family == ResNetFamily.Cifar ? 32 : 224;

    /// <summary>Classes when none are given: 10 (CIFAR-10) or 1000 (ImageNet).</summary>
    public int DefaultClasses => Family == ResNetFamily.Cifar ? 10 : 1000;

    /// <summary>The canonical name: resnet20-a, plain56, resnet50-b.</summary>
    public string Name => IsPlain
        ? $"plain{Depth}"
        : $"resnet{Depth}-{Option.ToString().ToLowerInvariant()}";
}

/// <summary>A ResNet or plain network of the paper with torchvision's parameter names (conv1, bn1, layer1.0.conv1, …,
/// fc); the ImageNet nets match torchvision.models.resnet18 … resnet152.</summary>
public sealed class ResNet<T> : Module<T>, IOnnxExportable<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Builds and initialises the network: Kaiming normal (fan-out) convolutions, BN gamma 1 and
    /// beta 0.</summary>
    /// <param name="spec">Family, depth and shortcut option.</param>
    /// <param name="device">Where the parameters live.</param>
    /// <param name="seed">Seed of the initialisation: the same seed gives the same weights.</param>
    /// <param name="classes">Outputs of fc; null for the spec's default.</param>
    /// <param name="zeroInitResidual">Start each block's last BN gamma at 0, so every residual block starts as the
    /// identity (torchvision's zero_init_residual).</param>
    /// <param name="inputChannels">Channels of the input images (3 for RGB).</param>
    /// <exception cref="ArgumentException"><paramref name="spec"/> names an ImageNet depth without a stage
    /// layout, or <paramref name="zeroInitResidual"/> a plain network (it has no residual branch to zero).</exception>
    public ResNet(ResNetSpec spec, Device device, int seed = 0, int? classes = null, bool zeroInitResidual = false,
        int inputChannels = 3)
    {
        if (zeroInitResidual && spec.IsPlain)
            throw new ArgumentException($"zero-init-residual needs residual blocks; {spec.Name} is a plain network " +
                                        "(zeroing its blocks' last batch-norm would cut the signal).");
        Spec = spec;
        InputChannels = inputChannels;
        Classes = classes ?? spec.DefaultClasses;
        var seeds = new SeedSequence(seed);
        int expansion = spec.Bottleneck ? Bottleneck<T>.Expansion : BasicBlock<T>.Expansion;
        int[] planes = spec.StagePlanes;
        Conv1 = Child("conv1", spec.Family == ResNetFamily.Cifar
            ? ResidualBlock<T>.Conv3x3(device, inputChannels, planes[0], 1, seeds.Next())
            : new Conv2d<T>(device, inputChannels, planes[0], 7, 2, 3, bias: false, seeds.Next()));
        Bn1 = Child("bn1", new BatchNorm2d<T>(device, planes[0], relu: true));
        if (spec.Family == ResNetFamily.ImageNet) Child("maxpool", new MaxPool2d<T>(3, 2, 1));
        var stages = new Sequential<T>[planes.Length];
        for (int s = 0; s < planes.Length; s++)
            stages[s] = Child($"layer{s + 1}", MakeStage(device, spec, s == 0 ? planes[0] : planes[s - 1] * expansion,
                planes[s], spec.StageBlocks[s], stride: s == 0 ? 1 : 2, seeds));
        Stages = stages;
        Child("avgpool", new GlobalAveragePool<T>());
        Fc = Child("fc", new Linear<T>(device, planes[^1] * expansion, Classes, seeds.Next()));
        if (zeroInitResidual)
            using (GradMode.NoGrad())
                foreach (var block in Blocks) block.LastBatchNorm.Weight.Fill(T.Zero);
    }

    /// <summary>One stage, as torchvision's _make_layer: <paramref name="blocks"/> blocks of the spec's type, the
    /// first taking <paramref name="inChannels"/> with the stage's stride (and, per the shortcut option, a
    /// projection), the rest planes × expansion channels at stride 1.</summary>
    private static Sequential<T> MakeStage(Device device, ResNetSpec spec, int inChannels, int planes, int blocks,
        int stride, SeedSequence seeds)
    {
        var layers = new Module<T>[blocks];
        for (int b = 0; b < blocks; b++)
        {
            layers[b] = spec.Bottleneck
                ? new Bottleneck<T>(device, inChannels, planes, stride, spec.Option, seeds)
                : new BasicBlock<T>(device, inChannels, planes, stride, spec.Option, seeds);
            inChannels = ((ResidualBlock<T>)layers[b]).OutChannels;
            stride = 1;
        }
        return new Sequential<T>(layers);
    }

    /// <summary>Family, depth and shortcut option.</summary>
    public ResNetSpec Spec { get; }

    /// <summary>Outputs of fc (logits per image).</summary>
    public int Classes { get; }

    /// <summary>Channels of the input images.</summary>
    public int InputChannels { get; }

    /// <summary>The stem convolution: 3x3/1 to 16 channels (CIFAR) or 7x7/2 to 64 (ImageNet), no bias.</summary>
    public Conv2d<T> Conv1 { get; }

    /// <summary>The stem's BN, fused with the ReLU that follows.</summary>
    public BatchNorm2d<T> Bn1 { get; }

    /// <summary>The stages layer1, layer2, …: Sequentials of residual blocks; every stage but the first starts with a
    /// stride-2 block.</summary>
    public IReadOnlyList<Sequential<T>> Stages { get; }

    /// <summary>The classifier: globally average-pooled features → <see cref="Classes"/> logits.</summary>
    public Linear<T> Fc { get; }

    /// <summary>Every residual block, stage by stage.</summary>
    public IEnumerable<ResidualBlock<T>> Blocks => Stages.SelectMany(s => s.Layers.Cast<ResidualBlock<T>>());

    /// <summary>x [N, InputChannels, H, W] → logits [N, classes]: the children in order, conv1 → bn1 (with its
    /// ReLU) → maxpool (ImageNet) → layer1 … → avgpool → fc.</summary>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        foreach (var (_, layer) in NamedChildren()) x = layer.Forward(x);
        return x;
    }

    /// <summary>The model folded for inference, as torch.fx's fuse (torch.ao.quantization.fuse_modules on an eval
    /// model): each batch-norm folded into the convolution before it (in float64, rounded once), each ReLU and
    /// residual add in a convolution's epilogue. This model is left untouched; the folded one owns copies of the
    /// weights, so later changes to this one do not reach it.</summary>
    public FusedResNet<T> FuseForInference() => new(this);

    /// <summary>As <see cref="Forward"/>: the children in order.</summary>
    public string ExportOnnx(OnnxGraphBuilder<T> graph, string input) =>
        NamedChildren().Aggregate(input, (x, child) => graph.Export(child.Module, x));
}
