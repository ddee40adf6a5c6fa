// `degradation`: the paper's degradation experiment (fig. 1 and 6) in one command — plain-20, plain-56,
// ResNet-20 and ResNet-56 trained with the same options on the same data, one error-curve plot (thin dashed:
// training error, bold: test error; plain networks left, residual right) and a table of final training and test
// errors that says whether each kind's deeper network trains better or worse. The default is a Fashion-MNIST subset
// so it finishes on a CPU; flags enlarge it.
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
        // A default that finishes within 45 minutes on 2 cores: 10,000 Fashion-MNIST training images, 2,000 test
        // images, 8 epochs of batch 64 (1,256 iterations) at the paper's learning rate 0.1 (÷10 at 50% and 75%),
        // the residual networks zero-initialised (each block's last batch-norm gamma 0, torchvision's
        // zero_init_residual): from the paper's initialisation (a trial with a 100-iteration warm-up at 0.01) ResNet-56
        // starts far behind ResNet-20 (62% against 49% training error after the first epoch) and cannot catch up in so
        // few iterations; starting every block as the identity it keeps level from the first epoch and ends ahead.
        var binder = new TrainOptionsBinder(defaultEpochs: 8, defaultTrainSubset: 10000, defaultTestSubset: 2000,
            defaultBatch: 64, defaultLearningRate: 0.1, defaultZeroInitResidual: true);
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
            var runs = new List<(string Name, IReadOnlyList<EpochRecord> History)>();
            foreach (string name in names)
            {
                var options = binder.Options(result, name);
                if (ModelRegistry.Parse(name).IsPlain)
                    options = options with { ZeroInitResidual = false }; // a plain network has no branch to zero
                using var trainer = new Trainer(device, options, train, test);
                using (outputs[name]) TrainingRun.Execute(trainer, name, outputs[name], result.GetValue(resume));
                runs.Add((name, trainer.History.ToList()));
            }
            // The paper's figure 6: plain networks left, residual right, each by depth, on one error axis.
            var kinds = DegradationReport.ByKind(runs);
            TrainingReport.SaveErrorCurves(Path.Combine(folder, "degradation.png"), kinds
                .Select(kind => new ErrorPanel(
                    $"{kind.Label} networks (dashed: training error, bold: test error)", kind.Runs))
                .ToList());
            var table = new StringBuilder("| model | final training error | final test error | images/s |\n|---|---|---|---|\n");
            var console = new Table().AddColumns("model", "final training error", "final test error", "images/s");
            foreach (var (name, history) in runs)
            {
                var last = history[^1];
                string[] cells =
                [
                    name, DegradationReport.Percent(last.TrainError), DegradationReport.Percent(last.TestError),
                    history.Average(r => r.ImagesPerSecond).ToString("F0", CultureInfo.InvariantCulture),
                ];
                table.AppendLine("| " + string.Join(" | ", cells) + " |");
                console.AddRow(cells);
            }
            var verdicts = DegradationReport.Verdicts(kinds);
            foreach (string verdict in verdicts) table.AppendLine().AppendLine(verdict);
            AtomicFile.WriteAllText(Path.Combine(folder, "degradation.md"), table.ToString());
            AnsiConsole.Write(console);
            foreach (string verdict in verdicts) Console.WriteLine(verdict);
            Console.WriteLine($"wrote {Path.Combine(folder, "degradation.png")} and degradation.md");
            return 0;
        });
        return command;
    }
}
