// The cost counter: parameters, multiply-accumulates per image and activation memory — per layer, per block
// and per network — from the network as built (layer shapes traced through its structure, no compute).
//   MACs count convolutions and the fc layer (batch-norm, ReLU, pooling and additions are not MACs).
//   Activation memory counts every tensor the forward pass produces (conv, BN, ReLU, shortcut, add, pool and fc
//   outputs) — what training keeps alive for backward — in elements per image; ×batch×element size for bytes.
using System.Numerics;
using Engine.Core.Modules;

namespace Engine.Models;

/// <summary>One traced layer: its dotted name, kind, output shape (C, H, W per image) and costs per image.</summary>
/// <param name="Name">Dotted name as in the parameter names (layer1.0.conv1); relu, add and shortcut rows follow
/// the same scheme.</param>
/// <param name="Kind">What the layer is, for reading (conv 3x3/1 16→16, batch-norm, relu, …).</param>
/// <param name="Channels">Output channels.</param>
/// <param name="Height">Output rows.</param>
/// <param name="Width">Output columns.</param>
/// <param name="Parameters">Learnable parameters (weights and biases; BN's gamma and beta).</param>
/// <param name="Macs">Multiply-accumulates per image (0 for everything but conv and fc).</param>
public sealed record CostRow(string Name, string Kind, int Channels, int Height, int Width, long Parameters, long Macs)
{
    /// <summary>Elements of the output per image (C·H·W): the activation memory the layer adds.</summary>
    public long OutputElements => (long)Channels * Height * Width;

    /// <summary>The block (e.g. layer2.0) or part (stem, head) the layer belongs to.</summary>
    public string Group => Name.StartsWith("layer") ? string.Join('.', Name.Split('.').Take(2))
        : Name is "fc" or "avgpool" ? "head" : "stem";
}

/// <summary>Costs of a group of rows (a block, or the whole network).</summary>
/// <param name="Name">The group's name (layer2.0, stem, head) or the network's.</param>
/// <param name="Parameters">Learnable parameters.</param>
/// <param name="Macs">Multiply-accumulates per image.</param>
/// <param name="ActivationElements">Activation elements per image: the sum of the rows' outputs.</param>
public sealed record CostTotals(string Name, long Parameters, long Macs, long ActivationElements)
{
    /// <summary>Activation bytes for a batch at the given element size (4 for float32).</summary>
    public long ActivationBytes(int batch, int elementSize = 4) => ActivationElements * batch * elementSize;
}

/// <summary>The costs of a network (or one block), layer by layer, with totals per group and overall; built by
/// <see cref="CostCounter"/>.</summary>
/// <param name="model">Name of the network or block.</param>
/// <param name="rows">The traced layers in forward order.</param>
public sealed class CostReport(string model, IReadOnlyList<CostRow> rows)
{
    /// <summary>Name of the network or block.</summary>
    public string Model { get; } = model;

    /// <summary>The traced layers in forward order.</summary>
    public IReadOnlyList<CostRow> Rows { get; } = rows;

    /// <summary>Totals of each group (stem, every block, head), in forward order.</summary>
    public IReadOnlyList<CostTotals> Groups => Rows.GroupBy(r => r.Group)
        .Select(g => Sum(g.Key, g)).ToList();

    /// <summary>Totals of every row, named after <see cref="Model"/>.</summary>
    public CostTotals Total => Sum(Model, Rows);

    private static CostTotals Sum(string name, IEnumerable<CostRow> rows)
    {
        var list = rows.ToList();
        return new CostTotals(name, list.Sum(r => r.Parameters), list.Sum(r => r.Macs),
            list.Sum(r => r.OutputElements));
    }
}

