// ONNX import: an .onnx graph as a Module<T> that runs forward with autograd on any device, so that it can be
// evaluated, differentiated and fine-tuned. Loading checks everything it can before it allocates anything: the
// protobuf parses (Google.Protobuf, from the official onnx.proto), the default-domain opset is in the supported
// range, every node's op type is in the op table (OnnxOps), every attribute is known and valid, and the shapes
// inferred from the declared input shapes agree node by node (extents unknown at load, such as a dynamic batch,
// are checked on every run with the same messages). Only then are the initializers uploaded: floating-point ones
// become parameters (batch-norm running statistics: buffers) named exactly after the initializers — dots make
// child modules, so "layer1.0.conv1.weight" is what NamedParameters, StateDict and safetensors checkpoints say —
// and integer ones (shapes, axes, pads) stay host constants read by the nodes that use them.
using System.Numerics;
using Engine.Core.Modules;
using Engine.Core.Onnx.Proto;
using Google.Protobuf;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Core.Onnx;

/// <summary>Loads ONNX models as trainable modules (<see cref="OnnxModel{T}"/>).</summary>
public static class OnnxModel
{
    /// <summary>The lowest default-domain (ai.onnx) opset the importer reads. Each op has its own lowest opset on
    /// top of this (the version from which its definition is the one the importer implements: BatchNormalization 9,
    /// Add and Mul 7, Reshape 5, GlobalAveragePool and Conv 1 …); every supported op is read from opset 9, the
    /// lowest torch.onnx.export writes.</summary>
    public const int MinOpset = 1;

    /// <summary>The highest default-domain opset the importer reads (ONNX 1.12).</summary>
    public const int MaxOpset = 17;

    /// <summary>The ONNX op types the importer runs, in alphabetical order; each is further limited in the
    /// attributes it accepts (docs/onnx.md).</summary>
    public static IReadOnlyList<string> SupportedOps { get; } =
        OnnxOps<float>.Table.Keys.Append("Constant").Order(StringComparer.Ordinal).ToArray();

