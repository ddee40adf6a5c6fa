// ImageClassifier: a trained ResNet and the input it expects, loaded from a checkpoint, that classifies image files
// in batches in eval mode and returns each image's top-k classes with their softmax probabilities. It runs the
// model folded for inference (ResNet.FuseForInference, made once at load): logits equal to float32 rounding.
//   Training checkpoints (Trainer.Save) record the model name, input shape, normalisation and, for the known
//   datasets, the class names; the optimizer's state in them is read (and so checked) but not kept. A plain model
//   file (SafeTensors.Save) records none of that: the caller names the model and gives the input explicitly.
//   The class count and input channels come from the file's fc and conv1 weights.
using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Serialization;

namespace Engine.Models.Prediction;

/// <summary>One class of a prediction: its index, its name (the index as text when unnamed) and probability.</summary>
public sealed record ClassProbability(int Class, string Name, double Probability);

/// <summary>The classes of one image file, most probable first.</summary>
public sealed record ImagePrediction(string Path, IReadOnlyList<ClassProbability> Top);

/// <summary>What the caller states about a checkpoint: the model name (checked against a training checkpoint's, or
/// required for a plain model file), the input (only for files that do not record one) and class names (replacing
/// the recorded ones; one per class).</summary>
public sealed record CheckpointOverrides(string? Model = null, ModelInput? Input = null,
    IReadOnlyList<string>? ClassNames = null);

/// <summary>Classifies image files with a trained network: loads a checkpoint (its model, input size, normalisation
/// and class names), preprocesses each image as in training and returns the top-k classes with softmax
/// probabilities, in eval mode (the model folded for inference) and in batches.</summary>
public sealed partial class ImageClassifier : IDisposable
{
    private ImageClassifier(ResNet<float> model, ModelInput input, IReadOnlyList<string> classNames)
    {
        Model = model;
        Folded = model.FuseForInference();
        Input = input;
        ClassNames = classNames;
    }

    /// <summary>The network, in eval mode.</summary>
    public ResNet<float> Model { get; }

    /// <summary>The network folded for inference (<see cref="ResNet{T}.FuseForInference"/>), made once at load:
    /// what <see cref="Classify"/> runs.</summary>
    public FusedResNet<float> Folded { get; }

    /// <summary>The input the network was trained on.</summary>
    public ModelInput Input { get; }

    /// <summary>One name per class: the recorded or given names, else the indices as text.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Loads the checkpoint at <paramref name="path"/> onto <paramref name="device"/>. Throws
    /// <see cref="FileNotFoundException"/> when it does not exist, <see cref="InvalidDataException"/> when it is
    /// corrupt, does not match its model or lacks what prediction needs, and <see cref="ArgumentException"/> when
    /// <paramref name="overrides"/> contradict it; each message names the file and what is wrong.</summary>
    public static ImageClassifier Load(Device device, string path, CheckpointOverrides? overrides = null)
    {
        overrides ??= new CheckpointOverrides();
        var header = SafeTensors.ReadHeader(path);
        string name = ModelName(header.Metadata, path, overrides.Model);
        var (classes, channels) = Dimensions(header, path);
        var input = InputOf(header.Metadata, path, overrides.Input);
        if (input.Channels != channels)
            throw new InvalidDataException(
                $"'{path}': its model takes {channels}-channel images but the input is {input.Channels}x{input.Height}x{input.Width}.");
        var names = overrides.ClassNames ?? input.ClassNames;
        if (names is not null && names.Count != classes)
            throw new ArgumentException(
                $"{names.Count} class names for the model in '{path}', which has {classes} classes.");
        names ??= Enumerable.Range(0, classes).Select(i => i.ToString()).ToArray();
        var model = Network(device, header, path, name, classes, channels);
        return new ImageClassifier(model, input with { ClassNames = names }, names);
    }