/// <summary>Parameters, MACs and activation memory of a network as built, traced from its layer shapes without
/// running it (as fvcore's or ptflops' counters for PyTorch models).</summary>
public static class CostCounter
{
    /// <summary>The costs of every layer of <paramref name="model"/> for one image of its spec's input size
    /// (<see cref="ResNetSpec.InputSize"/>, with <see cref="ResNet{T}.InputChannels"/> channels).</summary>
    public static CostReport Count<T>(ResNet<T> model) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rows = new List<CostRow>();
        int size = model.Spec.InputSize;
        var shape = (C: model.InputChannels, H: size, W: size);
        shape = Conv(rows, "conv1", model.Conv1, shape);
        shape = Norm(rows, "bn1", model.Bn1, shape);
        rows.Add(Plain("relu", "relu", shape));
        if (model.Spec.Family == ResNetFamily.ImageNet)
        {
            shape = (shape.C, (shape.H + 2 - 3) / 2 + 1, (shape.W + 2 - 3) / 2 + 1);
            rows.Add(Plain("maxpool", "max-pool 3x3/2", shape));
        }
        for (int s = 0; s < model.Stages.Count; s++)
        {
            var stage = model.Stages[s];
            for (int b = 0; b < stage.Layers.Count; b++)
                shape = Block(rows, $"layer{s + 1}.{b}", (ResidualBlock<T>)stage.Layers[b], shape);
        }
        rows.Add(Plain("avgpool", "global average pool", (shape.C, 1, 1)));
        var fc = model.Fc;
        rows.Add(new CostRow("fc", $"linear {fc.InFeatures}→{fc.OutFeatures}", fc.OutFeatures, 1, 1,
            fc.Weight.Length + fc.Bias.Length, (long)fc.InFeatures * fc.OutFeatures));
        return new CostReport(model.Spec.Name, rows);
    }

    /// <summary>Costs of one block on an input of (channels, height, width) per image.</summary>
    public static CostReport CountBlock<T>(ResidualBlock<T> block, string name, int height, int width)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rows = new List<CostRow>();
        Block(rows, name, block, (block.InChannels, height, width));
        return new CostReport(name, rows);
    }

    private static (int C, int H, int W) Block<T>(List<CostRow> rows, string name, ResidualBlock<T> block,
        (int C, int H, int W) input) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var shape = input;
        switch (block)
        {
            case BasicBlock<T> basic:
                shape = Conv(rows, $"{name}.conv1", basic.Conv1, shape);
                shape = Norm(rows, $"{name}.bn1", basic.Bn1, shape);
                rows.Add(Plain($"{name}.relu1", "relu", shape));
                shape = Conv(rows, $"{name}.conv2", basic.Conv2, shape);
                shape = Norm(rows, $"{name}.bn2", basic.Bn2, shape);
                break;
            case Bottleneck<T> bottleneck:
                shape = Conv(rows, $"{name}.conv1", bottleneck.Conv1, shape);
                shape = Norm(rows, $"{name}.bn1", bottleneck.Bn1, shape);
                rows.Add(Plain($"{name}.relu1", "relu", shape));
                shape = Conv(rows, $"{name}.conv2", bottleneck.Conv2, shape);
                shape = Norm(rows, $"{name}.bn2", bottleneck.Bn2, shape);
                rows.Add(Plain($"{name}.relu2", "relu", shape));
                shape = Conv(rows, $"{name}.conv3", bottleneck.Conv3, shape);
                shape = Norm(rows, $"{name}.bn3", bottleneck.Bn3, shape);
                break;
        }
        if (block.Downsample is { } downsample)
        {
            var projected = Conv(rows, $"{name}.downsample.0", (Conv2d<T>)downsample.Layers[0], input);
            Norm(rows, $"{name}.downsample.1", (BatchNorm2d<T>)downsample.Layers[1], projected);
        }
        else if (block.Option != ShortcutOption.None && block.DimensionsChange)
        {
            rows.Add(Plain($"{name}.shortcut", "zero-pad shortcut (A)", shape));
        }
        if (block.Option != ShortcutOption.None) rows.Add(Plain($"{name}.add", "residual add", shape));
        rows.Add(Plain($"{name}.relu", "relu", shape));
        return shape;
    }

    private static (int C, int H, int W) Conv<T>(List<CostRow> rows, string name, Conv2d<T> conv,
        (int C, int H, int W) input) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int h = (input.H + 2 * conv.Padding - conv.Kernel) / conv.Stride + 1;
        int w = (input.W + 2 * conv.Padding - conv.Kernel) / conv.Stride + 1;
        long parameters = conv.Weight.Length + (conv.Bias?.Length ?? 0);
        long macs = (long)conv.OutChannels * h * w * conv.InChannels * conv.Kernel * conv.Kernel;
        rows.Add(new CostRow(name, $"conv {conv.Kernel}x{conv.Kernel}/{conv.Stride} {conv.InChannels}→{conv.OutChannels}",
            conv.OutChannels, h, w, parameters, macs));
        return (conv.OutChannels, h, w);
    }

    private static (int C, int H, int W) Norm<T>(List<CostRow> rows, string name, BatchNorm2d<T> norm,
        (int C, int H, int W) input) where T : unmanaged, IFloatingPointIeee754<T>
    {
        rows.Add(new CostRow(name, "batch-norm", input.C, input.H, input.W, norm.Weight.Length + norm.Bias.Length, 0));
        return input;
    }

    private static CostRow Plain(string name, string kind, (int C, int H, int W) shape) =>
        new(name, kind, shape.C, shape.H, shape.W, 0, 0);
}