    /// <summary>Loads the model at <paramref name="path"/>; external-data files are read relative to its folder.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid ONNX model (truncated or corrupt; the
    /// message names the path), an external-data file is missing, or the graph is invalid (shapes that do not
    /// agree; the message names the node).</exception>
    /// <exception cref="NotSupportedException">The opset, an op type, an attribute value or an element type is not
    /// supported; the message names the node, its op type and the opset.</exception>
    public static OnnxModel<T> Load<T>(string path, Device device) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        return Load<T>(Parse(stream, $"'{path}'"), device, Path.GetDirectoryName(Path.GetFullPath(path)));
    }

    /// <summary>Loads a model from its serialized bytes; external data, if any, is read from
    /// <paramref name="modelFolder"/>.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Load{T}(string, Device)"/>.</exception>
    /// <exception cref="NotSupportedException">As <see cref="Load{T}(string, Device)"/>.</exception>
    public static OnnxModel<T> Load<T>(byte[] bytes, Device device, string? modelFolder = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Load<T>(new MemoryStream(bytes, writable: false), device, modelFolder);

    /// <summary>Loads a model from a stream (read to its end); external data, if any, is read from
    /// <paramref name="modelFolder"/>.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Load{T}(string, Device)"/>.</exception>
    /// <exception cref="NotSupportedException">As <see cref="Load{T}(string, Device)"/>.</exception>
    public static OnnxModel<T> Load<T>(Stream stream, Device device, string? modelFolder = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Load<T>(Parse(stream, "the ONNX model stream"), device, modelFolder);

    /// <summary>Loads a model already parsed (or built with the generated classes of onnx.proto).</summary>
    /// <exception cref="InvalidDataException">As <see cref="Load{T}(string, Device)"/>.</exception>
    /// <exception cref="NotSupportedException">As <see cref="Load{T}(string, Device)"/>.</exception>
    public static OnnxModel<T> Load<T>(ModelProto model, Device device, string? modelFolder = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(device);
        return new OnnxModel<T>(OnnxPlan<T>.Build(model, modelFolder), device);
    }

    private static ModelProto Parse(Stream stream, string source)
    {
        try
        {
            return ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{source} is not a valid ONNX model (truncated or corrupt): {e.Message}", e);
        }
    }
}

/// <summary>An imported ONNX graph as a module: <see cref="Run"/> evaluates the graph on named inputs,
/// <see cref="Forward"/> on the single input of a one-input graph; every op records its backward, so the graph can
/// be differentiated and fine-tuned. Parameters are the floating-point initializers, named exactly as in the
/// graph; batch-norm running statistics are buffers. Loaded in eval mode (ONNX's inference semantics); in
/// training mode its BatchNormalization nodes use batch statistics and update their running statistics, as a
/// PyTorch module's batch norm does.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>; initializers are converted.
/// </typeparam>
public sealed class OnnxModel<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly OnnxPlan<T> _plan;
    private readonly Dictionary<string, Tensor<T>> _state = [];
    private readonly List<Tensor<T>> _constants = [];
    private readonly Dictionary<string, Group> _groups = [];

    internal OnnxModel(OnnxPlan<T> plan, Device device)
    {
        _plan = plan;
        Device = device;
        try
        {
            foreach (var array in plan.FloatConstants)
            {
                var tensor = TensorOf(array);
                TensorScope.Release(tensor);
                _constants.Add(tensor);
                _state[array.Name] = tensor;
            }
            foreach (var array in plan.Initializers)
                _state[array.Name] = Register(array.Name, TensorOf(array), plan.Buffers.Contains(array.Name));
        }
        catch
        {
            Dispose();
            throw;
        }
        Eval();
    }

    /// <summary>The device the parameters live on and the graph runs on.</summary>
    public Device Device { get; }

    /// <summary>The default-domain opset of the model.</summary>
    public int Opset => _plan.Opset;

    /// <summary>Names of the inputs that must be given (graph inputs that are not initializers), in graph order.
    /// </summary>
    public IReadOnlyList<string> InputNames => _plan.Inputs.Where(i => !i.Optional).Select(i => i.Name).ToArray();

    /// <summary>Names of the graph's outputs, in graph order.</summary>
    public IReadOnlyList<string> OutputNames => _plan.Outputs;

    /// <summary>The declared shape of required input <paramref name="name"/> (−1 for an extent fixed only at run
    /// time, such as a dynamic batch).</summary>
    /// <exception cref="KeyNotFoundException">No such input.</exception>
    public IReadOnlyList<int> InputShape(string name) =>
        _plan.Inputs.FirstOrDefault(i => i.Name == name)?.Shape
        ?? throw new KeyNotFoundException($"The ONNX graph has no input '{name}'.");

    /// <summary>Runs a graph with one required input and one output on <paramref name="x"/>.</summary>
    /// <exception cref="InvalidOperationException">The graph has several required inputs or outputs: use
    /// <see cref="Run"/>.</exception>
    /// <exception cref="ArgumentException">As <see cref="Run"/>.</exception>
    /// <exception cref="InvalidDataException">As <see cref="Run"/>.</exception>
    public override Tensor<T> Forward(Tensor<T> x)
    {
        var inputs = InputNames;
        if (inputs.Count != 1 || OutputNames.Count != 1)
            throw new InvalidOperationException(
                $"Forward takes a graph with one input and one output; this one has inputs [{string.Join(", ", inputs)}] " +
                $"and outputs [{string.Join(", ", OutputNames)}]: use Run.");
        return Run(new Dictionary<string, Tensor<T>> { [inputs[0]] = x })[OutputNames[0]];
    }

    /// <summary>Evaluates the graph. <paramref name="inputs"/> holds every required input by name, and may
    /// override initializers that are also graph inputs (as ONNX allows from IR version 4). Intermediate tensors
    /// and outputs belong to the current <see cref="TensorScope"/>; an output that is an initializer is the
    /// parameter itself.</summary>
    /// <returns>Every graph output by name.</returns>
    /// <exception cref="ArgumentException">An input is missing or unknown, on another device, or of a shape that
    /// disagrees with the declared one.</exception>
    /// <exception cref="InvalidDataException">The shapes met at run time do not agree at a node (the message names
    /// the node, as at load).</exception>
    public IReadOnlyDictionary<string, Tensor<T>> Run(IReadOnlyDictionary<string, Tensor<T>> inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var values = new Dictionary<string, Tensor<T>>(_state);
        foreach (var (name, tensor) in inputs)
        {
            var input = _plan.Inputs.FirstOrDefault(i => i.Name == name)
                        ?? throw new ArgumentException(
                            $"The ONNX graph has no input '{name}'; its inputs are [{string.Join(", ", _plan.Inputs.Select(i => i.Name))}].");
            if (!ReferenceEquals(tensor.Device, Device))
                throw new ArgumentException($"Input '{name}' is on {tensor.Device}; the model is on {Device}.");
            var shape = tensor.Shape.ToArray();
            if (shape.Length != input.Shape.Length || shape.Where((d, a) => input.Shape[a] >= 0 && input.Shape[a] != d).Any())
                throw new ArgumentException(
                    $"Input '{name}' has shape {tensor.Shape}; the graph declares {OnnxOps<T>.Format(input.Shape)}.");
            values[name] = tensor;
        }
        foreach (var input in _plan.Inputs)
            if (!values.ContainsKey(input.Name))
                throw new ArgumentException($"The ONNX graph's input '{input.Name}' was not given.");

        foreach (var step in _plan.Steps)
        {
            var args = step.Inputs.Select(name => name is null ? null : values[name]).ToArray();
            Tensor<T>?[] results;
            try
            {
                step.Op.Infer(args.Select(t => t?.Shape.ToArray()).ToArray());
                results = step.Op.Run(args, Training);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{step.Node.Describe}: {e.Message}", e);
            }
            for (int i = 0; i < step.Outputs.Length; i++)
                if (step.Outputs[i] is { } name) values[name] = results[i]!;
        }
        return _plan.Outputs.ToDictionary(name => name, name => values[name]);
    }

    private Tensor<T> TensorOf(OnnxArray array) =>
        Tensor.FromArray(array.To<T>(), array.Dims.Select(d => (int)d).ToArray(), Device);

    /// <summary>Registers an initializer under its dotted name: "a.b.c" is entry "c" of child "b" of child "a".
    /// </summary>
    private Tensor<T> Register(string name, Tensor<T> tensor, bool buffer)
    {
        string[] parts = name.Split('.');
        try
        {
            if (parts.Length == 1) return buffer ? Buffer(name, tensor) : Parameter(name, tensor);
            Group? group = null;
            for (int i = 0; i < parts.Length - 1; i++)
            {
                string path = string.Join('.', parts[..(i + 1)]);
                if (!_groups.TryGetValue(path, out var next))
                {
                    next = new Group();
                    if (group is null) Child(parts[i], next);
                    else group.AddChild(parts[i], next);
                    _groups[path] = next;
                }
                group = next;
            }
            return group!.Add(parts[^1], tensor, buffer);
        }
        catch (ArgumentException e)
        {
            tensor.Dispose();
            throw new InvalidDataException(
                $"ONNX initializer '{name}' cannot be a module entry under its name (an empty part between dots, or " +
                $"a name that is also another initializer's prefix): {e.Message}", e);
        }
    }

    /// <summary>Disposes the parameters, buffers and constants.</summary>
    public override void Dispose()
    {
        base.Dispose();
        foreach (var tensor in _constants) tensor.Dispose();
        _constants.Clear();
    }

    /// <summary>The module behind one dotted prefix of initializer names; it only holds entries.</summary>
    private sealed class Group : Module<T>
    {
        public override Tensor<T> Forward(Tensor<T> x) =>
            throw new InvalidOperationException("A group of ONNX initializers has no forward; run the OnnxModel.");

        public Tensor<T> Add(string name, Tensor<T> tensor, bool buffer) =>
            buffer ? Buffer(name, tensor) : Parameter(name, tensor);

        public void AddChild(string name, Group child) => Child(name, child);
    }
}
