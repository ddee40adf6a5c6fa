// The ONNX export rule of each Core layer, in eval mode (opset 17):
//   Conv2d            → Conv (kernel_shape, per-side pads, strides; bias input when the layer has one)
//   BatchNorm2d       → BatchNormalization with the running statistics (+ Relu when the ReLU is fused)
//   MaxPool2d         → MaxPool (kernel_shape, pads, strides; ceil_mode 0)
//   GlobalAveragePool → GlobalAveragePool + Flatten(axis 1): the layer's output is [N, C], ONNX's [N, C, 1, 1]
//   Linear            → Flatten(axis 1) + Gemm(transB 1), y = x·Wᵀ + b
//   Sequential        → its layers in order
// Each rule checks that the layer fits the shape it is given, so a model exported at an input size it cannot take
// fails at export, naming the module.
using Engine.Core.Onnx.Proto;
using System.Numerics;
using Engine.Core.Modules;
using Engine.Kernels;

namespace Engine.Core.Onnx;

internal static class OnnxExportRules
{
    /// <summary>Writes <paramref name="module"/> by the rule of its layer type; null when it has none.</summary>
    public static string? Export<T>(OnnxGraphBuilder<T> graph, Module<T> module, string input)
        where T : unmanaged, IFloatingPointIeee754<T> => module switch
    {
        Conv2d<T> conv => Conv(graph, conv, input),
        BatchNorm2d<T> norm => BatchNorm(graph, norm, input),
        Pool2d<T> pool => Pool(graph, pool, input),
        GlobalAveragePool<T> pool => GlobalAveragePool(graph, pool, input),
        Linear<T> linear => Linear(graph, linear, input),
        Sequential<T> sequential => sequential.Layers.Aggregate(input, (x, layer) => graph.Export(layer, x)),
        _ => null,
    };

    private static string Conv<T>(OnnxGraphBuilder<T> graph, Conv2d<T> conv, string input)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (_, height, width) = Image(graph, conv, input, conv.InChannels);
        var geometry = Fit(graph, conv, () => conv.Geometry(1, height, width).Validated());
        List<string> inputs = [input, graph.Initializer(conv.Weight)];
        if (conv.Bias is not null) inputs.Add(graph.Initializer(conv.Bias));
        return graph.Node(conv, "Conv", inputs, [conv.OutChannels, geometry.OutHeight, geometry.OutWidth],
            OnnxAttribute.Ints("kernel_shape", conv.KernelHeight, conv.KernelWidth),
            OnnxAttribute.Ints("pads", conv.PadTop, conv.PadLeft, conv.PadBottom, conv.PadRight),
            OnnxAttribute.Ints("strides", conv.StrideHeight, conv.StrideWidth),
            OnnxAttribute.Ints("dilations", conv.DilationHeight, conv.DilationWidth),
            OnnxAttribute.Int("group", conv.Groups));
    }

    private static string BatchNorm<T>(OnnxGraphBuilder<T> graph, BatchNorm2d<T> norm, string input)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var shape = graph.ShapeOf(input);
        if (shape.Count < 1 || shape[0] != norm.Channels)
            throw new ArgumentException(
                $"ONNX export: {graph.Describe(norm)} normalises {norm.Channels} channels but gets " +
                $"[N, {string.Join(", ", shape)}].");
        string y = graph.Node(norm, "BatchNormalization",
            [input, graph.Initializer(norm.Weight), graph.Initializer(norm.Bias), graph.Initializer(norm.RunningMean),
             graph.Initializer(norm.RunningVar)], shape,
            OnnxAttribute.Float("epsilon", norm.Epsilon), OnnxAttribute.Float("momentum", 1 - norm.Momentum));
        return norm.Relu ? graph.Node(norm, "Relu", [y], shape) : y;
    }

    private static string Pool<T>(OnnxGraphBuilder<T> graph, Pool2d<T> pool, string input)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (channels, height, width) = Image(graph, pool, input, null);
        var average = pool as AvgPool2d<T>;
        var geometry = Fit(graph, pool, () => average is null
            ? pool.Geometry(1, channels, height, width).Validated()
            : pool.Geometry(1, channels, height, width).ValidatedForAverage());
        List<AttributeProto> attributes =
        [
            OnnxAttribute.Ints("kernel_shape", pool.KernelHeight, pool.KernelWidth),
            OnnxAttribute.Ints("pads", pool.PadTop, pool.PadLeft, pool.PadBottom, pool.PadRight),
            OnnxAttribute.Ints("strides", pool.StrideHeight, pool.StrideWidth),
            OnnxAttribute.Int("ceil_mode", pool.CeilMode ? 1 : 0),
        ];
        if (average is null) attributes.Add(OnnxAttribute.Ints("dilations", pool.DilationHeight, pool.DilationWidth));
        else attributes.Add(OnnxAttribute.Int("count_include_pad", average.CountIncludePad ? 1 : 0));
        return graph.Node(pool, average is null ? "MaxPool" : "AveragePool", [input],
            [channels, geometry.OutHeight, geometry.OutWidth], [.. attributes]);
    }

    private static string GlobalAveragePool<T>(OnnxGraphBuilder<T> graph, GlobalAveragePool<T> pool, string input)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (channels, _, _) = Image(graph, pool, input, null);
        string pooled = graph.Node(pool, "GlobalAveragePool", [input], [channels, 1, 1]);
        return graph.Node(pool, "Flatten", [pooled], [channels], OnnxAttribute.Int("axis", 1));
    }

    private static string Linear<T>(OnnxGraphBuilder<T> graph, Linear<T> linear, string input)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var shape = graph.ShapeOf(input);
        int features = shape.Aggregate(1, (a, d) => a * d);
        if (features != linear.InFeatures)
            throw new ArgumentException(
                $"ONNX export: {graph.Describe(linear)} takes {linear.InFeatures} features but gets " +
                $"[N, {string.Join(", ", shape)}].");
        string flat = graph.Node(linear, "Flatten", [input], [features], OnnxAttribute.Int("axis", 1));
        return graph.Node(linear, "Gemm",
            [flat, graph.Initializer(linear.Weight), graph.Initializer(linear.Bias)], [linear.OutFeatures],
            OnnxAttribute.Int("transB", 1));
    }

    /// <summary>The [C, H, W] of an image value, checked: 3-D per sample, and <paramref name="channels"/> channels
    /// when given.</summary>
    private static (int Channels, int Height, int Width) Image<T>(OnnxGraphBuilder<T> graph, Module<T> module,
        string input, int? channels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var shape = graph.ShapeOf(input);
        if (shape.Count != 3 || (channels is { } c && shape[0] != c))
            throw new ArgumentException(
                $"ONNX export: {graph.Describe(module)} takes [N, {channels?.ToString() ?? "C"}, H, W] images but " +
                $"gets [N, {string.Join(", ", shape)}].");
        return (shape[0], shape[1], shape[2]);
    }

    /// <summary>The layer's geometry for one sample of the value it reads (the kernels' own output-size rule), or
    /// the geometry's check failure re-thrown naming the module.</summary>
    private static TGeometry Fit<T, TGeometry>(OnnxGraphBuilder<T> graph, Module<T> module, Func<TGeometry> geometry)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        try
        {
            return geometry();
        }
        catch (ArgumentException error)
        {
            throw new ArgumentException(
                $"ONNX export: {graph.Describe(module)} does not fit the export's input size: {error.Message}", error);
        }
    }
}
