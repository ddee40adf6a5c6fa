// Every registry model exported to ONNX and run by ONNX Runtime on the same random input as the engine: the logits
// agree within 1e-4. The batch norms first get random running statistics and affine parameters (at their initial
// values batch norm is nearly the identity and the comparison would prove little), and the model is left in training
// mode while it is exported (the export is always the eval-mode graph). Runs on the managed CPU backend only: these
// tests check the exporter, not the backends.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Core.Onnx;
using Engine.Core.Onnx.Proto;
using Engine.Models;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using DoubleTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<double>;
using NUnit.Framework;

namespace Engine.Tests.Onnx.Runtime;

[TestFixture]
public sealed class OnnxExportTests : TempFolderFixture
{
    private Device _device = null!;

    [OneTimeSetUp]
    public void CreateDevice() => _device = Device.Create("cpu");

    [OneTimeTearDown]
    public void DisposeDevice() => _device.Dispose();

    /// <summary>CIFAR nets at their 32×32, batch 2; ImageNet nets at batch 1: ResNet-18 and the three ResNet-50s at
    /// their 224×224, and the ResNet-50s again at 64×64 (a smaller, deeper-reaching case: 2×2 after layer4).
    /// </summary>
    [TestCase("resnet20-a", 2, 32)]
    [TestCase("resnet20-b", 2, 32)]
    [TestCase("resnet20-c", 2, 32)]
    [TestCase("plain20", 2, 32)]
    [TestCase("resnet18", 1, 224)]
    [TestCase("resnet50-a", 1, 224)]
    [TestCase("resnet50-b", 1, 224)]
    [TestCase("resnet50-c", 1, 224)]
    [TestCase("resnet50-a", 1, 64)]
    [TestCase("resnet50-b", 1, 64)]
    [TestCase("resnet50-c", 1, 64)]
    public void OnnxRuntimeAgreesWithTheEngine(string name, int batch, int size)
    {
        using var model = ExportedModels.Randomized<float>(name, _device);
        string path = Path.Combine(Folder, $"{name}.onnx");
        OnnxExport.Export(model.Train(), 3, size, size, path);

        float[] input = ExportedModels.RandomInput(batch * 3 * size * size, seed: 1);
        float[] expected = ExportedModels.EngineLogits(model, _device, input, [batch, 3, size, size]);
        float[] actual = ExportedModels.RuntimeLogits(path, input, [batch, 3, size, size], out int[] shape);

        Assert.That(shape, Is.EqualTo(new[] { batch, model.Classes }));
        Assert.That(model.Training, Is.True, "the export left the module's mode as it was");
        ExportedModels.AssertClose(actual, expected);
    }

    [Test]
    public void OneFileTakesAnyBatch()
    {
        using var model = ExportedModels.Randomized<float>("resnet20-a", _device);
        string path = Path.Combine(Folder, "resnet20-a.onnx");
        OnnxExport.Export(model, 3, 32, 32, path);
        int image = 3 * 32 * 32;
        float[] pair = ExportedModels.RandomInput(2 * image, seed: 2);

        float[] both = ExportedModels.RuntimeLogits(path, pair, [2, 3, 32, 32], out _);
        float[] second = ExportedModels.RuntimeLogits(path, pair[image..], [1, 3, 32, 32], out int[] shape);

        Assert.That(shape, Is.EqualTo(new[] { 1, 10 }));
        ExportedModels.AssertClose(second, both[10..]);
        ExportedModels.AssertClose(both, ExportedModels.EngineLogits(model, _device, pair, [2, 3, 32, 32]));
    }

    [Test]
    public void InitializersAreTheStateDictByNameAndValue()
    {
        using var model = ExportedModels.Randomized<float>("resnet18", _device);
        var proto = OnnxExport.ToModelProto(model, 3, 224, 224);
        var state = model.StateDict().ToDictionary(entry => entry.Name, entry => entry.Tensor);

        Assert.That(proto.Graph.Initializer.Select(i => i.Name), Is.EquivalentTo(state.Keys));
        Assert.That(state.Keys, Does.Contain("layer1.0.bn1.running_mean").And.Contain("layer2.0.downsample.0.weight"));
        foreach (var initializer in proto.Graph.Initializer)
        {
            var array = OnnxTensors.Read(initializer, null);
            Assert.That(array.ElementType, Is.EqualTo(TensorProto.Types.DataType.Float), initializer.Name);
            Assert.That(array.Dims, Is.EqualTo(state[initializer.Name].Shape.ToArray().Select(d => (long)d)));
            Assert.That(array.To<float>().SequenceEqual(state[initializer.Name].ToArray()), Is.True,
                $"{initializer.Name}: the values differ");
        }
    }

