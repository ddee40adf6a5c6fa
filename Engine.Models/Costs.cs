// The cost counter: parameters, multiply-accumulates per image and activation memory — per layer, per block
// and per network — from the network as built: one walk of its module tree, each layer's output shape computed by
// the same geometry records the ops validate with, no compute.
//   MACs count convolutions and the fc layer (batch-norm, ReLU, pooling and additions are not MACs).
//   Activation memory counts every tensor the forward pass produces (conv, BN, ReLU, shortcut, add, pool and fc
//   outputs) — what training keeps alive for backward — in elements per image; ×batch×element size for bytes.
using System.Numerics;
using Engine.Core.Modules;
using Engine.Kernels;

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

    /// <summary>For a convolution row, its geometry for one image (set <c>Batch</c> with a <c>with</c> expression
    /// for more); null for every other layer.</summary>
    public ConvGeometry? Conv { get; init; }

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

/// <summary>Parameters, MACs and activation memory of a network as built: one walk of its module tree in forward
/// order that carries the per-image shape from layer to layer and asks each layer for its costs (without running
/// it; as fvcore's or ptflops' counters for PyTorch models).</summary>
public static class CostCounter
{
    /// <summary>The costs of every layer of <paramref name="model"/> for one image of its spec's input size
    /// (<see cref="ResNetSpec.InputSize"/>, with <see cref="ResNet{T}.InputChannels"/> channels).</summary>
    /// <exception cref="NotSupportedException">The model holds a layer the counter has no rule for.</exception>
    public static CostReport Count<T>(ResNet<T> model) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rows = new List<CostRow>();
        int size = model.Spec.InputSize;
        Walk(rows, "", model, (model.InputChannels, size, size));
        return new CostReport(model.Spec.Name, rows);
    }

    /// <summary>Costs of one block on an input of (channels, height, width) per image.</summary>
    public static CostReport CountBlock<T>(ResidualBlock<T> block, string name, int height, int width)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rows = new List<CostRow>();
        Walk(rows, name, block, (block.InChannels, height, width));
        return new CostReport(name, rows);
    }

    /// <summary>Adds the rows of <paramref name="module"/> applied to one image of shape <paramref name="input"/>
    /// and returns the shape of its output.</summary>
    private static (int C, int H, int W) Walk<T>(List<CostRow> rows, string name, Module<T> module,
        (int C, int H, int W) input) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (module)
        {
            case Conv2d<T> conv:
            {
                var g = conv.Geometry(1, input.H, input.W);
                var output = (g.OutChannels, g.OutHeight, g.OutWidth);
                string stride = conv.StrideHeight == conv.StrideWidth
                    ? $"{conv.StrideHeight}"
                    : $"{conv.StrideHeight}x{conv.StrideWidth}";
                string kind = $"conv {conv.KernelHeight}x{conv.KernelWidth}/{stride} " +
                              $"{conv.InChannels}→{conv.OutChannels}" +
                              (conv.DilationHeight == 1 && conv.DilationWidth == 1
                                  ? ""
                                  : $" dilation {conv.DilationHeight}x{conv.DilationWidth}") +
                              (conv.Groups == 1 ? "" : $" groups {conv.Groups}");
                rows.Add(Row(name, kind, output, ParameterCount(conv), g.Macs) with { Conv = g });
                return output;
            }
            case BatchNorm2d<T> norm:
                rows.Add(Row(name, "batch-norm", input, ParameterCount(norm)));
                if (norm.Relu) rows.Add(Row($"{name}.relu", "relu", input));
                return input;
            case Pool2d<T> pool:
            {
                var geometry = pool.Geometry(1, input.C, input.H, input.W);
                var g = pool is AvgPool2d<T> ? geometry.ValidatedForAverage() : geometry.Validated();
                var output = (g.Channels, g.OutHeight, g.OutWidth);
                rows.Add(Row(name, PoolKind(pool), output));
                return output;
            }
            case GlobalAveragePool<T>:
                rows.Add(Row(name, "global average pool", (input.C, 1, 1)));
                return (input.C, 1, 1);
            case Linear<T> linear:
                rows.Add(Row(name, $"linear {linear.InFeatures}→{linear.OutFeatures}", (linear.OutFeatures, 1, 1),
                    ParameterCount(linear), (long)linear.InFeatures * linear.OutFeatures));
                return (linear.OutFeatures, 1, 1);
            case ZeroPadShortcut<T> pad:
            {
                var g = ShortcutGeometry.Centered(1, input.C, input.H, input.W, pad.OutChannels, pad.Stride);
                var output = (g.OutChannels, g.OutHeight, g.OutWidth);
                rows.Add(Row(name, "zero-pad shortcut (A)", output));
                return output;
            }
            case ResidualBlock<T> block:
            {
                // F on the input, the shortcut on the same input, then the addition and the ReLU (block.Forward).
                var output = input;
                foreach (var (childName, child) in block.NamedChildren())
                {
                    if (child == block.Shortcut) Walk(rows, $"{name}.{childName}", child, input);
                    else output = Walk(rows, $"{name}.{childName}", child, output);
                }
                if (block.Option != ShortcutOption.None) rows.Add(Row($"{name}.add", "residual add", output));
                rows.Add(Row($"{name}.relu", "relu", output));
                return output;
            }
            case Sequential<T> or ResNet<T>:
            {
                // Both apply their children in order.
                var output = input;
                foreach (var (childName, child) in module.NamedChildren())
                    output = Walk(rows, name.Length == 0 ? childName : $"{name}.{childName}", child, output);
                return output;
            }
            default:
                throw new NotSupportedException(
                    $"The cost counter has no rule for {module.GetType().Name} ('{name}').");
        }
    }

    /// <summary>A pooling layer in words: "max-pool 3x3/2", "avg-pool 2x3/1x2 ceil", with the dilation when not
    /// 1.</summary>
    private static string PoolKind<T>(Pool2d<T> pool) where T : unmanaged, IFloatingPointIeee754<T>
    {
        string op = pool is AvgPool2d<T> ? "avg-pool" : "max-pool";
        string stride = pool.StrideHeight == pool.StrideWidth ? $"{pool.StrideHeight}"
            : $"{pool.StrideHeight}x{pool.StrideWidth}";
        string dilation = pool.DilationHeight == 1 && pool.DilationWidth == 1 ? ""
            : $" dilation {pool.DilationHeight}x{pool.DilationWidth}";
        return $"{op} {pool.KernelHeight}x{pool.KernelWidth}/{stride}{dilation}{(pool.CeilMode ? " ceil" : "")}";
    }

    private static long ParameterCount<T>(Module<T> layer) where T : unmanaged, IFloatingPointIeee754<T> =>
        layer.Parameters().Sum(p => p.Length);

    private static CostRow Row(string name, string kind, (int C, int H, int W) output, long parameters = 0,
        long macs = 0) =>
        new(name, kind, output.C, output.H, output.W, parameters, macs);
}
