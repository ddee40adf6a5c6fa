// The paper's residual blocks (He et al. 2015, sec. 3.3 and fig. 5) with torchvision's parameter names:
//   BasicBlock  3x3 conv (stride s) → BN → ReLU → 3x3 conv → BN, + shortcut, → ReLU        expansion 1
//   Bottleneck  1x1 conv → BN → ReLU → 3x3 conv (stride s) → BN → ReLU → 1x1 conv → BN, + shortcut, → ReLU
//               expansion 4 (stride on the 3x3 conv, torchvision's "v1.5")
// A block's tail — its last BN, the shortcut's add and the ReLU — is one fused op (BatchNorm2d.ForwardAddRelu);
// the BN → ReLU pairs inside F are fused BatchNorm2d(relu: true) layers.
// Shortcuts (sec. 3.3): A — identity, or where dimensions increase the fused zero-pad shortcut (stride-2
// subsample + zero channels); B — 1x1 projection + BN ("downsample") only where dimensions change, identity
// elsewhere; C — projection everywhere; None — a plain block with no shortcut (the paper's plain nets).
using System.Numerics;
using Engine.Core;
using Engine.Core.Modules;
using Engine.Core.Onnx;
using Engine.Kernels;

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

/// <summary>The option-A shortcut where dimensions increase: the input subsampled by the stride, with zero channels
/// added up to <see cref="OutChannels"/> (no parameters).</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
/// <param name="outChannels">Channels of the output.</param>
/// <param name="stride">Subsampling step.</param>
public sealed class ZeroPadShortcut<T>(int outChannels, int stride) : Module<T>, IOnnxExportable<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Channels of the output.</summary>
    public int OutChannels { get; } = outChannels;

    /// <summary>Subsampling step.</summary>
    public int Stride { get; } = stride;

    /// <summary>x [N, C, H, W] → [N, OutChannels, ⌈H / Stride⌉, ⌈W / Stride⌉]; records a backward to x.</summary>
    public override Tensor<T> Forward(Tensor<T> x) => x.ZeroPadShortcut(OutChannels, Stride);

    /// <summary>In standard ONNX ops: Slice with steps Stride on H and W (rows and columns 0, s, 2s, …), then Pad
    /// with the zero channels before and after the input's.</summary>
    public string ExportOnnx(OnnxGraphBuilder<T> graph, string input)
    {
        var shape = graph.ShapeOf(input);
        if (shape.Count != 3 || shape[0] > OutChannels)
            throw new ArgumentException(
                $"ONNX export: {graph.Describe(this)} pads to {OutChannels} channels but gets " +
                $"[N, {string.Join(", ", shape)}].");
        var g = ShortcutGeometry.Centered(1, shape[0], shape[1], shape[2], OutChannels, Stride);
        string sliced = graph.Node(this, "Slice",
            [input, graph.Constant(this, "starts", [0, 0]), graph.Constant(this, "ends", [long.MaxValue, long.MaxValue]),
             graph.Constant(this, "axes", [2, 3]), graph.Constant(this, "steps", [Stride, Stride])],
            [g.InChannels, g.OutHeight, g.OutWidth]);
        int padBack = g.OutChannels - g.InChannels - g.PadFront;
        return graph.Node(this, "Pad", [sliced, graph.Constant(this, "pads", [0, g.PadFront, 0, 0, 0, padBack, 0, 0])],
            [g.OutChannels, g.OutHeight, g.OutWidth]);
    }
}