    [Test]
    public void TheModelSaysWhatItIs()
    {
        using var model = ExportedModels.Randomized<float>("resnet20-a", _device);
        var proto = OnnxExport.ToModelProto(model, 3, 32, 32);

        Assert.That(proto.IrVersion, Is.EqualTo(8));
        Assert.That(proto.ProducerName, Is.EqualTo("Engine"));
        Assert.That(proto.OpsetImport.Single().Version, Is.EqualTo(17));
        Assert.That(proto.Graph.Input.Single().Name, Is.EqualTo("input"));
        Assert.That(proto.Graph.Output.Single().Name, Is.EqualTo("logits"));
        var dims = proto.Graph.Input[0].Type.TensorType.Shape.Dim;
        Assert.That(dims.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString()), Is.EqualTo(new[] { "N", "3", "32", "32" }));
        var outputDims = proto.Graph.Output[0].Type.TensorType.Shape.Dim;
        Assert.That(outputDims.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString()), Is.EqualTo(new[] { "N", "10" }));
        // Option A in standard ops: the two stride-2 stage entries each slice with steps and pad zero channels.
        Assert.That(proto.Graph.Node.Count(n => n.OpType == "Slice"), Is.EqualTo(2));
        Assert.That(proto.Graph.Node.Count(n => n.OpType == "Pad"), Is.EqualTo(2));
        Assert.That(proto.Graph.Node.Select(n => n.OpType).Distinct(), Is.EquivalentTo(new[]
        {
            "Conv", "BatchNormalization", "Relu", "Add", "Constant", "Slice", "Pad", "GlobalAveragePool", "Flatten",
            "Gemm",
        }));
    }

    /// <summary>A float64 model exports as double. ONNX Runtime's CPU provider has no double Conv or
    /// GlobalAveragePool, so ONNX Runtime runs a double network of the layers it has (max pool, batch norm with its
    /// ReLU); the ResNet's file is checked for its element types and exact weights.</summary>
    [Test]
    public void Float64ModelsExportDouble()
    {
        using var resnet = ExportedModels.Randomized<double>("resnet20-a", _device);
        var proto = OnnxExport.ToModelProto(resnet, 3, 32, 32);
        Assert.That(proto.Graph.Initializer.Select(i => (TensorProto.Types.DataType)i.DataType).Distinct(),
            Is.EqualTo(new[] { TensorProto.Types.DataType.Double }));
        Assert.That(proto.Graph.Input[0].Type.TensorType.ElemType, Is.EqualTo((int)TensorProto.Types.DataType.Double));
        Assert.That(proto.Graph.Output[0].Type.TensorType.ElemType, Is.EqualTo((int)TensorProto.Types.DataType.Double));
        var conv1 = OnnxTensors.Read(proto.Graph.Initializer.Single(i => i.Name == "conv1.weight"), null);
        Assert.That(conv1.Values, Is.EqualTo(resnet.Conv1.Weight.ToArray()), "float64 weights written exactly");

        var norm = new BatchNorm2d<double>(_device, 3, relu: true);
        using var model = new Sequential<double>(new MaxPool2d<double>(3, 2, 1), norm, new MaxPool2d<double>(2, 1, 0));
        using (GradMode.NoGrad())
        {
            norm.Weight.CopyFrom([0.7, 1.3, 0.9]);
            norm.Bias.CopyFrom([0.2, -0.1, 0.05]);
            norm.RunningMean.CopyFrom([0.1, -0.2, 0.3]);
            norm.RunningVar.CopyFrom([0.6, 1.7, 1.1]);
        }
        string path = Path.Combine(Folder, "double.onnx");
        OnnxExport.Export(model, 3, 9, 7, path);
        var random = new Random(5);
        double[] input = Enumerable.Range(0, 2 * 3 * 9 * 7).Select(_ => 2 * random.NextDouble() - 1).ToArray();
        double[] expected;
        using (TensorScope.Begin())
        using (GradMode.NoGrad())
            expected = model.Eval().Forward(Tensor.FromArray(input, [2, 3, 9, 7], _device)).ToArray();

        using var session = new InferenceSession(path);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DoubleTensor(input, [2, 3, 9, 7]))]);
        double[] actual = results.Single().AsTensor<double>().ToArray();
        Assert.That(actual, Is.EqualTo(expected).Within(1e-12));
        Assert.That(expected.Select(Math.Abs).Max(), Is.GreaterThan(1e-2));
    }

    [Test]
    public void AModuleWithoutARuleIsNamedByPathAndType()
    {
        using var model = new Sequential<float>(new Linear<float>(_device, 4, 3, seed: 1), new Doubling());
        var error = Assert.Throws<NotSupportedException>(() => OnnxExport.ToModelProto(model, 1, 2, 2));
        Assert.That(error!.Message, Does.Contain("module '1' (Doubling<Single>)").And.Contain("IOnnxExportable"));
    }

    [Test]
    public void AnInputTheModelCannotTakeIsRefusedNamingTheModule()
    {
        using var resnet = ModelRegistry.Create<float>("resnet18", _device);
        var error = Assert.Throws<ArgumentException>(() => OnnxExport.ToModelProto(resnet, 1, 224, 224));
        Assert.That(error!.Message, Does.Contain("module 'conv1' (Conv2d<Single>)").And.Contain("[N, 1, 224, 224]"));

        using var model = new Sequential<float>(new Conv2d<float>(_device, 2, 4, 3, 1, 0, bias: true, seed: 1),
            new MaxPool2d<float>(3, 1, 0));
        error = Assert.Throws<ArgumentException>(() => OnnxExport.ToModelProto(model, 2, 4, 4));
        Assert.That(error!.Message, Does.Contain("module '1' (MaxPool2d<Single>)"), "a 3x3 window over 2x2");
    }

    [Test]
    public void NothingIsWrittenWhenTheExportFails()
    {
        using var model = ModelRegistry.Create<float>("resnet18", _device);
        string path = Path.Combine(Folder, "small.onnx");
        Assert.Throws<ArgumentException>(() => OnnxExport.Export(model, 1, 224, 224, path));
        Assert.Throws<DirectoryNotFoundException>(() =>
            OnnxExport.Export(model, 3, 224, 224, Path.Combine(Folder, "missing", "model.onnx")));
        Assert.That(Directory.EnumerateFileSystemEntries(Folder), Is.Empty);
    }

    /// <summary>A layer without an export rule.</summary>
    private sealed class Doubling : Module<float>
    {
        public override Tensor<float> Forward(Tensor<float> x) => x + x;
    }
}
