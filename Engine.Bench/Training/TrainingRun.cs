// One training run as the commands show it: resume or refuse to overwrite, a live progress bar (loss, accuracy,
// images/s), and after every epoch an atomic checkpoint, the CSV and the error-curve PNG in the output folder.
using Engine.Bench.Reports;
using Engine.Models.Training;
using Spectre.Console;

namespace Engine.Bench.Training;

internal static class TrainingRun
{
    /// <summary>Checks, before any training, that the run can start and that <paramref name="outputFolder"/> can
    /// take its files: a checkpoint to resume exists (or none to overwrite), and the folder is writable.</summary>
    public static void CheckOutput(string outputFolder, bool resume)
    {
        string checkpoint = Path.Combine(outputFolder, Trainer.CheckpointFile);
        if (resume && !File.Exists(checkpoint))
            throw new FileNotFoundException($"--resume: no checkpoint at '{checkpoint}'.", checkpoint);
        if (!resume && File.Exists(checkpoint))
            throw new InvalidOperationException(
                $"'{outputFolder}' already holds a checkpoint; pass --resume to continue it or choose another --out.");
        Directory.CreateDirectory(outputFolder);
        string probe = Path.Combine(outputFolder, $".write-test-{Guid.NewGuid():N}");
        File.WriteAllText(probe, "");
        File.Delete(probe);
    }

    public static void Execute(Trainer trainer, string label, string outputFolder, bool resume,
        Action<Trainer>? afterEpoch = null)
    {
        CheckOutput(outputFolder, resume);
        string checkpoint = Path.Combine(outputFolder, Trainer.CheckpointFile);
        if (resume)
        {
            trainer.Resume(checkpoint);
            AnsiConsole.MarkupLine(Markup.Escape($"{label}: resumed at iteration {trainer.Iteration} " +
                                                 $"(epoch {trainer.History.Count}) from {checkpoint}"));
        }

        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(label), maxValue: trainer.TotalIterations);
                task.Value = trainer.Iteration;
                var progress = new Reporter(p =>
                {
                    task.Value = p.Iteration;
                    task.Description = Markup.Escape(
                        $"{label} epoch {p.Epoch + 1}: loss {p.Loss:F3} acc {100 * p.Accuracy:F1}% {p.ImagesPerSecond:F0} img/s");
                });
                while (!trainer.Finished)
                {
                    var record = trainer.RunEpoch(progress);
                    trainer.Save(checkpoint);
                    TrainingReport.WriteCsv(Path.Combine(outputFolder, "history.csv"), trainer.History);
                    TrainingReport.SaveErrorCurves(Path.Combine(outputFolder, "errors.png"), label,
                        new Dictionary<string, IReadOnlyList<EpochRecord>> { [label] = trainer.History });
                    AnsiConsole.MarkupLine(Markup.Escape(
                        $"{label} epoch {record.Epoch + 1}: train error {100 * record.TrainError:F2}%, test error " +
                        $"{100 * record.TestError:F2}%, lr {record.LearningRate:G3}, {record.ImagesPerSecond:F0} img/s"));
                    afterEpoch?.Invoke(trainer);
                }
            });
    }

    /// <summary>Reports synchronously on the training thread.</summary>
    private sealed class Reporter(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
