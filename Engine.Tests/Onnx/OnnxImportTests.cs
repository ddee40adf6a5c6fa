// ONNX import beyond the conformance data: a small network built with the generated onnx.proto classes (conv,
// batch norm, relu, pad, slice, global pooling, flatten, gemm; initializers with torchvision-style dotted names)
// is fine-tuned, checkpointed by its initializer names and gradient-checked on every device; and every kind of bad
// model is refused with a message that says what and where, leaving nothing allocated.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Onnx;
using Engine.Core.Onnx.Proto;
using Engine.Core.Optim;
using Engine.Core.Serialization;
using Google.Protobuf;
using NUnit.Framework;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Tests.Onnx;

/// <summary>Small ONNX graphs written with the generated classes.</summary>
internal static class OnnxGraphs
{
    public static readonly string[] Parameters =
        ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "fc.weight", "fc.bias"];

    public static readonly string[] Buffers = ["bn1.running_mean", "bn1.running_var"];

    /// <summary>x [N, 2, 5, 5] → Conv 3x3 pad 1 → BatchNormalization → Relu → MaxPool 3x3/2 pad 1 (as a ResNet
    /// stem) → m + Relu(m) → Pad 1 → Slice (drops the pad's first row and column) → GlobalAveragePool → Flatten →
    /// Gemm (transB) → y [N, 4]; the batch is symbolic.</summary>
    public static ModelProto SmallConvNet(int opset = 13, int weightChannels = 2)
    {
        var graph = new GraphProto { Name = "small" };
        graph.Input.Add(Input("x", "N", 2, 5, 5));
        graph.Output.Add(Input("y", "N", 4));
        Initializer(graph, "conv1.weight", [3, weightChannels, 3, 3], 1);
        Initializer(graph, "conv1.bias", [3], 2);
        Initializer(graph, "bn1.weight", [3], 3, offset: 1);
        Initializer(graph, "bn1.bias", [3], 4);
        Initializer(graph, "bn1.running_mean", [3], 5);
        Initializer(graph, "bn1.running_var", [3], 6, offset: 1.5);
        Initializer(graph, "fc.weight", [4, 3], 7);
        Initializer(graph, "fc.bias", [4], 8);
        graph.Initializer.Add(OnnxTensors.Create<long>("pads", DataType.Int64, [8], [0, 0, 1, 1, 0, 0, 1, 1]));
        graph.Initializer.Add(OnnxTensors.Create<long>("ends", DataType.Int64, [2], [long.MaxValue, long.MaxValue]));
        var conv = Node("Conv", "conv1", ["x", "conv1.weight", "conv1.bias"], ["c"]);
        conv.Attribute.Add(new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, 1, 1, 1 } });
        graph.Node.Add(conv);
        graph.Node.Add(Node("BatchNormalization", "bn1", ["c", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"], ["b"]));
        graph.Node.Add(Node("Relu", "relu", ["b"], ["r"]));
        var pool = Node("MaxPool", "pool1", ["r"], ["m"]);
        pool.Attribute.Add(new AttributeProto { Name = "kernel_shape", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 3, 3 } });
        pool.Attribute.Add(new AttributeProto { Name = "strides", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 2, 2 } });
        pool.Attribute.Add(new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, 1, 1, 1 } });
        graph.Node.Add(pool);
        graph.Node.Add(Node("Relu", "relu2", ["m"], ["m2"]));
        graph.Node.Add(Node("Add", "residual", ["m", "m2"], ["a"]));
        graph.Node.Add(Node("Pad", "pad", ["a", "pads"], ["p"]));
        var starts = Node("Constant", "starts", [], ["starts"]);
        starts.Attribute.Add(new AttributeProto
        {
            Name = "value", Type = AttributeProto.Types.AttributeType.Tensor,
            T = OnnxTensors.Create<long>("starts", DataType.Int64, [2], [1, 1]),
        });
        graph.Node.Add(starts);
        var axes = Node("Constant", "axes", [], ["axes"]);
        axes.Attribute.Add(new AttributeProto { Name = "value_ints", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 2, 3 } });
        graph.Node.Add(axes);
        graph.Node.Add(Node("Slice", "slice", ["p", "starts", "ends", "axes"], ["s"]));
        graph.Node.Add(Node("GlobalAveragePool", "pool", ["s"], ["g"]));
        graph.Node.Add(Node("Flatten", "flatten", ["g"], ["f"]));
        var fc = Node("Gemm", "fc", ["f", "fc.weight", "fc.bias"], ["y"]);
        fc.Attribute.Add(new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        graph.Node.Add(fc);
        return Model(graph, opset);
    }

    public static ModelProto Model(GraphProto graph, int opset)
    {
        var model = new ModelProto { IrVersion = 8, Graph = graph, ProducerName = "Engine.Tests" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model;
    }

    public static NodeProto Node(string op, string name, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    /// <summary>A float tensor value info; a string extent is symbolic.</summary>
    public static ValueInfoProto Input(string name, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string symbol ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = (int)d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float, Shape = shape } },
        };
    }

    public static void Initializer(GraphProto graph, string name, long[] dims, int seed, double offset = 0)
    {
        var random = new Random(seed);
        var values = new float[dims.Aggregate(1L, (a, d) => a * d)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(offset + random.NextDouble() - 0.5);
        graph.Initializer.Add(OnnxTensors.Create<float>(name, DataType.Float, dims, values));
    }
}

