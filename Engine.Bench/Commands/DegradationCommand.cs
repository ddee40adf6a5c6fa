// `degradation`: the paper's degradation experiment (fig. 1 and 6) in one command — plain-20, plain-56,
// ResNet-20 and ResNet-56 trained with the same options on the same data, one error-curve plot (thin dashed:
// training error, bold: test error) and a table of final training and test errors. The default is a small
// Fashion-MNIST subset so it finishes on a CPU; flags enlarge it.
using System.CommandLine;
using System.Globalization;
using System.Text;
using Engine.Bench.Reports;
using Engine.Bench.Training;
using Engine.Core.Serialization;
using Engine.Models;
using Engine.Models.Training;
using Spectre.Console;

namespace Engine.Bench.Commands;

internal static class DegradationCommand
{
    public static Command Create()
    {
        // A small default that finishes in minutes on 2 cores: 10,000 Fashion-MNIST training images, 2,000 test
        // images, 4 epochs of batch 64 at learning rate 0.05 (÷10 at 50% and 75%). At 0.1 the 56-layer networks
        // barely leave chance within so few iterations (the paper warms ResNet-110 up at 0.01 for the same reason).
        var binder = new TrainOptionsBinder(defaultEpochs: 4, defaultTrainSubset: 10000, defaultTestSubset: 2000,
            defaultBatch: 64, defaultLearningRate: 0.05);
        var models = new Option<string[]>("--models") { Description = "Models to compare.", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["plain20", "plain56", "resnet20-a", "resnet56-a"] };
        var output = new Option<string>("--out") { Description = "Folder for the runs, degradation.png and degradation.md.", DefaultValueFactory = _ => "out/degradation" };
        var resume = new Option<bool>("--resume") { Description = "Continue runs from their checkpoints." };
        var command = new Command("degradation", "Plain vs residual networks of 20 and 56 layers: training and test error.")
            { models, output, resume };
        binder.AddTo(command);
        command.SetAction(result =>
        {
            string folder = result.GetValue(output)!;
            string[] names = result.GetValue(models)!;
            // Everything that could stop a later run is checked before the first one trains.
            foreach (string name in names) ModelRegistry.Parse(name);
            if (names.Distinct(StringComparer.OrdinalIgnoreCase).Count() != names.Length)
                throw new ArgumentException($"--models names a model twice: {string.Join(" ", names)}.");
            CommonOptions.RequireWritableFolder(folder, "--out");
            var (train, test) = binder.LoadData(result);
            var outputs = names.ToDictionary(name => name,
                name => TrainingRun.CheckOutput(Path.Combine(folder, name), result.GetValue(resume)));
            Console.WriteLine($"data: {train.Count} training and {test.Count} evaluation images from {train.Source}");
            using var device = CommonOptions.OpenDevice(result.GetValue(binder.Device));
            var runs = new Dictionary<string, IReadOnlyList<EpochRecord>>();
            foreach (string name in names)
            {
                using var trainer = new Trainer(device, binder.Options(result, name), train, test);
                using (outputs[name]) TrainingRun.Execute(trainer, name, outputs[name], result.GetValue(resume));
                runs[name] = trainer.History.ToList();
            }
            TrainingReport.SaveErrorCurves(Path.Combine(folder, "degradation.png"),
                "Degradation: plain vs residual (dashed: training error, bold: test error)", runs);
            var table = new StringBuilder("| model | final training error | final test error | images/s |\n|---|---|---|---|\n");
            var console = new Table().AddColumns("model", "final training error", "final test error", "images/s");
            foreach (var (name, history) in runs)
            {
                var last = history[^1];
                string[] cells = [name, Percent(last.TrainError), Percent(last.TestError),
                    history.Average(r => r.ImagesPerSecond).ToString("F0", CultureInfo.InvariantCulture)];
                table.AppendLine("| " + string.Join(" | ", cells) + " |");
                console.AddRow(cells);
            }
            AtomicFile.WriteAllText(Path.Combine(folder, "degradation.md"), table.ToString());
            AnsiConsole.Write(console);
            Console.WriteLine($"wrote {Path.Combine(folder, "degradation.png")} and degradation.md");
            return 0;
        });
        return command;
    }

    private static string Percent(double error) => (100 * error).ToString("F2", CultureInfo.InvariantCulture) + "%";
}
