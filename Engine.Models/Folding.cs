// A ResNet folded for inference (ResNet.FuseForInference): every conv → BN pair becomes one FusedConv2d (the BN
// folded into the weight and bias in float64, rounded once), the BN → ReLU pairs and each block's tail (last BN +
// shortcut add + ReLU) run in the convolution's epilogue, and a projection shortcut (1x1 conv + BN) folds the
// same way. The option-A zero-pad shortcut, the max-pool, the average pool and fc are kept as they are (fc
// copied). The names follow the unfolded model's (conv1, layer1.0.conv2, layer2.0.downsample, fc), as torch.fx's
// fuse leaves them. The original model is untouched; the folded one owns its own tensors.
using System.Numerics;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;

namespace Engine.Models;

/// <summary>A residual block folded for inference: F's convolutions with their batch-norms folded in (the inner
/// ones with their ReLU), the last one taking the shortcut's output as its epilogue's residual (none for a plain
/// block), then the block's ReLU. Children <c>conv1</c>, <c>conv2</c> (, <c>conv3</c>) and the shortcut
/// (<c>downsample</c>, folded; or <c>shortcut</c>, the zero-pad one).</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class FusedBlock<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FusedConv2d<T>[] _residual;

    /// <summary>Folds <paramref name="block"/> (read, not changed).</summary>
    /// <param name="block">The block to fold; its F must be convolutions each followed by a batch-norm.</param>
    /// <exception cref="ArgumentException">F is not made of conv → BN pairs.</exception>
    public FusedBlock(ResidualBlock<T> block)
    {
        Option = block.Option;
        var layers = block.NamedChildren().Where(c => c.Module != block.Shortcut).ToArray();
        if (layers.Length % 2 != 0)
            throw new ArgumentException($"Cannot fold a block whose residual function has {layers.Length} layers: " +
                                        "it must be convolutions each followed by a batch-norm.");
        _residual = new FusedConv2d<T>[layers.Length / 2];
        for (int i = 0; i < _residual.Length; i++)
        {
            var (name, conv) = layers[2 * i];
            var (bnName, bn) = layers[2 * i + 1];
            if (conv is not Conv2d<T> convolution || bn is not BatchNorm2d<T> batchNorm)
                throw new ArgumentException($"Cannot fold '{name}' → '{bnName}': expected a Conv2d followed by a " +
                                            "BatchNorm2d.");
            bool last = i == _residual.Length - 1;
            _residual[i] = Child(name, FusedConv2d<T>.Fold(convolution, batchNorm, relu: last || batchNorm.Relu));
        }
        Shortcut = block.Shortcut switch
        {
            null => null,
            Sequential<T> { Layers: [Conv2d<T> projection, BatchNorm2d<T> batchNorm] } =>
                Child("downsample", FusedConv2d<T>.Fold(projection, batchNorm, relu: false)),
            ZeroPadShortcut<T> pad => Child("shortcut", new ZeroPadShortcut<T>(pad.OutChannels, pad.Stride)),
            var other => throw new ArgumentException($"Cannot fold a shortcut of type {other.GetType().Name}."),
        };
    }

    /// <summary>How the block's shortcut is built (None: a plain block).</summary>
    public ShortcutOption Option { get; }

    /// <summary>The folded projection, the zero-pad shortcut, or null for the identity (and a plain block).</summary>
    public Module<T>? Shortcut { get; }

    /// <summary>relu(F'(x) + shortcut(x)) (relu(F'(x)) for a plain block), the add and the ReLU in the last
    /// convolution's epilogue.</summary>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        var f = x;
        foreach (var conv in _residual[..^1]) f = conv.Forward(f);
        var identity = Option == ShortcutOption.None ? null : Shortcut?.Forward(x) ?? x;
        return _residual[^1].Forward(f, identity);
    }
}

/// <summary>A <see cref="ResNet{T}"/> folded for inference (<see cref="ResNet{T}.FuseForInference"/>): no
/// batch-norm left, every ReLU and residual add in a convolution's epilogue. Forward only, records no backward;
/// its logits equal the eval-mode model's to float rounding.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class FusedResNet<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Folds <paramref name="model"/>: children conv1 (stem conv + bn1 + ReLU), maxpool (ImageNet),
    /// layer1 … (stages of <see cref="FusedBlock{T}"/>), avgpool, fc (a copy).</summary>
    /// <param name="model">The model to fold; read, not changed (its mode does not matter: the running statistics
    /// are folded, as eval mode uses them).</param>
    public FusedResNet(ResNet<T> model)
    {
        Spec = model.Spec;
        Classes = model.Classes;
        InputChannels = model.InputChannels;
        // The stem conv is folded when its batch-norm comes by, and the fused layer keeps the conv's name.
        foreach (var (name, child) in model.NamedChildren())
        {
            Module<T>? folded = child switch
            {
                Conv2d<T> => null,
                BatchNorm2d<T> bn when bn == model.Bn1 => FusedConv2d<T>.Fold(model.Conv1, bn, relu: bn.Relu),
                MaxPool2d<T> p => new MaxPool2d<T>(p.KernelHeight, p.KernelWidth, p.StrideHeight, p.StrideWidth,
                    p.PadTop, p.PadBottom, p.PadLeft, p.PadRight, p.DilationHeight, p.DilationWidth, p.CeilMode),
                Sequential<T> stage => new Sequential<T>(
                    [.. stage.Layers.Select(b => (Module<T>)new FusedBlock<T>((ResidualBlock<T>)b))]),
                GlobalAveragePool<T> => new GlobalAveragePool<T>(),
                Linear<T> fc => Copy(fc),
                _ => throw new ArgumentException($"Cannot fold child '{name}' of type {child.GetType().Name}."),
            };
            if (folded is not null) Child(folded is FusedConv2d<T> ? "conv1" : name, folded);
        }
    }

    /// <summary>Family, depth and shortcut option of the folded model.</summary>
    public ResNetSpec Spec { get; }

    /// <summary>Outputs of fc (logits per image).</summary>
    public int Classes { get; }

    /// <summary>Channels of the input images.</summary>
    public int InputChannels { get; }

    /// <summary>x [N, InputChannels, H, W] → logits [N, classes]: the children in order.</summary>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        foreach (var (_, layer) in NamedChildren()) x = layer.Forward(x);
        return x;
    }

    private static Linear<T> Copy(Linear<T> fc)
    {
        var copy = new Linear<T>(fc.Weight.Device, fc.InFeatures, fc.OutFeatures, seed: 0);
        using (GradMode.NoGrad())
        {
            copy.Weight.CopyFrom(fc.Weight.ToArray());
            copy.Bias.CopyFrom(fc.Bias.ToArray());
        }
        return copy;
    }
}