/// <summary>Bad models: each refused with a clear message, nothing left allocated.</summary>
public class OnnxImportTests
{
    private Device _device = null!;
    private string _folder = null!;

    [SetUp]
    public void Create()
    {
        _device = Device.Create("cpu");
        _folder = Directory.CreateTempSubdirectory("onnx-import").FullName;
    }

    [TearDown]
    public void Remove()
    {
        _device.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    private string Save(ModelProto model, string name = "model.onnx")
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private TException Refused<TException>(ModelProto model) where TException : Exception
    {
        long live = _device.LiveBuffers;
        var e = Assert.Throws<TException>(() => OnnxModel.Load<float>(model, _device))!;
        Assert.That(_device.LiveBuffers, Is.EqualTo(live), "a refused model left tensors allocated");
        return e;
    }

    [Test]
    public void TheSmallNetLoadsWithDottedNamesAndADynamicBatch()
    {
        using var model = OnnxModel.Load<float>(Save(OnnxGraphs.SmallConvNet()), _device);
        Assert.That(model.NamedParameters().Select(p => p.Name), Is.EquivalentTo(OnnxGraphs.Parameters));
        Assert.That(model.NamedBuffers().Select(p => p.Name), Is.EquivalentTo(OnnxGraphs.Buffers));
        Assert.That(model.InputShape("x"), Is.EqualTo(new[] { -1, 2, 5, 5 }));
        using var scope = TensorScope.Begin();
        foreach (int batch in new[] { 1, 3 })
            Assert.That(model.Forward(Tensor.RandomNormal<float>([batch, 2, 5, 5], batch, device: _device)).Shape,
                Is.EqualTo(new Shape(batch, 4)));
    }

    [Test]
    public void TruncatedFileIsRefusedNamingThePath()
    {
        byte[] bytes = OnnxGraphs.SmallConvNet().ToByteArray();
        string path = Path.Combine(_folder, "truncated.onnx");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => OnnxModel.Load<float>(path, _device));
        Assert.That(e!.Message, Does.Contain(path).And.Contain("not a valid ONNX model"));
    }

