// ONNX export: a module's eval-mode forward pass written as an ONNX model (opset 17, IR version 8) that ONNX Runtime,
// PyTorch (onnx2torch) and other ONNX clients run. The graph reads one input "input" [N, C, H, W] and writes one
// output "logits"; N is symbolic (any batch), C, H and W are fixed at export. Its initializers are the module's
// StateDict under the same names (conv1.weight, layer1.0.bn1.running_mean — torchvision's, for the ResNets); float32
// modules export float32, float64 modules double. The graph is built by walking the module tree: each module writes
// itself (IOnnxExportable) or is written by its Core layer's rule (OnnxExportRules.cs).
using System.Numerics;
using System.Reflection;
using Engine.Core.Modules;
using Engine.Core.Onnx.Proto;
using Engine.Core.Serialization;
using Google.Protobuf;

namespace Engine.Core.Onnx;

/// <summary>Exports a module to ONNX: the forward pass in eval mode (batch norm with its running statistics,
/// whatever the module's current mode, which is left as it was), opset 17, IR version 8, producer "Engine". Input
/// <see cref="InputName"/> [N, C, H, W] with a symbolic batch axis <see cref="BatchAxis"/>, output
/// <see cref="OutputName"/>; initializers named as the module's <see cref="Module{T}.StateDict"/>.</summary>
/// <example><code>
/// using var model = ModelRegistry.Create&lt;float&gt;("resnet50-b", device);
/// OnnxExport.Export(model, 3, 224, 224, "resnet50.onnx");
/// </code></example>
public static class OnnxExport
{
    /// <summary>ONNX operator set the graph is written in (the newest of ONNX 1.12).</summary>
    public const int Opset = 17;

    /// <summary>ONNX IR version of the file (the IR of ONNX 1.12).</summary>
    public const int IrVersion = 8;

    /// <summary>Name of the graph's input, [N, C, H, W].</summary>
    public const string InputName = "input";

    /// <summary>Name of the graph's output ([N, classes] for a classifier).</summary>
    public const string OutputName = "logits";

    /// <summary>Name of the symbolic batch axis of the input and output.</summary>
    public const string BatchAxis = "N";

    /// <summary>Writes <paramref name="model"/> as an ONNX file at <paramref name="path"/> (complete or not at all:
    /// written under a temporary name, then renamed), for inputs of <paramref name="channels"/> ×
    /// <paramref name="height"/> × <paramref name="width"/>.</summary>
    /// <returns>The model written.</returns>
    /// <exception cref="NotSupportedException">A module in the tree has no export rule; the message names its path
    /// and type.</exception>
    /// <exception cref="ArgumentException">The input size does not fit the model (a window larger than its input, a
    /// channel count that does not match); the message names the module.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder of <paramref name="path"/> does not exist.</exception>
    public static ModelProto Export<T>(Module<T> model, int channels, int height, int width, string path)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var proto = ToModelProto(model, channels, height, width);
        AtomicFile.Write(path, temporary =>
        {
            using var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            proto.WriteTo(stream);
            stream.Flush(flushToDisk: true);
        });
        return proto;
    }

    /// <summary>The ONNX model of <paramref name="model"/> for inputs of <paramref name="channels"/> ×
    /// <paramref name="height"/> × <paramref name="width"/>, in memory (<c>ToByteArray()</c> gives the file's
    /// bytes).</summary>
    /// <inheritdoc cref="Export{T}" path="/exception"/>
    public static ModelProto ToModelProto<T>(Module<T> model, int channels, int height, int width)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(model);
        if (channels < 1 || height < 1 || width < 1)
            throw new ArgumentException(
                $"ONNX export: the input size must be positive; got {channels}x{height}x{width}.");
        var graph = new OnnxGraphBuilder<T>(model, InputName, [channels, height, width]);
        string output = graph.Export(model, InputName);
        graph.Rename(output, OutputName, model);

        var proto = graph.Graph;
        proto.Name = model.GetType().Name.Split('`')[0];
        proto.DocString = "Eval-mode forward pass exported by Engine.";
        proto.Input.Add(ValueInfo(InputName, graph.ElementType, [channels, height, width]));
        proto.Output.Add(ValueInfo(OutputName, graph.ElementType, graph.ShapeOf(OutputName)));
        return new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Engine",
            ProducerVersion = typeof(OnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()
                ?.InformationalVersion ?? "",
            Graph = proto,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = Opset } },
        };
    }

    /// <summary>A tensor value of <paramref name="type"/>, [N, <paramref name="sample"/>…] with N symbolic.</summary>
    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, IReadOnlyList<int> sample)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = BatchAxis });
        foreach (int d in sample) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
