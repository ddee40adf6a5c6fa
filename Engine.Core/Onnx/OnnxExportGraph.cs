// The ONNX graph an export builds, and the extension point a module uses to write itself into it.
//   OnnxGraphBuilder  fresh value names ("{module path}/{op type}"), nodes with attributes, initializers named by the
//                     root module's StateDict (conv1.weight, layer1.0.bn1.running_mean), int64 Constant nodes for
//                     shapes and pads, and the per-sample shape [C, H, W] / [F] of every value (the batch axis is
//                     symbolic), so that a rule can size what it writes and a mismatch is found at export time.
//   IOnnxExportable   a module that writes its own nodes (a block, a network); the Core layers' rules are in
//                     OnnxExportRules.cs.
using System.Numerics;
using Engine.Core.Modules;
using Engine.Core.Onnx.Proto;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Core.Onnx;

/// <summary>A module that writes its own eval-mode nodes into an ONNX export: composite modules defined outside Core
/// (residual blocks, networks) implement it; the exporter calls it instead of looking for a built-in rule.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public interface IOnnxExportable<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Writes the module's forward pass in eval mode into <paramref name="graph"/>: nodes that read the
    /// value <paramref name="input"/> (children through <see cref="OnnxGraphBuilder{T}.Export"/>).</summary>
    /// <returns>The name of the value holding the module's output.</returns>
    string ExportOnnx(OnnxGraphBuilder<T> graph, string input);
}