/// <summary>A residual (or plain) block y = relu(F(x) + shortcut(x)): the residual function F is the block's first
/// children (conv1, bn1, …) applied in order; the shortcut, registered after them, is the identity (no child), a
/// zero-pad shortcut (child <c>shortcut</c>, no parameters) or a projection (child <c>downsample</c>, as in
/// torchvision).</summary>
public abstract class ResidualBlock<T> : Module<T>, IOnnxExportable<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Module<T>[] _residual;

    /// <summary>Registers the layers of F in order, then builds the shortcut the option asks for.</summary>
    /// <param name="device">Where the block's parameters live.</param>
    /// <param name="inChannels">Channels of the block's input.</param>
    /// <param name="outChannels">Channels of its output (planes × expansion).</param>
    /// <param name="stride">Stride of the block's strided convolution and of its shortcut: 2 where a stage starts
    /// (except the first), else 1.</param>
    /// <param name="option">How the shortcut is built.</param>
    /// <param name="seeds">Seeds of the network's layers; the projection draws its seed after F's layers.</param>
    /// <param name="residual">F's layers with their torchvision names, in the order they are applied.</param>
    /// <exception cref="ArgumentException">Option A with fewer output than input channels (zero-padding cannot drop
    /// channels).</exception>
    protected ResidualBlock(Device device, int inChannels, int outChannels, int stride, ShortcutOption option,
        SeedSequence seeds, params (string Name, Module<T> Layer)[] residual)
    {
        if (option == ShortcutOption.A && inChannels > outChannels)
        {
            foreach (var (_, layer) in residual) layer.Dispose();
            throw new ArgumentException($"Shortcut A cannot reduce channels ({inChannels} → {outChannels}).");
        }
        InChannels = inChannels;
        OutChannels = outChannels;
        Stride = stride;
        Option = option;
        _residual = [.. residual.Select(r => Child(r.Name, r.Layer))];
        bool dimensionsChange = stride != 1 || inChannels != outChannels;
        if (option == ShortcutOption.C || (option == ShortcutOption.B && dimensionsChange))
            Shortcut = Child("downsample", new Sequential<T>(
                Conv1x1(device, inChannels, outChannels, stride, seeds.Next()),
                new BatchNorm2d<T>(device, outChannels)));
        else if (option == ShortcutOption.A && dimensionsChange)
            Shortcut = Child("shortcut", new ZeroPadShortcut<T>(outChannels, stride));
    }

    /// <summary>Channels of the block's input.</summary>
    public int InChannels { get; }

    /// <summary>Channels of the block's output.</summary>
    public int OutChannels { get; }

    /// <summary>The block's stride: its output has ⌈H / Stride⌉ × ⌈W / Stride⌉ pixels.</summary>
    public int Stride { get; }

    /// <summary>How the block's shortcut is built.</summary>
    public ShortcutOption Option { get; }

    /// <summary>The shortcut: a projection (<see cref="Downsample"/>) or a <see cref="ZeroPadShortcut{T}"/>; null for
    /// the identity, and for a plain block (see <see cref="Option"/>).</summary>
    public Module<T>? Shortcut { get; }

    /// <summary>The projection shortcut (torchvision's "downsample": 0 = 1x1 conv, 1 = BN), or null.</summary>
    public Sequential<T>? Downsample => Shortcut as Sequential<T>;

    /// <summary>The last BN of F, whose gamma starts at zero with zero-init-residual.</summary>
    public BatchNorm2d<T> LastBatchNorm => (BatchNorm2d<T>)_residual[^1];

    /// <summary>relu(F(x) + shortcut(x)), or relu(F(x)) for a plain block: x [N, InChannels, H, W] →
    /// [N, OutChannels, ⌈H / Stride⌉, ⌈W / Stride⌉]. F's last batch-norm, the add and the ReLU run as one fused
    /// pass each way (<see cref="BatchNorm2d{T}.ForwardAddRelu"/>).</summary>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        var f = x;
        foreach (var layer in _residual[..^1]) f = layer.Forward(f);
        var identity = Option == ShortcutOption.None ? null : Shortcut?.Forward(x) ?? x;
        return LastBatchNorm.ForwardAddRelu(f, identity);
    }

    /// <summary>As <see cref="Forward"/>: F's layers, then Add of the shortcut (the input itself for the identity)
    /// and Relu; Relu alone for a plain block.</summary>
    public string ExportOnnx(OnnxGraphBuilder<T> graph, string input)
    {
        string f = _residual.Aggregate(input, (x, layer) => graph.Export(layer, x));
        if (Option != ShortcutOption.None)
        {
            string shortcut = Shortcut is null ? input : graph.Export(Shortcut, input);
            if (!graph.ShapeOf(shortcut).SequenceEqual(graph.ShapeOf(f)))
                throw new ArgumentException(
                    $"ONNX export: {graph.Describe(this)} adds a shortcut of [N, {string.Join(", ", graph.ShapeOf(shortcut))}] " +
                    $"to F(x) of [N, {string.Join(", ", graph.ShapeOf(f))}].");
            f = graph.Node(this, "Add", [f, shortcut], graph.ShapeOf(f));
        }
        return graph.Node(this, "Relu", [f], graph.ShapeOf(f));
    }

    /// <summary>3x3 convolution with padding 1 and no bias (torchvision's conv3x3).</summary>
    public static Conv2d<T> Conv3x3(Device device, int inChannels, int outChannels, int stride, int seed) =>
        new(device, inChannels, outChannels, 3, stride, 1, bias: false, seed);

    /// <summary>1x1 convolution without bias (torchvision's conv1x1).</summary>
    public static Conv2d<T> Conv1x1(Device device, int inChannels, int outChannels, int stride, int seed) =>
        new(device, inChannels, outChannels, 1, stride, 0, bias: false, seed);
}

