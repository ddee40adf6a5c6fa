// The paper's residual blocks (He et al. 2015, sec. 3.3 and fig. 5) with torchvision's parameter names:
//   BasicBlock  3x3 conv (stride s) → BN → ReLU → 3x3 conv → BN, + shortcut, → ReLU        expansion 1
//   Bottleneck  1x1 conv → BN → ReLU → 3x3 conv (stride s) → BN → ReLU → 1x1 conv → BN, + shortcut, → ReLU
//               expansion 4 (stride on the 3x3 conv, torchvision's "v1.5")
// Shortcuts (sec. 3.3): A — identity, or where dimensions increase the fused zero-pad shortcut (stride-2
// subsample + zero channels); B — 1x1 projection + BN ("downsample") only where dimensions change, identity
// elsewhere; C — projection everywhere; None — a plain block with no shortcut (the paper's plain nets).
using System.Numerics;
using Engine.Core;
using Engine.Core.Modules;

namespace Engine.Models;

/// <summary>How a block's shortcut is built (He et al. 2015, sec. 3.3); <see cref="None"/> builds the paper's plain
/// networks.</summary>
public enum ShortcutOption
{
    /// <summary>No shortcut: a plain network.</summary>
    None,

    /// <summary>Identity; zero-padded, subsampled identity where dimensions increase (no parameters).</summary>
    A,

    /// <summary>Projection (1x1 conv + BN) where dimensions change, identity elsewhere.</summary>
    B,

    /// <summary>Projection everywhere.</summary>
    C,
}

/// <summary>Successive seeds for the layers of one network, so initialisation is reproducible.</summary>
/// <param name="seed">The network's seed: the same seed gives the same initial weights.</param>
public sealed class SeedSequence(int seed)
{
    private int _next = seed * 7919;

    /// <summary>The next layer's seed; steps by 2, as a layer with a bias uses its seed and seed + 1.</summary>
    public int Next() => _next += 2;
}

/// <summary>A residual (or plain) block: the residual function F and the shortcut that is added to it.</summary>
public abstract class ResidualBlock<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Records the block's shape and shortcut; the subclass then adds its layers and calls
    /// <see cref="AddProjectionIfNeeded"/>.</summary>
    /// <param name="device">Where the block's parameters live.</param>
    /// <param name="inChannels">Channels of the block's input.</param>
    /// <param name="outChannels">Channels of its output (planes × expansion).</param>
    /// <param name="stride">Stride of the block's strided convolution and of its shortcut: 2 where a stage starts
    /// (except the first), else 1.</param>
    /// <param name="option">How the shortcut is built.</param>
    /// <param name="seeds">Seeds of the network's layers, drawn in construction order.</param>
    /// <exception cref="ArgumentException">Option A with fewer output than input channels (zero-padding cannot drop
    /// channels).</exception>
    protected ResidualBlock(Device device, int inChannels, int outChannels, int stride, ShortcutOption option,
        SeedSequence seeds)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        Stride = stride;
        Option = option;
        DimensionsChange = stride != 1 || inChannels != outChannels;
        if (option == ShortcutOption.C || (option == ShortcutOption.B && DimensionsChange))
            ProjectionNeeded = true;
        if (option == ShortcutOption.A && inChannels > outChannels)
            throw new ArgumentException($"Shortcut A cannot reduce channels ({inChannels} → {outChannels}).");
        _device = device;
        _seeds = seeds;
    }

    private readonly Device _device;
    private readonly SeedSequence _seeds;

    /// <summary>Channels of the block's input.</summary>
    public int InChannels { get; }

    /// <summary>Channels of the block's output.</summary>
    public int OutChannels { get; }

    /// <summary>The block's stride: its output has ⌈H / Stride⌉ × ⌈W / Stride⌉ pixels.</summary>
    public int Stride { get; }

    /// <summary>How the block's shortcut is built.</summary>
    public ShortcutOption Option { get; }

    /// <summary>True when the stride or the channel count changes, so the plain identity does not fit as
    /// shortcut.</summary>
    public bool DimensionsChange { get; }

    /// <summary>True when the shortcut is a projection: option C, or option B where dimensions change.</summary>
    protected bool ProjectionNeeded { get; }

    /// <summary>The projection shortcut (torchvision's "downsample": 0 = 1x1 conv, 1 = BN), or null.</summary>
    public Sequential<T>? Downsample { get; private set; }

    /// <summary>Registers the projection after the residual branch, so names follow torchvision's order.</summary>
    protected void AddProjectionIfNeeded()
    {
        if (!ProjectionNeeded) return;
        Downsample = Child("downsample", new Sequential<T>(
            new Conv2d<T>(_device, InChannels, OutChannels, 1, Stride, 0, bias: false, _seeds.Next()),
            new BatchNorm2d<T>(_device, OutChannels)));
    }

    /// <summary>F(x): the residual branch, before the final addition and ReLU.</summary>
    protected abstract Tensor<T> Residual(Tensor<T> x);

    /// <summary>relu(F(x) + shortcut(x)), or relu(F(x)) for a plain block: x [N, InChannels, H, W] →
    /// [N, OutChannels, ⌈H / Stride⌉, ⌈W / Stride⌉].</summary>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        var f = Residual(x);
        if (Option == ShortcutOption.None) return f.Relu();
        var shortcut = Downsample is not null ? Downsample.Forward(x)
            : DimensionsChange ? x.ZeroPadShortcut(OutChannels, Stride)
            : x;
        return (f + shortcut).Relu();
    }

    /// <summary>The BN whose gamma starts at zero with zero-init-residual (each block's last BN).</summary>
    public abstract BatchNorm2d<T> LastBatchNorm { get; }
}

