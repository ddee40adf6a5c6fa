// `export --model NAME --out FILE.onnx [--checkpoint FILE] [--size N]`: writes a registry model (its seeded initial
// weights, or a trained checkpoint's — loaded as `predict` loads it) as an ONNX file of the eval-mode graph
// (OnnxExport). The input is C×N×N: the checkpoint's recorded input, else --size, else the family's (CIFAR 3×32×32,
// ImageNet 3×224×224). Prints one line: path, size, nodes, and the time to build (or load) and to export.
using System.CommandLine;
using System.Diagnostics;
using Engine.Core;
using Engine.Core.Onnx;
using Engine.Core.Serialization;
using Engine.Models;
using Engine.Models.Prediction;

namespace Engine.Bench.Commands;

internal static class ExportCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Model name, e.g. resnet50-b (checked against a checkpoint's; required without one or for a plain model file)." };
        var output = new Option<string>("--out") { Description = "The .onnx file to write.", Required = true };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint written by train, or a plain model file (safetensors), whose weights are exported." };
        var size = new Option<int?>("--size") { Description = "Input side in pixels (default: the checkpoint's recorded input, else 32 for CIFAR nets, 224 for ImageNet nets)." };
        var command = new Command("export", "Writes a model as an ONNX file (eval-mode graph, opset 17, dynamic batch axis).")
            { model, output, checkpoint, size };
        command.SetAction(result => Run(result.GetValue(model), result.GetValue(output)!, result.GetValue(checkpoint),
            result.GetValue(size)));
        return command;
    }

    private static int Run(string? name, string path, string? checkpoint, int? size)
    {
        if (name is null && checkpoint is null)
            throw new ArgumentException("Name the model to export (--model) or give a checkpoint (--checkpoint).");
        if (name is not null) ModelRegistry.Parse(name);
        if (size is < 1) throw new ArgumentException($"--size must be at least 1; got {size}.");
        if (Directory.Exists(path)) throw new ArgumentException($"--out: '{path}' is a folder, not a file.");
        CommonOptions.RequireWritableFolder(Path.GetDirectoryName(Path.GetFullPath(path))!, "--out");
        ModelInput? recorded = null;
        if (checkpoint is not null)
        {
            CommonOptions.RequireInputFile(checkpoint, "--checkpoint");
            recorded = ModelInput.FromMetadata(SafeTensors.ReadHeader(checkpoint).Metadata, checkpoint);
        }

        // Export needs no accelerator: the model is built on the CPU backend.
        using var device = Device.Create("cpu", "export only");
        var clock = Stopwatch.StartNew();
        using var network = checkpoint is null
            ? ModelRegistry.Create<float>(name!, device)
            : ImageClassifier.LoadModel(device, checkpoint, name);
        int height = size ?? recorded?.Height ?? network.Spec.InputSize;
        int width = size ?? recorded?.Width ?? network.Spec.InputSize;
        var built = clock.Elapsed;
        var proto = OnnxExport.Export(network, network.InputChannels, height, width, path);
        var exported = clock.Elapsed - built;
        Console.WriteLine($"{path}: {network.Spec.Name}, input {network.InputChannels}x{height}x{width}, " +
                          $"{Format.Bytes(new FileInfo(path).Length)}, {proto.Graph.Node.Count} nodes, " +
                          $"{proto.Graph.Initializer.Count} initializers; {(checkpoint is null ? "built" : "loaded")} " +
                          $"in {built.TotalSeconds:F2} s, exported in {exported.TotalSeconds:F2} s");
        return 0;
    }
}