    [Test]
    public void CorruptBytesAreRefusedNamingThePath()
    {
        byte[] bytes = OnnxGraphs.SmallConvNet().ToByteArray();
        Array.Fill(bytes, (byte)0xFF, 0, 16);
        string path = Path.Combine(_folder, "corrupt.onnx");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => OnnxModel.Load<float>(path, _device));
        Assert.That(e!.Message, Does.Contain(path).And.Contain("not a valid ONNX model"));
    }

    [Test]
    public void UnsupportedOpIsNamedWithNodeIndexAndOpset()
    {
        var model = OnnxGraphs.SmallConvNet();
        model.Graph.Node.Insert(2, OnnxGraphs.Node("Resize", "Resize_7", ["b"], ["z"]));
        var e = Refused<NotSupportedException>(model);
        Assert.That(e.Message, Does.Contain("ONNX node 'Resize_7' (#2): op 'Resize' (opset 13) is not supported")
            .And.Contain("supported: Add, AveragePool"));
    }

    [Test]
    public void UnsupportedAttributeValueIsNamed()
    {
        var model = OnnxGraphs.SmallConvNet();
        var conv = model.Graph.Node[0];
        conv.Attribute.Remove(conv.Attribute.FirstOrDefault(a => a.Name == "pads"));
        conv.Attribute.Add(new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 3, 3, 3, 3 } });
        var e = Refused<NotSupportedException>(model);
        Assert.That(e.Message, Does.Contain("'conv1' (#0): op 'Conv' (opset 13): padding [3, 3, 3, 3] as large as the kernel"));
    }

    [Test]
    public void MissingExternalDataFileIsRefusedNamingTheTensor()
    {
        var model = OnnxGraphs.SmallConvNet();
        var weight = model.Graph.Initializer.First(t => t.Name == "fc.weight");
        weight.ClearRawData();
        weight.DataLocation = TensorProto.Types.DataLocation.External;
        weight.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "fc.bin" });
        string path = Save(model);
        long live = _device.LiveBuffers;
        var e = Assert.Throws<InvalidDataException>(() => OnnxModel.Load<float>(path, _device));
        Assert.That(e!.Message, Does.Contain("fc.weight").And.Contain("fc.bin").And.Contain("does not exist"));
        Assert.That(_device.LiveBuffers, Is.EqualTo(live));
    }

    [Test]
    public void ConvWeightThatDisagreesWithTheInputChannelsIsRefusedAtLoad()
    {
        var e = Refused<InvalidDataException>(OnnxGraphs.SmallConvNet(weightChannels: 4));
        Assert.That(e.Message, Does.Contain("'conv1' (#0): op 'Conv' (opset 13): weight W [3, 4, 3, 3] expects 4 " +
                                            "input channels; input X [?, 2, 5, 5] has 2."));
    }

    [Test]
    public void ShapesThatDependOnTheBatchAreCheckedOnEveryRun()
    {
        var graph = new GraphProto { Name = "bias" };
        graph.Input.Add(OnnxGraphs.Input("x", "N", 3));
        graph.Output.Add(OnnxGraphs.Input("y", "N", 3));
        OnnxGraphs.Initializer(graph, "bias", [2, 3], 1);
        graph.Node.Add(OnnxGraphs.Node("Add", "add_bias", ["x", "bias"], ["y"]));
        using var model = OnnxModel.Load<float>(OnnxGraphs.Model(graph, 14), _device);
        using var scope = TensorScope.Begin();
        Assert.That(model.Forward(Tensor.Ones<float>([2, 3], _device)).Shape, Is.EqualTo(new Shape(2, 3)));
        Assert.That(model.Forward(Tensor.Ones<float>([1, 3], _device)).Shape, Is.EqualTo(new Shape(2, 3)));
        var e = Assert.Throws<InvalidDataException>(() => model.Forward(Tensor.Ones<float>([4, 3], _device)));
        Assert.That(e!.Message, Does.Contain("'add_bias' (#0): op 'Add' (opset 14): shapes [4, 3] and [2, 3] do not broadcast."));
        Assert.That(Assert.Throws<ArgumentException>(() => model.Forward(Tensor.Ones<float>([4, 2], _device)))!.Message,
            Does.Contain("Input 'x' has shape [4, 2]; the graph declares [?, 3]."));
    }

    [TestCase(0, "opset 0 (default domain) is not supported: the importer reads opsets 1 to 17")]
    [TestCase(18, "opset 18 (default domain) is not supported: the importer reads opsets 1 to 17")]
    [TestCase(8, "'bn1' (#1): op 'BatchNormalization' (opset 8) is not supported below opset 9")]
    public void OpsetOutsideTheSupportedRangeIsRefused(int opset, string message)
    {
        var e = Refused<NotSupportedException>(OnnxGraphs.SmallConvNet(opset));
        Assert.That(e.Message, Does.Contain(message));
    }

    [Test]
    public void InitializerNamesThatCannotBeModuleEntriesAreRefusedWithNothingLeft()
    {
        var model = OnnxGraphs.SmallConvNet();
        OnnxGraphs.Initializer(model.Graph, "fc", [1], 9);
        var e = Refused<InvalidDataException>(model);
        Assert.That(e.Message, Does.Contain("ONNX initializer 'fc"));
    }

    [Test]
    public void IntegerGraphInputsAreRefused()
    {
        var model = OnnxGraphs.SmallConvNet();
        model.Graph.Input[0].Type.TensorType.ElemType = (int)DataType.Uint8;
        Assert.That(Refused<NotSupportedException>(model).Message,
            Does.Contain("input 'x' has element type Uint8; only FLOAT and DOUBLE"));
    }
}

