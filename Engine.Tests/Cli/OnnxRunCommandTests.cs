// `onnx-run` as a user runs it, on ONNX's own node tests: the saved output agrees with ONNX's expected output,
// several inputs are matched to the graph's inputs, an image file is an input of its own (normalised with --mean and
// --std), and bad files or an unsupported graph are one line on stderr with exit code 2.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Onnx;
using Engine.Core.Onnx.Proto;
using Engine.Models;
using Engine.Tests.Prediction;
using Engine.Tests.Onnx;
using Google.Protobuf;
using NUnit.Framework;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Tests.Cli;

public sealed class OnnxRunCommandTests : TempFolderFixture
{
    private static string NodeTest(string test)
    {
        string folder = Path.Combine(OnnxConformance.Root, test);
        if (!Directory.Exists(folder)) Assert.Ignore($"ONNX's node test {test} is not installed ({OnnxConformance.Install}).");
        return folder;
    }

    private static OnnxArray Read(string path) =>
        OnnxTensors.Read(TensorProto.Parser.ParseFrom(File.ReadAllBytes(path)), null);

    [TestCase("test_relu", 1)]
    [TestCase("test_conv_with_strides_padding", 2)]
    public void SavedOutputMatchesOnnxExpectedOutput(string test, int inputs)
    {
        string folder = NodeTest(test), set = Path.Combine(folder, "test_data_set_0");
        string output = Path.Combine(Folder, "y.pb");
        var args = new List<string> { "onnx-run", "--model", Path.Combine(folder, "model.onnx"), "--out", output, "--device", "cpu" };
        for (int i = 0; i < inputs; i++) args.AddRange(["--input", Path.Combine(set, $"input_{i}.pb")]);
        using var run = BenchCli.Run([.. args]);
        Assert.That(run.ExitCode, Is.EqualTo(0), run.Transcript);

        var expected = Read(Path.Combine(set, "output_0.pb"));
        var actual = Read(output);
        Assert.That(actual.Dims, Is.EqualTo(expected.Dims));
        Assert.That(actual.Values, Is.EqualTo(expected.Values).Within(1e-4));
        Assert.That(run.Stdout, Has.Some.Contains($"shape [{string.Join(", ", expected.Dims)}]; largest: "));
        Assert.That(Directory.GetFiles(Folder), Is.EquivalentTo(new[] { output }), "a temporary file was left behind");
    }

    [Test]
    public void BadFilesAreOneLineAndExitCode2()
    {
        string folder = NodeTest("test_relu");
        string input = Path.Combine(folder, "test_data_set_0", "input_0.pb");
        string corrupt = Path.Combine(Folder, "corrupt.onnx");
        File.WriteAllBytes(corrupt, [0x0A, 0x7F, 0x01, 0x02]);
        foreach (var (args, expected) in new[]
                 {
                     (new[] { "--model", Path.Combine(Folder, "absent.onnx"), "--input", input }, "--model: "),
                     (new[] { "--model", corrupt, "--input", input }, "is not a valid ONNX model"),
                     (new[] { "--model", Path.Combine(folder, "model.onnx"), "--input", corrupt }, "--input: "),
                 })
        {
            using var run = BenchCli.Run(["onnx-run", .. args, "--device", "cpu"]);
            Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
            Assert.That(run.Stderr, Has.Count.EqualTo(1).And.Some.StartsWith("error: ").And.Some.Contains(expected), run.Transcript);
        }
    }

    [Test]
    public void AnUnsupportedOpIsOneLineNamingTheNodeOpAndOpset()
    {
        var model = OnnxGraphs.SmallConvNet();
        model.Graph.Node[2].OpType = "Celu";
        string path = Path.Combine(Folder, "celu.onnx"), input = Path.Combine(Folder, "x.pb");
        File.WriteAllBytes(path, model.ToByteArray());
        File.WriteAllBytes(input, OnnxTensors.Create<float>("x", DataType.Float, [1, 2, 5, 5], new float[50]).ToByteArray());

        using var run = BenchCli.Run(["onnx-run", "--model", path, "--input", input, "--device", "cpu"]);

        Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
        Assert.That(run.Stderr, Has.Count.EqualTo(1), run.Transcript);
        Assert.That(run.Stderr[0], Does.StartWith("error: ONNX node 'relu' (#2): op 'Celu' (opset 13) is not supported"),
            run.Transcript);
        Assert.That(run.Stderr[0], Does.Not.Contain("Exception"), run.Transcript);
    }

    [Test]
    public void AnImageFileIsAnInputOfOneNormalisedImage()
    {
        using var device = Device.Create("cpu");
        using var model = ModelRegistry.Create<float>("resnet20-a", device, seed: 5);
        string path = Path.Combine(Folder, "resnet20-a.onnx"), output = Path.Combine(Folder, "logits.pb");
        OnnxExport.Export(model, 3, 32, 32, path);
        var random = new Random(6);
        byte[] planes = Enumerable.Range(0, 3 * 32 * 32).Select(_ => (byte)random.Next(256)).ToArray();
        string image = TestImageFiles.Write(Path.Combine(Folder, "image.png"), planes, 3, 32, 32);

        using var run = BenchCli.Run(["onnx-run", "--model", path, "--input", image, "--mean", "0.5", "0.4", "0.3",
            "--std", "0.25", "0.2", "0.3", "--out", output, "--device", "cpu"]);

        Assert.That(run.ExitCode, Is.EqualTo(0), run.Transcript);
        float[] mean = [0.5f, 0.4f, 0.3f], std = [0.25f, 0.2f, 0.3f];
        float[] input = planes.Select((b, i) => (b / 255f - mean[i / 1024]) / std[i / 1024]).ToArray();
        float[] expected;
        using (TensorScope.Begin())
        using (GradMode.NoGrad())
            expected = model.Eval().Forward(Tensor.FromArray(input, [1, 3, 32, 32], device)).ToArray();
        var actual = Read(output);
        Assert.That(actual.Dims, Is.EqualTo(new long[] { 1, 10 }));
        Assert.That(actual.Values, Is.EqualTo(expected.Select(v => (double)v)).Within(1e-5));

        using var bad = BenchCli.Run(["onnx-run", "--model", path, "--input", image, "--mean", "0.5", "--device", "cpu"]);
        Assert.That(bad.ExitCode, Is.EqualTo(2), bad.Transcript);
        Assert.That(bad.Stderr, Has.Count.EqualTo(1).And.Some.Contains("one value per channel (3)"), bad.Transcript);
    }
}