/// <summary>torchvision's BasicBlock (ResNet-18/34 and the CIFAR nets).</summary>
public sealed class BasicBlock<T> : ResidualBlock<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Output channels per plane: the block outputs <c>planes</c> channels.</summary>
    public const int Expansion = 1;

    /// <summary>conv1 (3x3, stride) → bn1 → ReLU → conv2 (3x3) → bn2, + shortcut, → ReLU.</summary>
    /// <param name="device">Where the block's parameters live.</param>
    /// <param name="inChannels">Channels of the block's input.</param>
    /// <param name="planes">Width of both convolutions and the block's output channels.</param>
    /// <param name="stride">Stride of conv1 and of the shortcut.</param>
    /// <param name="option">How the shortcut is built.</param>
    /// <param name="seeds">Seeds of the network's layers, drawn in construction order.</param>
    /// <exception cref="ArgumentException">Option A with <paramref name="planes"/> &lt;
    /// <paramref name="inChannels"/>.</exception>
    public BasicBlock(Device device, int inChannels, int planes, int stride, ShortcutOption option,
        SeedSequence seeds) : base(device, inChannels, planes * Expansion, stride, option, seeds,
        ("conv1", Conv3x3(device, inChannels, planes, stride, seeds.Next())),
        ("bn1", new BatchNorm2d<T>(device, planes, relu: true)),
        ("conv2", Conv3x3(device, planes, planes, 1, seeds.Next())),
        ("bn2", new BatchNorm2d<T>(device, planes)))
    {
    }
}

/// <summary>torchvision's Bottleneck, v1.5 (ResNet-50/101/152): the stride sits on the 3x3 convolution.</summary>
public sealed class Bottleneck<T> : ResidualBlock<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Output channels per plane: the block outputs 4 × <c>planes</c> channels.</summary>
    public const int Expansion = 4;

    /// <summary>conv1 (1x1) → bn1 → ReLU → conv2 (3x3, stride) → bn2 → ReLU → conv3 (1x1 to 4 × planes) → bn3,
    /// + shortcut, → ReLU.</summary>
    /// <param name="device">Where the block's parameters live.</param>
    /// <param name="inChannels">Channels of the block's input.</param>
    /// <param name="planes">Width of the 1x1 reduction and the 3x3 conv; the output has 4 × planes channels.</param>
    /// <param name="stride">Stride of the 3x3 conv (conv2) and of the shortcut.</param>
    /// <param name="option">How the shortcut is built.</param>
    /// <param name="seeds">Seeds of the network's layers, drawn in construction order.</param>
    /// <exception cref="ArgumentException">Option A with 4 × <paramref name="planes"/> &lt;
    /// <paramref name="inChannels"/>.</exception>
    public Bottleneck(Device device, int inChannels, int planes, int stride, ShortcutOption option,
        SeedSequence seeds) : base(device, inChannels, planes * Expansion, stride, option, seeds,
        ("conv1", Conv1x1(device, inChannels, planes, 1, seeds.Next())),
        ("bn1", new BatchNorm2d<T>(device, planes, relu: true)),
        ("conv2", Conv3x3(device, planes, planes, stride, seeds.Next())),
        ("bn2", new BatchNorm2d<T>(device, planes, relu: true)),
        ("conv3", Conv1x1(device, planes, planes * Expansion, 1, seeds.Next())),
        ("bn3", new BatchNorm2d<T>(device, planes * Expansion)))
    {
    }
}