/// <summary>An imported graph trains like any module, on every device.</summary>
public class OnnxFineTuningTests(string kind) : DeviceFixture(kind)
{
    [Test]
    public void OneSgdStepChangesTheParametersAndSafetensorsRoundTripsByInitializerNames()
    {
        string folder = Directory.CreateTempSubdirectory("onnx-finetune").FullName;
        try
        {
            using var model = OnnxModel.Load<float>(OnnxGraphs.SmallConvNet(), Device);
            var before = model.StateDict().ToDictionary(e => e.Name, e => e.Tensor.ToArray());
            model.Train();
            using var sgd = new Sgd<float>(model.Parameters(), learningRate: 0.1);
            var x = Normal<float>([4, 2, 5, 5], 11);
            var loss = model.Forward(x).CrossEntropy([0, 1, 2, 3]);
            loss.Backward();
            foreach (var (name, parameter) in model.NamedParameters())
                Assert.That(parameter.Grad, Is.Not.Null, $"{name} received no gradient");
            sgd.Step();
            // conv1.bias alone stays: batch norm in training mode subtracts the batch mean, so its gradient is 0.
            Assert.That(model.NamedParameters().First(p => p.Name == "conv1.bias").Tensor.Grad!.ToArray(),
                Is.EqualTo(new float[3]).Within(1e-5));
            foreach (var (name, tensor) in model.StateDict().Where(e => e.Name != "conv1.bias"))
                Assert.That(tensor.ToArray(), Is.Not.EqualTo(before[name]), $"{name} did not change");

            model.Eval();
            string path = Path.Combine(folder, "tuned.safetensors");
            SafeTensors.Save(model, path);
            Assert.That(SafeTensors.ReadHeader(path).Tensors.Select(e => e.Name),
                Is.EquivalentTo(OnnxGraphs.Parameters.Concat(OnnxGraphs.Buffers)));
            using var reloaded = OnnxModel.Load<float>(OnnxGraphs.SmallConvNet(), Device);
            Assert.That(reloaded.Forward(x).ToArray(), Is.Not.EqualTo(model.Forward(x).ToArray()));
            SafeTensors.Load(reloaded, path);
            Assert.That(reloaded.Forward(x).ToArray(), Is.EqualTo(model.Forward(x).ToArray()));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Test]
    public void GradientsThroughAnImportedGraphMatchFiniteDifferences()
    {
        using var model = OnnxModel.Load<double>(OnnxGraphs.SmallConvNet(), Device);
        var x = Variable([2, 2, 5, 5], 5);
        var named = model.NamedParameters().ToArray();
        GradCheck.Run(() => model.Forward(x), [x, .. named.Select(p => p.Tensor)],
            new GradCheckOptions { InputNames = ["x", .. named.Select(p => p.Name)] }).EnsurePassed();
    }

    [Test]
    public void TrainingModeBatchNormUsesBatchStatisticsAndUpdatesTheRunningOnes()
    {
        using var model = OnnxModel.Load<float>(OnnxGraphs.SmallConvNet(), Device);
        var mean = model.NamedBuffers().First(b => b.Name == "bn1.running_mean").Tensor;
        var before = mean.ToArray();
        var x = Normal<float>([3, 2, 5, 5], 2);
        var eval = model.Forward(x).ToArray();
        Assert.That(mean.ToArray(), Is.EqualTo(before), "eval mode changed the running mean");
        model.Train();
        using (GradMode.NoGrad())
            Assert.That(model.Forward(x).ToArray(), Is.Not.EqualTo(eval));
        Assert.That(mean.ToArray(), Is.Not.EqualTo(before), "training mode left the running mean alone");
    }
}