/// <summary>The ONNX graph of one export under construction: nodes in order, initializers named after the exported
/// module's StateDict, and the per-sample shape of every value. Modules write into it through
/// <see cref="IOnnxExportable{T}"/>; <see cref="OnnxExport"/> creates it.</summary>
/// <typeparam name="T">The element type of the exported model: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class OnnxGraphBuilder<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Dictionary<Module<T>, string> _paths = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<Tensor<T>, string> _stateNames = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, int[]> _shapes = [];
    private readonly HashSet<string> _initialized = [];
    private readonly HashSet<string> _names = [];

    internal OnnxGraphBuilder(Module<T> root, string input, int[] inputShape)
    {
        Walk(root, "");
        foreach (var (name, tensor) in root.StateDict())
        {
            _stateNames[tensor] = name;
            _names.Add(name);
        }
        _shapes[input] = inputShape;
        _names.Add(input);
    }

    private void Walk(Module<T> module, string path)
    {
        _paths[module] = path;
        foreach (var (name, child) in module.NamedChildren()) Walk(child, path.Length == 0 ? name : $"{path}.{name}");
    }

    /// <summary>The graph's nodes, in the order they run.</summary>
    internal GraphProto Graph { get; } = new();

    /// <summary>The ONNX element type of <typeparamref name="T"/>.</summary>
    public DataType ElementType { get; } = OnnxTensors.ElementTypeOf<T>();

    /// <summary>The dotted path of <paramref name="module"/> in the exported tree (<c>layer1.0.conv1</c>; empty
    /// for the root).</summary>
    /// <exception cref="ArgumentException">The module is not part of the exported tree.</exception>
    public string PathOf(Module<T> module) =>
        _paths.TryGetValue(module, out string? path)
            ? path
            : throw new ArgumentException($"ONNX export: a {Describe(module)} is not a module of the exported tree.");

    /// <summary>The module's path and type for messages: <c>'layer1.0.conv1' (Conv2d&lt;Single&gt;)</c>.</summary>
    public string Describe(Module<T> module)
    {
        string type = module.GetType().Name.Split('`')[0] + $"<{typeof(T).Name}>";
        return _paths.TryGetValue(module, out string? path)
            ? $"module '{(path.Length == 0 ? "(root)" : path)}' ({type})"
            : $"module {type}";
    }

    /// <summary>The per-sample shape of a value: its dims without the batch axis ([C, H, W] for images).</summary>
    /// <exception cref="ArgumentException">No value of that name has been written.</exception>
    public IReadOnlyList<int> ShapeOf(string value) =>
        _shapes.TryGetValue(value, out int[]? shape)
            ? shape
            : throw new ArgumentException($"ONNX export: no value named '{value}' in the graph.");

    /// <summary>Writes <paramref name="module"/>'s eval-mode forward pass reading <paramref name="input"/>: the
    /// module's own <see cref="IOnnxExportable{T}"/> implementation, else the built-in rule of its Core layer
    /// type.</summary>
    /// <returns>The name of the value holding the module's output.</returns>
    /// <exception cref="NotSupportedException">The module has neither; the message names its path and type.
    /// </exception>
    public string Export(Module<T> module, string input) =>
        module is IOnnxExportable<T> exportable
            ? exportable.ExportOnnx(this, input)
            : OnnxExportRules.Export(this, module, input)
              ?? throw new NotSupportedException(
                  $"ONNX export: {Describe(module)} has no export rule; implement IOnnxExportable<T> on it to write " +
                  "its nodes.");

    /// <summary>Appends a node of <paramref name="opType"/> (default ONNX domain) written for
    /// <paramref name="owner"/>, reading <paramref name="inputs"/>, with one output of per-sample shape
    /// <paramref name="outputShape"/>.</summary>
    /// <returns>The output's fresh name, "{owner path}/{op type}" (made unique with a suffix when taken).</returns>
    public string Node(Module<T> owner, string opType, IReadOnlyList<string> inputs, IReadOnlyList<int> outputShape,
        params AttributeProto[] attributes)
    {
        string path = PathOf(owner);
        string output = FreshName(path.Length == 0 ? opType : $"{path}/{opType}");
        var node = new NodeProto { Name = output, OpType = opType };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        _shapes[output] = [.. outputShape];
        return output;
    }

    /// <summary>Adds <paramref name="tensor"/>, a parameter or buffer of the exported module, as an initializer
    /// named by its StateDict name (once, however often it is read).</summary>
    /// <returns>Its name: <c>conv1.weight</c>, <c>layer1.0.bn1.running_var</c>.</returns>
    /// <exception cref="ArgumentException">The tensor is not in the exported module's StateDict.</exception>
    public string Initializer(Tensor<T> tensor)
    {
        if (!_stateNames.TryGetValue(tensor, out string? name))
            throw new ArgumentException(
                $"ONNX export: a tensor of shape {tensor.Shape} is not a parameter or buffer of the exported module.");
        if (_initialized.Add(name))
        {
            T[] values = tensor.ToArray();
            Graph.Initializer.Add(OnnxTensors.Create<T>(name, ElementType,
                tensor.Shape.ToArray().Select(d => (long)d).ToArray(), values));
        }
        return name;
    }

    /// <summary>Appends a Constant node holding the int64 vector <paramref name="values"/> (slice bounds, pads)
    /// for <paramref name="owner"/>; constants are nodes, so that the initializers are exactly the StateDict.</summary>
    /// <returns>The constant's fresh name, "{owner path}/{label}".</returns>
    public string Constant(Module<T> owner, string label, IReadOnlyList<long> values)
    {
        string path = PathOf(owner);
        string output = FreshName(path.Length == 0 ? label : $"{path}/{label}");
        var value = OnnxTensors.Create<long>(output, DataType.Int64, [values.Count], values.ToArray());
        var node = new NodeProto { Name = output, OpType = "Constant" };
        node.Output.Add(output);
        node.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = value });
        Graph.Node.Add(node);
        _shapes[output] = [values.Count];
        return output;
    }

    private string FreshName(string stem)
    {
        string name = stem;
        for (int i = 1; !_names.Add(name); i++) name = $"{stem}_{i}";
        return name;
    }

    /// <summary>Renames the value <paramref name="value"/> to <paramref name="name"/> (the graph's output), in the
    /// node that writes it and every node that reads it; an Identity node copies it when no node writes it (the
    /// graph's input).</summary>
    internal void Rename(string value, string name, Module<T> root)
    {
        if (!Graph.Node.Any(n => n.Output.Contains(value))) value = Node(root, "Identity", [value], ShapeOf(value));
        if (!_names.Add(name)) throw new ArgumentException($"ONNX export: the name '{name}' is taken in the graph.");
        foreach (var node in Graph.Node)
        {
            for (int i = 0; i < node.Input.Count; i++) if (node.Input[i] == value) node.Input[i] = name;
            for (int i = 0; i < node.Output.Count; i++) if (node.Output[i] == value) node.Output[i] = name;
        }
        _shapes[name] = _shapes[value];
    }
}

/// <summary>ONNX node attributes, built by type.</summary>
public static class OnnxAttribute
{
    /// <summary>An INT attribute.</summary>
    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>An INTS attribute.</summary>
    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    /// <summary>A FLOAT attribute (ONNX stores float32 whatever the model's element type).</summary>
    public static AttributeProto Float(string name, double value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = (float)value };
}