    /// <summary>Loads only the network of the checkpoint or plain model file at <paramref name="path"/> onto
    /// <paramref name="device"/>, in eval mode (for export: no input or class names needed). A training checkpoint
    /// names its model, which <paramref name="model"/> must match when given; a plain model file needs it. Throws as
    /// <see cref="Load"/>.</summary>
    public static ResNet<float> LoadModel(Device device, string path, string? model = null)
    {
        var header = SafeTensors.ReadHeader(path);
        string name = ModelName(header.Metadata, path, model);
        var (classes, channels) = Dimensions(header, path);
        return Network(device, header, path, name, classes, channels);
    }

    /// <summary>The class count and input channels, from the file's fc and conv1 weights.</summary>
    private static (int Classes, int Channels) Dimensions(SafeTensorsHeader header, string path)
    {
        var shapes = header.Tensors.ToDictionary(entry => entry.Name, entry => entry.Shape);
        if (!shapes.TryGetValue("fc.weight", out var fc) || fc.Rank != 2 ||
            !shapes.TryGetValue("conv1.weight", out var conv1) || conv1.Rank != 4)
            throw new InvalidDataException($"'{path}' is not a ResNet checkpoint: it has no fc.weight and conv1.weight.");
        return (fc[0], conv1[1]);
    }