/// <summary>torchvision's BasicBlock (ResNet-18/34 and the CIFAR nets): 3x3 conv (stride) → BN → ReLU → 3x3 conv →
/// BN, plus the shortcut, then ReLU.</summary>
public sealed class BasicBlock<T> : ResidualBlock<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Output channels per plane: the block outputs <c>planes</c> channels.</summary>
    public const int Expansion = 1;

    /// <summary>Builds conv1, bn1, conv2, bn2 and, where the option asks for one, the projection shortcut.</summary>
    /// <param name="device">Where the block's parameters live.</param>
    /// <param name="inChannels">Channels of the block's input.</param>
    /// <param name="planes">Width of both convolutions and the block's output channels.</param>
    /// <param name="stride">Stride of conv1 and of the shortcut.</param>
    /// <param name="option">How the shortcut is built.</param>
    /// <param name="seeds">Seeds of the network's layers, drawn in construction order.</param>
    /// <exception cref="ArgumentException">Option A with <paramref name="planes"/> &lt;
    /// <paramref name="inChannels"/>.</exception>
    public BasicBlock(Device device, int inChannels, int planes, int stride, ShortcutOption option,
        SeedSequence seeds) : base(device, inChannels, planes * Expansion, stride, option, seeds)
    {
        Conv1 = Child("conv1", new Conv2d<T>(device, inChannels, planes, 3, stride, 1, bias: false, seeds.Next()));
        Bn1 = Child("bn1", new BatchNorm2d<T>(device, planes));
        Conv2 = Child("conv2", new Conv2d<T>(device, planes, planes, 3, 1, 1, bias: false, seeds.Next()));
        Bn2 = Child("bn2", new BatchNorm2d<T>(device, planes));
        AddProjectionIfNeeded();
    }

    /// <summary>3x3 conv with the block's stride, InChannels → planes, no bias.</summary>
    public Conv2d<T> Conv1 { get; }

    /// <summary>BN after conv1, fused with the ReLU that follows.</summary>
    public BatchNorm2d<T> Bn1 { get; }

    /// <summary>3x3 conv, stride 1, planes → planes, no bias.</summary>
    public Conv2d<T> Conv2 { get; }

    /// <summary>BN after conv2, before the addition (zeroed by zero-init-residual).</summary>
    public BatchNorm2d<T> Bn2 { get; }

    /// <inheritdoc/>
    public override BatchNorm2d<T> LastBatchNorm => Bn2;

    /// <inheritdoc/>
    protected override Tensor<T> Residual(Tensor<T> x) =>
        Bn2.Forward(Conv2.Forward(Bn1.Forward(Conv1.Forward(x), relu: true)));
}

