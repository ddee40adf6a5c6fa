// `onnx-run`: runs an .onnx model (OnnxModel, float32) on input tensors stored as ONNX TensorProto files (.pb, as
// ONNX's test data and onnx.numpy_helper.from_array write them), prints the time to load the model and to run it,
// each output's shape and largest values, and with --out saves the outputs as .pb files, written atomically.
using System.CommandLine;
using System.Diagnostics;
using Engine.Core;
using Engine.Core.Onnx;
using Engine.Core.Onnx.Proto;
using Engine.Core.Serialization;
using Google.Protobuf;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Bench.Commands;

internal static class OnnxRunCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The .onnx model.", Required = true };
        var inputs = new Option<string[]>("--input")
        {
            Description = "An input tensor as an ONNX TensorProto file (.pb); repeat for several inputs, matched by " +
                          "the tensor's name or else in the graph's input order.",
            Required = true,
        };
        var output = new Option<string?>("--out")
        {
            Description = "Where to save the output as a TensorProto .pb file; for a graph with several outputs, a " +
                          "folder that receives output_0.pb, output_1.pb, ….",
        };
        var top = new Option<int>("--top") { Description = "Largest values to print per output.", DefaultValueFactory = _ => 5 };
        var device = CommonOptions.Device();
        var command = new Command("onnx-run", "Runs an ONNX model on input tensors and prints or saves its outputs.")
            { model, inputs, output, top, device };
        command.SetAction(result =>
        {
            string modelPath = result.GetValue(model)!;
            string[] inputPaths = result.GetValue(inputs)!;
            int k = result.GetValue(top);
            if (k < 0) throw new ArgumentException($"--top must not be negative; got {k}.");
            CommonOptions.RequireInputFile(modelPath, "--model");
            foreach (string path in inputPaths) CommonOptions.RequireInputFile(path, "--input");
            var arrays = inputPaths.Select(ReadTensor).ToArray();
            string? outPath = result.GetValue(output);

            using var engine = CommonOptions.OpenDevice(result.GetValue(device));
            var clock = Stopwatch.StartNew();
            using var onnx = OnnxModel.Load<float>(modelPath, engine);
            double loadSeconds = clock.Elapsed.TotalSeconds;
            if (outPath is not null)
            {
                string folder = onnx.OutputNames.Count == 1 ? Path.GetDirectoryName(Path.GetFullPath(outPath))! : outPath;
                CommonOptions.RequireWritableFolder(folder, "--out");
            }
            var required = onnx.InputNames;
            if (arrays.Length > required.Count)
                throw new ArgumentException($"--input: {arrays.Length} tensors given; the model takes {required.Count} " +
                                            $"([{string.Join(", ", required)}]).");
            using var scope = TensorScope.Begin();
            var feeds = new Dictionary<string, Tensor<float>>();
            for (int i = 0; i < arrays.Length; i++)
            {
                string name = required.Contains(arrays[i].Name) ? arrays[i].Name : required[i];
                feeds[name] = Tensor.FromArray(arrays[i].To<float>(), arrays[i].Dims.Select(d => checked((int)d)).ToArray(), engine);
            }
            clock.Restart();
            var outputs = onnx.Run(feeds);
            var results = onnx.OutputNames.Select(name => outputs[name].ToArray()).ToArray();
            Console.WriteLine($"{modelPath}: opset {onnx.Opset}, {onnx.Parameters().Sum(p => p.Length)} parameters; " +
                              $"loaded in {loadSeconds:F2} s, ran in {clock.Elapsed.TotalSeconds:F2} s on {engine.Kind}");
            for (int i = 0; i < onnx.OutputNames.Count; i++)
            {
                string name = onnx.OutputNames[i];
                var tensor = outputs[name];
                float[] values = results[i];
                var largest = values.Select((v, index) => (v, index)).OrderByDescending(p => p.v).Take(k)
                    .Select(p => $"{p.v:G6} at {p.index}");
                Console.WriteLine($"output '{name}': shape {tensor.Shape}" + (k > 0 ? $"; largest: {string.Join(", ", largest)}" : ""));
                if (outPath is null) continue;
                string path = onnx.OutputNames.Count == 1 ? outPath : Path.Combine(outPath, $"output_{i}.pb");
                var proto = OnnxTensors.Create<float>(name, DataType.Float, tensor.Shape.Select(d => (long)d).ToArray(), values);
                AtomicFile.Write(path, temporary => File.WriteAllBytes(temporary, proto.ToByteArray()));
                Console.WriteLine($"saved '{name}' to {path}");
            }
        });
        return command;
    }

    private static OnnxArray ReadTensor(string path)
    {
        TensorProto proto;
        try { proto = TensorProto.Parser.ParseFrom(File.ReadAllBytes(path)); }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"--input: '{path}' is not an ONNX TensorProto file: {e.Message}", e);
        }
        return OnnxTensors.Read(proto, Path.GetDirectoryName(Path.GetFullPath(path)));
    }
}
