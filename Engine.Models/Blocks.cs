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
public sealed class SeedSequence(int seed)
{
    private int _next = seed * 7919;

    public int Next() => _next += 2; // layers with a bias use seed and seed + 1
}

/// <summary>A residual (or plain) block: the residual function F and the shortcut that is added to it.</summary>
public abstract class ResidualBlock<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
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

    public int InChannels { get; }
    public int OutChannels { get; }
    public int Stride { get; }
    public ShortcutOption Option { get; }
    public bool DimensionsChange { get; }
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

public sealed class BasicBlock<T> : ResidualBlock<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public const int Expansion = 1;

    public BasicBlock(Device device, int inChannels, int planes, int stride, ShortcutOption option,
        SeedSequence seeds) : base(device, inChannels, planes * Expansion, stride, option, seeds)
    {
        Conv1 = Child("conv1", new Conv2d<T>(device, inChannels, planes, 3, stride, 1, bias: false, seeds.Next()));
        Bn1 = Child("bn1", new BatchNorm2d<T>(device, planes));
        Conv2 = Child("conv2", new Conv2d<T>(device, planes, planes, 3, 1, 1, bias: false, seeds.Next()));
        Bn2 = Child("bn2", new BatchNorm2d<T>(device, planes));
        AddProjectionIfNeeded();
    }

    public Conv2d<T> Conv1 { get; }
    public BatchNorm2d<T> Bn1 { get; }
    public Conv2d<T> Conv2 { get; }
    public BatchNorm2d<T> Bn2 { get; }
    public override BatchNorm2d<T> LastBatchNorm => Bn2;

    protected override Tensor<T> Residual(Tensor<T> x) =>
        Bn2.Forward(Conv2.Forward(Bn1.Forward(Conv1.Forward(x), relu: true)));
}

public sealed class Bottleneck<T> : ResidualBlock<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public const int Expansion = 4;

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

    public Conv2d<T> Conv1 { get; }
    public BatchNorm2d<T> Bn1 { get; }
    public Conv2d<T> Conv2 { get; }
    public BatchNorm2d<T> Bn2 { get; }
    public Conv2d<T> Conv3 { get; }
    public BatchNorm2d<T> Bn3 { get; }
    public override BatchNorm2d<T> LastBatchNorm => Bn3;

    protected override Tensor<T> Residual(Tensor<T> x)
    {
        var h = Bn1.Forward(Conv1.Forward(x), relu: true);
        h = Bn2.Forward(Conv2.Forward(h), relu: true);
        return Bn3.Forward(Conv3.Forward(h));
    }
}
