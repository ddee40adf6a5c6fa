// `predict`: classifies PNG/JPEG files with a trained checkpoint (ImageClassifier): one file prints its top-k
// classes; a folder's images are classified in batches under a progress bar, printed one line each and written to a
// CSV (one row per image). Images are preprocessed as the training data was (size, channels, normalisation from the
// checkpoint). A file that is not a complete image stops the run naming it, unless --skip-bad is given. The model
// runs folded for inference (ResNet.FuseForInference).
using System.CommandLine;
using System.Globalization;
using System.Text;
using Engine.Bench.Reports;
using Engine.Core.Data;
using Engine.Core.Serialization;
using Engine.Models.Prediction;
using Engine.Models.Training;
using Spectre.Console;

namespace Engine.Bench.Commands;

internal static class PredictCommand
{
    public static Command Create()
    {
        var images = new Argument<string>("path") { Description = "An image file (PNG, JPEG) or a folder of them." };
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint written by train (or a plain model file with --model, --size, --mean, --std).", DefaultValueFactory = _ => Path.Combine("out/train", Trainer.CheckpointFile) };
        var top = new Option<int>("--top") { Description = "Classes to show per image.", DefaultValueFactory = _ => 5 };
        var csv = new Option<string?>("--csv") { Description = "CSV of the predictions, one row per image (default for a folder: out/predict/predictions.csv)." };
        var batch = new Option<int>("--batch") { Description = "Images per forward pass.", DefaultValueFactory = _ => 64 };
        var model = new Option<string?>("--model") { Description = "Model name: checked against the checkpoint's; required for a plain model file." };
        var size = new Option<int?>("--size") { Description = "Input side in pixels, for files that do not record it (28: Fashion-MNIST, 32: CIFAR-10)." };
        var mean = new Option<float[]?>("--mean") { Description = "Per-channel mean on the 0–1 scale, for files that do not record it.", AllowMultipleArgumentsPerToken = true };
        var std = new Option<float[]?>("--std") { Description = "Per-channel std on the 0–1 scale, for files that do not record it.", AllowMultipleArgumentsPerToken = true };
        var labels = new Option<string?>("--labels") { Description = "Text file of class names, one per line, in label order." };
        var skipBad = new Option<bool>("--skip-bad") { Description = "Report and skip files that are not complete images instead of stopping." };
        var device = CommonOptions.Device();
        var command = new Command("predict", "Classifies image files with a trained checkpoint.")
            { images, checkpoint, top, csv, batch, model, size, mean, std, labels, skipBad, device };
        command.SetAction(result =>
        {
            string path = result.GetValue(images)!;
            bool folder = Directory.Exists(path);
            if (!folder && !File.Exists(path))
                throw new FileNotFoundException($"'{path}' is neither an image file nor a folder.", path);
            var files = folder ? ImageReader.FilesIn(path) : [path];
            int k = result.GetValue(top);
            if (k < 1) throw new ArgumentException($"--top must be at least 1; got {k}.");
            if (result.GetValue(batch) < 1)
                throw new ArgumentException($"--batch must be at least 1; got {result.GetValue(batch)}.");
            if (!folder) CommonOptions.RequireInputFile(path, "path");
            CommonOptions.RequireInputFile(result.GetValue(checkpoint)!, "--checkpoint");
            string? csvPath = result.GetValue(csv) ?? (folder ? "out/predict/predictions.csv" : null);
            if (csvPath is not null)
            {
                if (Directory.Exists(csvPath))
                    throw new ArgumentException($"--csv: '{csvPath}' is a folder, not a file.");
                CommonOptions.RequireWritableFolder(Path.GetDirectoryName(Path.GetFullPath(csvPath))!, "--csv");
            }
            var overrides = new CheckpointOverrides(result.GetValue(model),
                ExplicitInput(result.GetValue(size), result.GetValue(mean), result.GetValue(std)),
                result.GetValue(labels) is { } labelFile ? ReadLabels(labelFile) : null);

            using var engine = CommonOptions.OpenDevice(result.GetValue(device));
            using var classifier = ImageClassifier.Load(engine, result.GetValue(checkpoint)!, overrides);
            Console.WriteLine($"model: {classifier.Model.Spec.Name}, {classifier.ClassNames.Count} classes, " +
                              $"input {classifier.Input}; batch-norm folded into the convolutions for inference");
            var skipped = new List<string>();
            Action<string, InvalidDataException>? skip = result.GetValue(skipBad)
                ? (file, error) => skipped.Add(error.Message)
                : null;
            IReadOnlyList<ImagePrediction> predictions = [];
            if (folder)
                AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                        new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                    .Start(context =>
                    {
                        var task = context.AddTask(Markup.Escape($"{files.Count} images"), maxValue: files.Count);
                        predictions = classifier.Classify(files, k, result.GetValue(batch),
                            new Reporter(done => task.Value = done), skip);
                    });
            else
                predictions = classifier.Classify(files, k, result.GetValue(batch), skip: skip);

            foreach (string message in skipped) Console.Error.WriteLine($"skipped: {message}");
            foreach (var prediction in predictions)
                if (folder)
                    Console.WriteLine($"{Path.GetFileName(prediction.Path)}: " +
                                      string.Join(", ", prediction.Top.Select(c => $"{c.Name} {100 * c.Probability:F1}%")));
                else
                {
                    Console.WriteLine(prediction.Path);
                    foreach (var c in prediction.Top)
                        Console.WriteLine($"  {100 * c.Probability,6:F2}%  {c.Class,3}  {c.Name}");
                }
            if (csvPath is not null)
            {
                AtomicFile.WriteAllText(csvPath, Csv(predictions, k));
                Console.WriteLine($"{predictions.Count} predictions written to {csvPath}" +
                                  (skipped.Count > 0 ? $"; skipped: {skipped.Count}" : ""));
            }
            return skipped.Count > 0 && predictions.Count == 0 ? 2 : 0;
        });
        return command;
    }

