// `export` as a user runs it, in a child process: a registry model written as an ONNX file (read back with the
// generated ONNX classes) with one line of output, and bad input — an unwritable or folder --out, an unknown model,
// a plain model file without its name, no model at all — refused in one line with exit code 2 and nothing written.
// ONNX Runtime running what the command writes, from a trained checkpoint, is in Onnx/Runtime/.
using Engine.Core;
using Engine.Core.Onnx;
using Engine.Core.Onnx.Proto;
using Engine.Core.Serialization;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Cli;

[TestFixture]
public sealed class ExportCommandTests : TempFolderFixture
{
    [Test]
    public void WritesTheModelAndSaysWhereInOneLine()
    {
        string path = Path.Combine(Folder, "resnet20.onnx");
        using var run = BenchCli.Run("export", "--model", "resnet20-a", "--out", path);

        Assert.That(run.ExitCode, Is.Zero, run.Transcript);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.That(run.Stdout, Has.Count.EqualTo(1), run.Transcript);
        Assert.That(run.Stdout[0], Does.StartWith($"{path}: resnet20-a, input 3x32x32, ")
            .And.Contain($"{model.Graph.Node.Count} nodes"));
        Assert.That(model.Graph.Input.Single().Name, Is.EqualTo(OnnxExport.InputName));
        Assert.That(model.Graph.Output.Single().Name, Is.EqualTo(OnnxExport.OutputName));
        Assert.That(model.Graph.Initializer.Select(i => i.Name), Does.Contain("layer3.2.bn2.running_var"));
        Assert.That(Directory.GetFiles(Folder), Is.EqualTo(new[] { path }), "no temporary file left");
    }

    [Test]
    public void SizeSetsTheInput()
    {
        string path = Path.Combine(Folder, "resnet18.onnx");
        using var run = BenchCli.Run("export", "--model", "resnet18", "--size", "64", "--out", path);

        Assert.That(run.ExitCode, Is.Zero, run.Transcript);
        var dims = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Input[0].Type.TensorType.Shape.Dim;
        Assert.That(dims.Skip(1).Select(d => d.DimValue), Is.EqualTo(new long[] { 3, 64, 64 }));
    }

    [Test]
    public void AnOutputThatCannotBeWrittenIsOneLineAndNothingIsWritten()
    {
        // A folder under a regular file can never be created, whoever runs the test.
        string file = Path.Combine(Folder, "file");
        File.WriteAllText(file, "x");
        string folder = Path.Combine(file, "out");
        AssertRefused($"--out: cannot write to the folder '{folder}'",
            "export", "--model", "resnet20-a", "--out", Path.Combine(folder, "model.onnx"));
        AssertRefused($"--out: '{Folder}' is a folder, not a file.", "export", "--model", "resnet20-a", "--out", Folder);
    }

    [Test]
    public void AnUnknownModelIsOneLineAndNothingIsWritten() =>
        AssertRefused("Unknown model 'resnet21'", "export", "--model", "resnet21", "--out",
            Path.Combine(Folder, "model.onnx"));

    [Test]
    public void NoModelIsOneLine() =>
        AssertRefused("Name the model to export (--model) or give a checkpoint (--checkpoint).", "export", "--out",
            Path.Combine(Folder, "model.onnx"));

    [Test]
    public void APlainModelFileNeedsItsName()
    {
        string weights = Path.Combine(Folder, "weights.safetensors");
        using (var device = Device.Create("cpu"))
        using (var model = ModelRegistry.Create<float>("resnet20-a", device))
            SafeTensors.Save(model, weights);
        AssertRefused($"'{weights}' does not record its model (a plain model file): name it (--model).",
            "export", "--checkpoint", weights, "--out", Path.Combine(Folder, "model.onnx"));
        AssertRefused($"--checkpoint: '{Path.Combine(Folder, "none")}' does not exist.",
            "export", "--checkpoint", Path.Combine(Folder, "none"), "--out", Path.Combine(Folder, "model.onnx"));
    }

    /// <summary>Runs the command and asserts exit code 2, one line on stderr holding <paramref name="expected"/>, and
    /// no .onnx file (nor its temporary) anywhere in the test's folder.</summary>
    private void AssertRefused(string expected, params string[] args)
    {
        using var run = BenchCli.Run(args);
        Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
        Assert.That(run.Stderr, Has.Count.EqualTo(1), run.Transcript);
        Assert.That(run.Stderr[0], Does.StartWith("error: ").And.Contain(expected));
        Assert.That(Directory.EnumerateFiles(Folder, "*.onnx*", SearchOption.AllDirectories), Is.Empty);
    }
}