/// <summary>torchvision's Bottleneck, v1.5 (ResNet-50/101/152): 1x1 conv → BN → ReLU → 3x3 conv (stride) → BN → ReLU
/// → 1x1 conv to 4 × planes → BN, plus the shortcut, then ReLU.</summary>
public sealed class Bottleneck<T> : ResidualBlock<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Output channels per plane: the block outputs 4 × <c>planes</c> channels.</summary>
    public const int Expansion = 4;

    /// <summary>Builds conv1 … bn3 and, where the option asks for one, the projection shortcut.</summary>
    /// <param name="device">Where the block's parameters live.</param>
    /// <param name="inChannels">Channels of the block's input.</param>
    /// <param name="planes">Width of the 1x1 reduction and the 3x3 conv; the output has 4 × planes channels.</param>
    /// <param name="stride">Stride of the 3x3 conv (conv2) and of the shortcut.</param>
    /// <param name="option">How the shortcut is built.</param>
    /// <param name="seeds">Seeds of the network's layers, drawn in construction order.</param>
    /// <exception cref="ArgumentException">Option A with 4 × <paramref name="planes"/> &lt;
    /// <paramref name="inChannels"/>.</exception>
    public Bottleneck(Device device, int inChannels, int planes, int stride, ShortcutOption option,
        SeedSequence seeds) : base(device, inChannels, planes * Expansion, stride, option, seeds)
    {
        Conv1 = Child("conv1", new Conv2d<T>(device, inChannels, planes, 1, 1, 0, bias: false, seeds.Next()));
        Bn1 = Child("bn1", new BatchNorm2d<T>(device, planes));
        Conv2 = Child("conv2", new Conv2d<T>(device, planes, planes, 3, stride, 1, bias: false, seeds.Next()));
        Bn2 = Child("bn2", new BatchNorm2d<T>(device, planes));
        Conv3 = Child("conv3", new Conv2d<T>(device, planes, planes * Expansion, 1, 1, 0, bias: false, seeds.Next()));
        Bn3 = Child("bn3", new BatchNorm2d<T>(device, planes * Expansion));
        AddProjectionIfNeeded();
    }

    /// <summary>1x1 conv, InChannels → planes, no bias.</summary>
    public Conv2d<T> Conv1 { get; }

    /// <summary>BN after conv1, fused with the ReLU that follows.</summary>
    public BatchNorm2d<T> Bn1 { get; }

    /// <summary>3x3 conv with the block's stride, planes → planes, no bias.</summary>
    public Conv2d<T> Conv2 { get; }

    /// <summary>BN after conv2, fused with the ReLU that follows.</summary>
    public BatchNorm2d<T> Bn2 { get; }

    /// <summary>1x1 conv, planes → 4 × planes, no bias.</summary>
    public Conv2d<T> Conv3 { get; }

    /// <summary>BN after conv3, before the addition (zeroed by zero-init-residual).</summary>
    public BatchNorm2d<T> Bn3 { get; }

    /// <inheritdoc/>
    public override BatchNorm2d<T> LastBatchNorm => Bn3;

    /// <inheritdoc/>
    protected override Tensor<T> Residual(Tensor<T> x)
    {
        var h = Bn1.Forward(Conv1.Forward(x), relu: true);
        h = Bn2.Forward(Conv2.Forward(h), relu: true);
        return Bn3.Forward(Conv3.Forward(h));
    }
}