    /// <summary>The input given by --size, --mean and --std (all or none).</summary>
    private static ModelInput? ExplicitInput(int? size, float[]? mean, float[]? std)
    {
        bool any = size is not null || mean is { Length: > 0 } || std is { Length: > 0 };
        if (!any) return null;
        if (size is not > 0 || mean is not { Length: > 0 } || std is not { Length: > 0 } || mean.Length != std.Length)
            throw new ArgumentException(
                "--size, --mean and --std go together: a positive size and one mean and one std per channel.");
        return new ModelInput(std.Length, size.Value, size.Value, new Normalization(mean, std));
    }

    private static string[] ReadLabels(string path)
    {
        CommonOptions.RequireInputFile(path, "--labels");
        return File.ReadAllLines(path).Select(line => line.Trim()).Where(line => line.Length > 0).ToArray();
    }

    /// <summary>path, then class, name and probability of each of the top <paramref name="top"/> classes.</summary>
    private static string Csv(IReadOnlyList<ImagePrediction> predictions, int top)
    {
        var text = new StringBuilder("path");
        for (int i = 1; i <= top; i++) text.Append($",class_{i},name_{i},probability_{i}");
        text.Append('\n');
        foreach (var prediction in predictions)
        {
            text.Append(Field(prediction.Path));
            foreach (var c in prediction.Top)
                text.Append(CultureInfo.InvariantCulture, $",{c.Class},{Field(c.Name)},{c.Probability:0.######}");
            text.Append(',', 3 * (top - prediction.Top.Count)).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>A CSV field, quoted when it holds a comma, quote or line break.</summary>
    private static string Field(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : $"\"{value.Replace("\"", "\"\"")}\"";

    /// <summary>Reports synchronously on the classifying thread.</summary>
    private sealed class Reporter(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