    /// <summary>The named network with the file's weights, in eval mode.</summary>
    private static ResNet<float> Network(Device device, SafeTensorsHeader header, string path, string name,
        int classes, int channels)
    {
        var model = ModelRegistry.Create<float>(name, device, classes: classes, inputChannels: channels);
        try
        {
            LoadWeights(model, header, path);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.Eval();
        return model;
    }

    /// <summary>The model's canonical name: the checkpoint's recorded one, which <paramref name="given"/> must
    /// match, else <paramref name="given"/>.</summary>
    private static string ModelName(IReadOnlyDictionary<string, string> metadata, string path, string? given)
    {
        string? recorded = null;
        if (metadata.TryGetValue("options", out string? options))
            try
            {
                using var json = JsonDocument.Parse(options);
                if (json.RootElement.TryGetProperty("Model", out var model)) recorded = model.GetString();
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                throw new InvalidDataException($"'{path}': its training options are unreadable.", e);
            }
        if (recorded is null)
            return ModelRegistry.Parse(given ?? throw new ArgumentException(
                $"'{path}' does not record its model (a plain model file): name it (--model).")).Name;
        string canonical = ModelRegistry.Parse(recorded).Name;
        if (given is not null && ModelRegistry.Parse(given).Name != canonical)
            throw new ArgumentException($"'{path}' holds a {canonical} checkpoint, not {ModelRegistry.Parse(given).Name}.");
        return canonical;
    }

    private static ModelInput InputOf(IReadOnlyDictionary<string, string> metadata, string path, ModelInput? given)
    {
        var recorded = ModelInput.FromMetadata(metadata, path);
        if (recorded is not null && given is not null)
            throw new ArgumentException(
                $"'{path}' records the input its model was trained on ({recorded}); an explicit size, mean and std " +
                "are only for files that do not.");
        if (recorded is null && given is null)
            throw new InvalidDataException(
                $"'{path}' does not record the input size and normalisation its model was trained with (a plain " +
                "model file, or a checkpoint from before training recorded them): give them (--size, --mean, --std).");
        var input = recorded ?? given!;
        input.Check(path);
        return input;
    }

    /// <summary>Loads the model's tensors from the file; training state (tensors outside the network's modules,
    /// such as momentum buffers) is read into scratch tensors, so that the whole file is still checked.</summary>
    private static void LoadWeights(ResNet<float> model, SafeTensorsHeader header, string path)
    {
        var modules = model.StateDict().Select(entry => TopModule(entry.Name)).ToHashSet();
        using var scope = TensorScope.Begin();
        var device = model.Conv1.Weight.Device;
        var scratch = header.Tensors
            .Where(entry => !modules.Contains(TopModule(entry.Name)) && !StageName().IsMatch(TopModule(entry.Name)) &&
                            !entry.Name.EndsWith("num_batches_tracked", StringComparison.Ordinal))
            .Select(entry => (entry.Name, Tensor.Zeros<float>(entry.Shape, device)));
        SafeTensors.Load(model.StateDict().Concat(scratch), path);
    }

    private static string TopModule(string name) => name.Split('.')[0];

    [GeneratedRegex(@"^layer\d+$")]
    private static partial Regex StageName();

    /// <summary>Classifies the image files at <paramref name="paths"/> in batches of <paramref name="batchSize"/>,
    /// returning each one's <paramref name="top"/> most probable classes (fewer when the model has fewer), in the
    /// order given. <paramref name="progress"/> hears the number of files done after each batch. A file that is not
    /// a complete image throws <see cref="InvalidDataException"/> naming it, unless <paramref name="skip"/> is given:
    /// then it is told the file and the error, and the file is left out of the result.</summary>
    public IReadOnlyList<ImagePrediction> Classify(IReadOnlyList<string> paths, int top = 5, int batchSize = 64,
        IProgress<int>? progress = null, Action<string, InvalidDataException>? skip = null)
    {
        if (top < 1) throw new ArgumentOutOfRangeException(nameof(top), $"Top must be at least 1; got {top}.");
        if (batchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(batchSize), $"Batch size must be at least 1; got {batchSize}.");
        var device = Model.Conv1.Weight.Device;
        int size = Input.ImageSize, classes = ClassNames.Count;
        var predictions = new List<ImagePrediction>(paths.Count);
        var images = new float[batchSize * size];
        var batch = new List<string>(batchSize);
        for (int start = 0; start < paths.Count; start += batchSize)
        {
            batch.Clear();
            foreach (string path in paths.Skip(start).Take(batchSize))
                try
                {
                    Input.Preprocess(path, images.AsSpan(batch.Count * size, size));
                    batch.Add(path);
                }
                catch (InvalidDataException error) when (skip is not null)
                {
                    skip(path, error);
                }
            if (batch.Count > 0)
            {
                float[] logits;
                using (GradMode.NoGrad())
                using (TensorScope.Begin())
                {
                    var x = Tensor.FromArray(images[..(batch.Count * size)],
                        [batch.Count, Input.Channels, Input.Height, Input.Width], device);
                    logits = Folded.Forward(x).ToArray();
                }
                for (int i = 0; i < batch.Count; i++)
                    predictions.Add(new ImagePrediction(batch[i], TopClasses(logits.AsSpan(i * classes, classes), top)));
            }
            progress?.Report(Math.Min(paths.Count, start + batchSize));
        }
        return predictions;
    }

    /// <summary>The <paramref name="top"/> most probable classes of one row of logits, ties by lower index.</summary>
    private IReadOnlyList<ClassProbability> TopClasses(ReadOnlySpan<float> logits, int top)
    {
        var probabilities = Softmax(logits);
        return Enumerable.Range(0, probabilities.Length)
            .OrderByDescending(c => probabilities[c]).ThenBy(c => c)
            .Take(top)
            .Select(c => new ClassProbability(c, ClassNames[c], probabilities[c]))
            .ToList();
    }

    /// <summary>exp(x − max) / Σ exp(x − max), in double.</summary>
    public static double[] Softmax(ReadOnlySpan<float> logits)
    {
        if (logits.Length == 0) throw new ArgumentException("No logits.", nameof(logits));
        double max = double.NegativeInfinity;
        foreach (float value in logits) max = Math.Max(max, value);
        var result = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += result[i] = Math.Exp(logits[i] - max);
        for (int i = 0; i < result.Length; i++) result[i] /= sum;
        return result;
    }

    /// <summary>Releases the model's parameters and buffers.</summary>
    public void Dispose()
    {
        Folded.Dispose();
        Model.Dispose();
    }
}
