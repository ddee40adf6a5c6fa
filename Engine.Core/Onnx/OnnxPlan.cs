// The load-time half of ONNX import: everything about a graph that can be checked without a device, in the
// order a reader would check it — opset, op types, then node by node the inputs' existence, attributes and
// shapes — producing the plan an OnnxModel runs: the initializers read to host arrays (which of them are buffers),
// the graph inputs with their declared shapes, and the compiled nodes in order. Nothing here touches a device, so a
// model that fails any check leaves nothing behind.
using System.Numerics;
using Engine.Core.Onnx.Proto;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Core.Onnx;

/// <summary>A graph input: declared shape (−1 for a symbolic or missing extent), and whether an initializer
/// stands in for it.</summary>
internal sealed record OnnxInput(string Name, int[] Shape, bool Optional);

/// <summary>A compiled node: its float inputs (null: absent or read as a constant) and outputs (null: unused).</summary>
internal sealed record OnnxStep<T>(OnnxNode Node, OnnxOp<T> Op, string?[] Inputs, string?[] Outputs)
    where T : unmanaged, IFloatingPointIeee754<T>;

internal sealed class OnnxPlan<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public required int Opset { get; init; }
    public required List<OnnxArray> Initializers { get; init; }
    public required HashSet<string> Buffers { get; init; }
    public required List<OnnxArray> FloatConstants { get; init; }
    public required List<OnnxInput> Inputs { get; init; }
    public required List<OnnxStep<T>> Steps { get; init; }
    public required List<string> Outputs { get; init; }

    private static bool IsFloat(DataType type) => type is DataType.Float or DataType.Double;

    public static OnnxPlan<T> Build(ModelProto model, string? modelFolder)
    {
        var graph = model.Graph ?? throw new InvalidDataException("The ONNX model holds no graph.");
        var opsets = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").ToArray();
        if (opsets.Length != 1)
            throw new InvalidDataException(
                $"The ONNX model imports the default domain (ai.onnx) {opsets.Length} times; it must import it once.");
        if (opsets[0].Version < OnnxModel.MinOpset || opsets[0].Version > OnnxModel.MaxOpset)
            throw new NotSupportedException(
                $"The ONNX model's opset {opsets[0].Version} (default domain) is not supported: the importer reads " +
                $"opsets {OnnxModel.MinOpset} to {OnnxModel.MaxOpset}.");
        int opset = (int)opsets[0].Version;
        if (graph.SparseInitializer.Count > 0)
            throw new NotSupportedException($"The ONNX graph's sparse initializer '{graph.SparseInitializer[0].Values?.Name}' is not supported.");

        // Op types first: a graph of unsupported ops is refused before any of its data is read.
        for (int i = 0; i < graph.Node.Count; i++)
        {
            var node = new OnnxNode(graph.Node[i], i, opset, _ => null);
            if (node.Proto.Domain is not ("" or "ai.onnx") ||
                (node.Op != "Constant" && !OnnxOps<T>.Table.ContainsKey(node.Op)))
                throw new NotSupportedException(
                    $"{node.Describe} is not supported; supported: {string.Join(", ", OnnxModel.SupportedOps)}.");
            if (OnnxOps<T>.Table.TryGetValue(node.Op, out var entry) && opset < entry.Since)
                throw new NotSupportedException(
                    $"{node.Describe} is not supported below opset {entry.Since}, where its current definition begins.");
        }

        var floats = new Dictionary<string, int[]?>();        // float values known so far, with their shapes
        var integers = new Dictionary<string, OnnxArray>();    // integer constants
        var initializers = new List<OnnxArray>();
        foreach (var tensor in graph.Initializer)
        {
            var array = OnnxTensors.Read(tensor, modelFolder);
            if (floats.ContainsKey(array.Name) || integers.ContainsKey(array.Name))
                throw new InvalidDataException($"The ONNX graph holds two initializers named '{array.Name}'.");
            if (IsFloat(array.ElementType))
            {
                initializers.Add(array);
                floats[array.Name] = array.Dims.Select(d => (int)d).ToArray();
            }
            else
            {
                integers[array.Name] = array;
            }
        }

        var inputs = new List<OnnxInput>();
        foreach (var input in graph.Input)
        {
            if (integers.ContainsKey(input.Name)) continue;
            if (floats.TryGetValue(input.Name, out var dims))
            {
                inputs.Add(new OnnxInput(input.Name, dims!, Optional: true));
                continue;
            }
            var type = input.Type?.TensorType
                       ?? throw new NotSupportedException($"The ONNX graph's input '{input.Name}' is not a tensor.");
            if (!IsFloat((DataType)type.ElemType))
                throw new NotSupportedException(
                    $"The ONNX graph's input '{input.Name}' has element type {(DataType)type.ElemType}; only FLOAT and " +
                    "DOUBLE inputs are supported.");
            var shape = type.Shape?.Dim.Select(d => d.HasDimValue && d.DimValue <= int.MaxValue ? (int)d.DimValue : -1).ToArray();
            if (shape is null)
                throw new NotSupportedException($"The ONNX graph's input '{input.Name}' declares no rank; a rank is required.");
            inputs.Add(new OnnxInput(input.Name, shape, Optional: false));
            floats[input.Name] = shape;
        }

        var buffers = new HashSet<string>();
        var constants = new List<OnnxArray>();
        var steps = new List<OnnxStep<T>>();
        for (int i = 0; i < graph.Node.Count; i++)
        {
            var proto = graph.Node[i];
            var node = new OnnxNode(proto, i, opset, name => integers.GetValueOrDefault(name));
            for (int k = 0; k < proto.Input.Count; k++)
                if (proto.Input[k].Length > 0 && !floats.ContainsKey(proto.Input[k]) && !integers.ContainsKey(proto.Input[k]))
                    throw node.Invalid($"input '{proto.Input[k]}' is not a graph input, an initializer or an earlier node's output.");
            foreach (string output in proto.Output)
                if (output.Length > 0 && (floats.ContainsKey(output) || integers.ContainsKey(output)))
                    throw node.Invalid($"output '{output}' is already defined.");

            if (proto.OpType == "Constant")
            {
                var array = ConstantValue(node);
                if (IsFloat(array.ElementType)) { constants.Add(array); floats[array.Name] = array.Dims.Select(d => (int)d).ToArray(); }
                else integers[array.Name] = array;
                continue;
            }

            var op = OnnxOps<T>.Table[proto.OpType].Compile(node);
            var stepInputs = new string?[proto.Input.Count];
            for (int k = 0; k < proto.Input.Count; k++)
            {
                string name = proto.Input[k];
                if (name.Length == 0 || op.ConstantInputs.Contains(k)) continue;
                if (!floats.ContainsKey(name))
                    throw node.Unsupported($"integer tensor '{name}' as input {k}");
                stepInputs[k] = name;
            }
            var shapes = stepInputs.Select(name => name is null ? null : floats[name]).ToArray();
            int[]?[] outputShapes = shapes.Where((s, k) => stepInputs[k] is not null).Any(s => s is null)
                ? new int[]?[proto.Output.Count]
                : op.Infer(shapes);
            var stepOutputs = new string?[proto.Output.Count];
            for (int k = 0; k < proto.Output.Count; k++)
                if (proto.Output[k].Length > 0)
                {
                    stepOutputs[k] = proto.Output[k];
                    floats[proto.Output[k]] = outputShapes[k];
                }
            if (proto.OpType == "BatchNormalization")
                foreach (int k in new[] { 3, 4 })
                    if (initializers.Any(a => a.Name == proto.Input[k])) buffers.Add(proto.Input[k]);
            steps.Add(new OnnxStep<T>(node, op, stepInputs, stepOutputs));
        }

        var outputs = new List<string>();
        foreach (var output in graph.Output)
        {
            if (!floats.TryGetValue(output.Name, out var inferred))
                throw new InvalidDataException(
                    $"The ONNX graph's output '{output.Name}' is not produced by any node, initializer or input " +
                    "(integer-valued outputs are not supported).");
            var declared = output.Type?.TensorType?.Shape?.Dim;
            if (declared is not null && inferred is not null &&
                (declared.Count != inferred.Length ||
                 declared.Where((d, a) => d.HasDimValue && inferred[a] >= 0 && d.DimValue != inferred[a]).Any()))
                throw new InvalidDataException(
                    $"The ONNX graph declares output '{output.Name}' as [{string.Join(", ", declared.Select(d => d.HasDimValue ? d.DimValue.ToString() : "?"))}], " +
                    $"but its nodes give {OnnxOps<T>.Format(inferred)}.");
            outputs.Add(output.Name);
        }
        return new OnnxPlan<T>
        {
            Opset = opset, Initializers = initializers, Buffers = buffers, FloatConstants = constants, Inputs = inputs,
            Steps = steps, Outputs = outputs,
        };
    }

    /// <summary>The tensor a Constant node holds (value, or from opset 12 value_float(s) / value_int(s)).</summary>
    private static OnnxArray ConstantValue(OnnxNode node)
    {
        node.Arity(0, 0);
        node.Attributes("value", "value_float", "value_floats", "value_int", "value_ints");
        if (node.Proto.Attribute.Count != 1) throw node.Invalid("exactly one value attribute is required.");
        string name = node.Proto.Output.FirstOrDefault() ?? throw node.Invalid("it has no output.");
        if (node.TensorAttribute("value") is { } tensor)
        {
            var read = OnnxTensors.Read(tensor, null);
            return read with { Name = name };
        }
        if (node.Ints("value_ints") is { } ints)
            return new OnnxArray(name, DataType.Int64, [ints.Length], ints.Select(v => (double)v).ToArray());
        if (node.Proto.Attribute[0].Name == "value_int")
            return new OnnxArray(name, DataType.Int64, [], [node.Int("value_int", 0)]);
        if (node.Proto.Attribute[0].Name == "value_float")
            return new OnnxArray(name, DataType.Float, [], [node.Float("value_float", 0)]);
        var floats = node.Proto.Attribute[0].Floats.Select(v => (double)v).ToArray();
        return new OnnxArray(name, DataType.Float, [floats.Length], floats);
    }
}
