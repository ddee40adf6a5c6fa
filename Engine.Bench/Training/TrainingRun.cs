// One training run as the commands show it: resume (rewriting the reports from the checkpoint's history first, in
// case a run was killed between its checkpoint and its reports), a live progress bar (loss, accuracy, images/s),
// and after every epoch an atomic checkpoint, the CSV and the error-curve PNG in the output folder; a cancelled
// run saves a checkpoint between two steps and says so. In a data-parallel job only rank 0 does all this; the other
// ranks train in step with it silently and write nothing.
using Engine.Bench.Reports;
using Engine.Models.Training;
using Spectre.Console;

namespace Engine.Bench.Training;

internal static class TrainingRun
{
    /// <summary>Checks and takes <paramref name="outputFolder"/> for a run before any training (see
    /// <see cref="OutputFolder.Open"/>) and says which stale temporary files it removed; the caller holds the
    /// result until the run ends.</summary>
    public static OutputFolder CheckOutput(string outputFolder, bool resume)
    {
        var output = OutputFolder.Open(outputFolder, resume);
        if (output.RemovedTemporaryFiles.Count > 0)
            Console.WriteLine($"removed {output.RemovedTemporaryFiles.Count} temporary file(s) of interrupted writes " +
                              $"from '{outputFolder}': {string.Join(", ", output.RemovedTemporaryFiles)}");
        return output;
    }

    /// <summary>A rank other than 0 of a data-parallel job: resumes from <paramref name="checkpoint"/> (when
    /// asked) and trains in step with rank 0, showing and writing nothing; false when the job was cancelled.</summary>
    public static bool ExecuteSilently(Trainer trainer, string checkpoint, bool resume,
        CancellationToken cancellationToken = default)
    {
        if (resume) trainer.Resume(checkpoint);
        try
        {
            while (!trainer.Finished) trainer.RunEpoch(null, cancellationToken);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Resumes (when asked) and trains to the end, or until <paramref name="cancellationToken"/> (or, in
    /// a data-parallel job, another rank's) is cancelled: then the step under way finishes, a checkpoint is saved
    /// and the method returns false.</summary>
    public static bool Execute(Trainer trainer, string label, OutputFolder output, bool resume,
        CancellationToken cancellationToken = default)
    {
        if (resume)
        {
            trainer.Resume(output.Checkpoint);
            WriteReports(trainer, label, output);
            AnsiConsole.MarkupLine(Markup.Escape($"{label}: resumed at iteration {trainer.Iteration} " +
                                                 $"(epoch {trainer.History.Count}) from {output.Checkpoint}"));
        }

        bool finished = false;
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
                try
                {
                    while (!trainer.Finished)
                    {
                        var record = trainer.RunEpoch(progress, cancellationToken);
                        trainer.Save(output.Checkpoint);
                        WriteReports(trainer, label, output);
                        AnsiConsole.MarkupLine(Markup.Escape(
                            $"{label} epoch {record.Epoch + 1}: train error {100 * record.TrainError:F2}%, test error " +
                            $"{100 * record.TestError:F2}%, lr {record.LearningRate:G3}, {record.ImagesPerSecond:F0} img/s"));
                    }
                    finished = true;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested ||
                                                         trainer.Communicator.Size > 1)
                {
                    trainer.Save(output.Checkpoint);
                    WriteReports(trainer, label, output);
                }
            });
        return finished;
    }

    /// <summary>history.csv and errors.png from the trainer's history.</summary>
    private static void WriteReports(Trainer trainer, string label, OutputFolder output)
    {
        TrainingReport.WriteCsv(output.HistoryCsv, trainer.History);
        TrainingReport.SaveErrorCurves(output.ErrorCurves, label, [(label, trainer.History)]);
    }

    /// <summary>Reports synchronously on the training thread.</summary>
    private sealed class Reporter(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
