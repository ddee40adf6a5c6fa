// One ONNX node as the importer's op table sees it: its attributes read with their types checked and every
// attribute it does not know refused, its constant (integer) inputs, and the exceptions that name the node, its
// index, op type and opset — so that every message about a graph says where in the graph the problem is.
using Engine.Core.Onnx.Proto;
using AttributeType = Engine.Core.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace Engine.Core.Onnx;

/// <summary>A node being compiled: attribute access, constant inputs, and exceptions that name the node.</summary>
internal sealed class OnnxNode(NodeProto proto, int index, int opset, Func<string, OnnxArray?> constant)
{
    public NodeProto Proto { get; } = proto;

    /// <summary>The op type, e.g. "Conv".</summary>
    public string Op => Proto.OpType;

    /// <summary>The default domain's opset the model imports.</summary>
    public int Opset { get; } = opset;

    /// <summary>"ONNX node 'conv1' (#3): op 'Conv' (opset 13)", the start of every message about this node.</summary>
    public string Describe =>
        $"ONNX node '{(Proto.Name.Length > 0 ? Proto.Name : Proto.Output.FirstOrDefault() ?? "")}' (#{index}): " +
        $"op '{(Proto.Domain is "" or "ai.onnx" ? Op : $"{Proto.Domain}.{Op}")}' (opset {Opset})";

    /// <summary>Something the graph may legally say that the importer does not do.</summary>
    public NotSupportedException Unsupported(string what) => new($"{Describe}: {what} is not supported.");

    /// <summary>Something the graph says that is not valid ONNX (shapes that do not agree, missing inputs).</summary>
    public InvalidDataException Invalid(string what) => new($"{Describe}: {what}");

    /// <summary>Number of inputs, trailing empty names (absent optional inputs) included.</summary>
    public int InputCount => Proto.Input.Count;

    /// <summary>Whether optional input <paramref name="i"/> is given.</summary>
    public bool HasInput(int i) => i < Proto.Input.Count && Proto.Input[i].Length > 0;

    /// <summary>Whether optional output <paramref name="i"/> is used.</summary>
    public bool HasOutput(int i) => i < Proto.Output.Count && Proto.Output[i].Length > 0;

    /// <summary>Refuses fewer than <paramref name="min"/> or more than <paramref name="max"/> inputs, and
    /// outputs past the first <paramref name="maxOutputs"/>.</summary>
    public void Arity(int min, int max, int maxOutputs = 1)
    {
        for (int i = 0; i < min; i++)
            if (!HasInput(i)) throw Invalid($"input {i} is required.");
        if (Proto.Input.Count > max) throw Invalid($"{Proto.Input.Count} inputs given; it takes at most {max}.");
        for (int i = maxOutputs; i < Proto.Output.Count; i++)
            if (HasOutput(i)) throw Unsupported($"output {i} ('{Proto.Output[i]}')");
    }

    /// <summary>Refuses any attribute not in <paramref name="known"/>.</summary>
    public void Attributes(params string[] known)
    {
        foreach (var attribute in Proto.Attribute)
            if (!known.Contains(attribute.Name)) throw Unsupported($"attribute '{attribute.Name}'");
    }

    private AttributeProto? Find(string name, AttributeType type)
    {
        var attribute = Proto.Attribute.FirstOrDefault(a => a.Name == name);
        if (attribute is null) return null;
        if (attribute.HasRefAttrName) throw Unsupported($"attribute '{name}' referring to a function attribute");
        if (attribute.Type != type) throw Invalid($"attribute '{name}' is {attribute.Type}, not {type}.");
        return attribute;
    }

    /// <summary>An INT attribute, or <paramref name="fallback"/> when absent.</summary>
    public long Int(string name, long fallback) => Find(name, AttributeType.Int)?.I ?? fallback;

    /// <summary>A FLOAT attribute, or <paramref name="fallback"/> when absent.</summary>
    public float Float(string name, float fallback) => Find(name, AttributeType.Float)?.F ?? fallback;

    /// <summary>A STRING attribute, or <paramref name="fallback"/> when absent.</summary>
    public string String(string name, string fallback) =>
        Find(name, AttributeType.String)?.S.ToStringUtf8() ?? fallback;

    /// <summary>An INTS attribute, or null when absent.</summary>
    public long[]? Ints(string name) => Find(name, AttributeType.Ints)?.Ints.ToArray();

    /// <summary>A TENSOR attribute, or null when absent.</summary>
    public TensorProto? TensorAttribute(string name) => Find(name, AttributeType.Tensor)?.T;

    /// <summary>The integer values of constant input <paramref name="i"/> (an initializer or a Constant node's
    /// output), or null when the optional input is absent.</summary>
    /// <exception cref="NotSupportedException">The input is computed by the graph at run time.</exception>
    public long[]? ConstantInts(int i, string role)
    {
        if (!HasInput(i)) return null;
        var array = constant(Proto.Input[i])
                    ?? throw Unsupported($"input '{role}' ('{Proto.Input[i]}') computed at run time (it must be an " +
                                         "initializer or a Constant node's output)");
        try { return array.ToInt64(); }
        catch (InvalidDataException e) { throw Invalid($"input '{role}': {e.Message}"); }
    }
}
