// `onnx-run`: runs an .onnx model (OnnxModel, float32) on input tensors stored as ONNX TensorProto files (.pb, as
// ONNX's test data and onnx.numpy_helper.from_array write them) or on image files (png/jpg, read and normalised by
// the prediction pipeline's ImageReader and ModelInput into a batch of one), prints the time to load the model and
// to run it, each output's shape and largest values, and with --out saves the outputs as .pb files, written
// atomically.
using System.CommandLine;
using System.Diagnostics;
using Engine.Core;
using Engine.Core.Onnx;
using Engine.Core.Data;
using Engine.Core.Onnx.Proto;
using Engine.Core.Serialization;
using Engine.Models.Prediction;
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
            Description = "An input tensor as an ONNX TensorProto file (.pb), or an image (.png, .jpg) given as a batch " +
                          "of one [1, C, H, W]; repeat for several inputs, matched by the tensor's name or else in the " +
                          "graph's input order.",
            Required = true,
        };
        var size = new Option<int?>("--size")
        {
            Description = "Image inputs: resize to N×N (default: the graph input's declared height and width).",
        };
        var mean = new Option<float[]?>("--mean")
        {
            Description = "Image inputs: per-channel mean on the 0–1 scale (default 0).", AllowMultipleArgumentsPerToken = true,
        };
        var std = new Option<float[]?>("--std")
        {
            Description = "Image inputs: per-channel std on the 0–1 scale (default 1).", AllowMultipleArgumentsPerToken = true,
        };
        var output = new Option<string?>("--out")
        {
            Description = "Where to save the output as a TensorProto .pb file; for a graph with several outputs, a " +
                          "folder that receives output_0.pb, output_1.pb, ….",
        };
        var top = new Option<int>("--top") { Description = "Largest values to print per output.", DefaultValueFactory = _ => 5 };
        var device = CommonOptions.Device();
        var command = new Command("onnx-run", "Runs an ONNX model on input tensors and prints or saves its outputs.")
            { model, inputs, output, top, size, mean, std, device };
        command.SetAction(result =>
        {
            string modelPath = result.GetValue(model)!;
            string[] inputPaths = result.GetValue(inputs)!;
            int k = result.GetValue(top);
            if (k < 0) throw new ArgumentException($"--top must not be negative; got {k}.");
            CommonOptions.RequireInputFile(modelPath, "--model");
            foreach (string path in inputPaths) CommonOptions.RequireInputFile(path, "--input");
            var arrays = inputPaths.Select(path => IsImage(path) ? null : ReadTensor(path)).ToArray();
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
                if (arrays[i] is not { } array)
                {
                    var image = ImageInput(inputPaths[i], required[i], onnx.InputShape(required[i]), result.GetValue(size),
                        result.GetValue(mean), result.GetValue(std));
                    var pixels = new float[image.ImageSize];
                    image.Preprocess(inputPaths[i], pixels);
                    feeds[required[i]] = Tensor.FromArray(pixels, [1, image.Channels, image.Height, image.Width], engine);
                    continue;
                }
                string name = required.Contains(array.Name) ? array.Name : required[i];
                feeds[name] = Tensor.FromArray(array.To<float>(), array.Dims.Select(d => checked((int)d)).ToArray(), engine);
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

    private static bool IsImage(string path) =>
        ImageReader.Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>How an image becomes graph input <paramref name="name"/> declared as <paramref name="declared"/>
    /// ([N, C, H, W], C 1 or 3): N×N from --size or the declared extents, normalised by --mean and --std (0 and 1
    /// when not given).</summary>
    private static ModelInput ImageInput(string path, string name, IReadOnlyList<int> declared, int? size,
        float[]? mean, float[]? std)
    {
        string shape = "[" + string.Join(", ", declared.Select(d => d < 0 ? "?" : d.ToString())) + "]";
        if (declared.Count != 4 || declared[1] is not (1 or 3))
            throw new ArgumentException($"--input: '{path}' is an image, but the model's input '{name}' is {shape}, " +
                                        "not [N, C, H, W] with 1 or 3 channels.");
        if (size is <= 0) throw new ArgumentException($"--size must be positive; got {size}.");
        int height = size ?? declared[2], width = size ?? declared[3];
        if (height < 1 || width < 1)
            throw new ArgumentException($"--input: the model's input '{name}' is {shape}, with no fixed image size; " +
                                        "give --size.");
        int channels = declared[1];
        float[] means = mean is { Length: > 0 } ? mean : new float[channels];
        float[] stds = std is { Length: > 0 } ? std : Enumerable.Repeat(1f, channels).ToArray();
        if (means.Length != channels || stds.Length != channels)
            throw new ArgumentException($"--mean and --std need one value per channel ({channels}) of input '{name}'.");
        return new ModelInput(channels, height, width, new Normalization(means, stds));
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
