// `train`: trains a model by name on Fashion-MNIST, MNIST or CIFAR-10 with SGD, Adam or AdamW and a schedule, with
// a live progress bar, a per-epoch CSV, an error-curve PNG and an atomic checkpoint each epoch in --out (locked for
// the run); --resume continues a run to bit-identical weights. The final test error is the last line printed.
// Ctrl-C or SIGTERM saves a checkpoint after the current step and exits with 130 or 143 (again: at once).
// `--distributed mpi|nccl` makes the process one rank of a data-parallel job started by mpirun (docs/distributed.md):
// rank 0 alone shows progress and writes the output folder. Checks that every rank makes alike (a batch the ranks
// cannot share, ranks that disagree, a checkpoint of another world size) are printed by rank 0 alone.
using System.CommandLine;
using Engine.Bench.Training;
using Engine.Core.Distributed;
using Engine.Models;
using Engine.Models.Training;

namespace Engine.Bench.Commands;

internal static class TrainCommand
{
    /// <summary>The --distributed values.</summary>
    private static readonly string[] Backends = ["none", "mpi", "nccl"];

    public static Command Create()
    {
        var binder = new TrainOptionsBinder();
        var model = new Option<string>("--model") { Description = "Model name, e.g. resnet20-a.", DefaultValueFactory = _ => "resnet20-a" };
        var output = new Option<string>("--out") { Description = "Folder for checkpoint, history.csv and errors.png.", DefaultValueFactory = _ => "out/train" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the checkpoint in --out." };
        var distributed = new Option<string>("--distributed") { Description = "Data-parallel over the ranks of an mpirun job: mpi (any device, through host memory) or nccl (one CUDA device per rank); none: one process.", DefaultValueFactory = _ => "none" };
        distributed.AcceptOnlyFromAmong(Backends);
        var syncBatchNorm = new Option<bool>("--sync-bn") { Description = "With --distributed: batch-norm statistics over every rank's slice of the batch (as one process with the whole --batch); default: each rank's own slice (PyTorch DDP)." };
        var collectiveTimeout = new Option<double>("--collective-timeout") { Description = "With --distributed: seconds one collective may wait for the other ranks before the job is aborted.", DefaultValueFactory = _ => MpiCommunicator.DefaultCollectiveTimeout.TotalSeconds };
        var bucketMib = new Option<double>("--bucket-mib") { Description = "With --distributed: most MiB of gradient averaged by one collective (PyTorch DDP's bucket_cap_mb).", DefaultValueFactory = _ => GradientBuckets<float>.DefaultBucketBytes / 1048576.0 };
        var noOverlap = new Option<bool>("--no-overlap") { Description = "With --distributed: all-reduce the gradients after backward rather than during it (same weights; for comparison)." };
        var command = new Command("train", "Trains a model on real data.")
            { model, output, resume, distributed, syncBatchNorm, collectiveTimeout, bucketMib, noOverlap };
        binder.AddTo(command);
        command.SetAction(result =>
        {
            string name = result.GetValue(model)!;
            ModelRegistry.Parse(name); // unknown names fail before any data is read
            var options = binder.Options(result, name) with { SyncBatchNorm = result.GetValue(syncBatchNorm) }; // so does an unknown optimizer
            string kind = result.GetValue(distributed)!;
            if (options.SyncBatchNorm && kind == "none")
                throw new ArgumentException("--sync-bn applies to a data-parallel run: add --distributed mpi or nccl.");
            double bucketMebibytes = result.GetValue(bucketMib);
            if (!(bucketMebibytes * 1048576 >= 4))
                throw new ArgumentException($"--bucket-mib must hold at least one float32 value; got {bucketMebibytes}.");
            using var communicator = Open(kind, result.GetValue(collectiveTimeout));
            bool rankZero = communicator.Rank == 0;
            if (!rankZero) Console.SetOut(TextWriter.Null); // progress and reports once, from rank 0
            // Checks every rank makes alike: rank 0 reports them, the others leave quietly with the same status. A
            // check that fails on every rank by construction (an argument, or the ranks' gathered disagreement:
            // sameOnEveryRank) holds the others at a barrier until rank 0 has printed its line, since mpirun ends the
            // whole job as soon as one rank exits with a non-zero status and would often kill rank 0 before it prints.
            int? Agreed(Action check, bool sameOnEveryRank = false)
            {
                try
                {
                    check();
                    return null;
                }
                catch (Exception error) when (sameOnEveryRank && communicator.Size > 1 &&
                                              error is ArgumentException or InvalidOperationException)
                {
                    if (rankZero)
                    {
                        string message = error is ArgumentException { ParamName: { } parameter }
                            ? error.Message.Replace($" (Parameter '{parameter}')", "") : error.Message;
                        Console.Error.WriteLine($"error: {message.ReplaceLineEndings(" ")}");
                        Console.Error.Flush();
                    }
                    communicator.Barrier();
                    return 2;
                }
                catch (Exception) when (!rankZero)
                {
                    return 2;
                }
            }
            if (Agreed(() => CheckBatch(options.BatchSize, communicator.Size), sameOnEveryRank: true) is int refused)
                return refused;
            var (train, test) = binder.LoadData(result);
            string checkpoint = Path.Combine(result.GetValue(output)!, Trainer.CheckpointFile);
            using var device = CommonOptions.OpenDevice(result.GetValue(binder.Device));
            Trainer? created = null;
            if (Agreed(() => created = new Trainer(device, options, train, test, communicator,
                    overlapGradients: !result.GetValue(noOverlap), bucketBytes: (long)(bucketMebibytes * 1048576)),
                    sameOnEveryRank: true) is int disagreed)
                return disagreed;
            using var trainer = created!;
            using var interruption = new Interruption();
            if (!rankZero)
            {
                bool done = false;
                if (Agreed(() => done = TrainingRun.ExecuteSilently(trainer, checkpoint, result.GetValue(resume),
                        interruption.Token)) is int failed)
                    return failed;
                return done ? 0 : interruption.ExitCode;
            }
            using var folder = TrainingRun.CheckOutput(result.GetValue(output)!, result.GetValue(resume)); // before any training
            Console.WriteLine($"data: {train.Count} training and {test.Count} evaluation images " +
                              $"{train.Channels}x{train.Height}x{train.Width} from {train.Source}");
            if (communicator.Size > 1)
                Console.WriteLine($"data-parallel: {communicator.Size} ranks ({communicator.Kind}), " +
                                  $"{options.BatchSize / communicator.Size} images per rank per step, batch-norm " +
                                  (options.SyncBatchNorm ? "synchronised" : "per rank") + $", {trainer.GradientBuckets} " +
                                  $"gradient bucket(s) of {trainer.GradientBytesPerStep / 1048576.0:F2} MiB in all per step, " +
                                  (trainer.GradientOverlapUnavailableReason is { } why
                                      ? $"all-reduced after backward ({why.TrimEnd('.')})" : "all-reduced during backward"));
            bool finished = TrainingRun.Execute(trainer, ModelRegistry.Parse(name).Name, folder,
                result.GetValue(resume), interruption.Token);
            if (communicator.Size > 1 && trainer.AllReduceSeconds.Count > 0)
            {
                var exposed = trainer.AllReduceSeconds.Order().ToList();
                var hidden = trainer.AllReduceHiddenSeconds.Order().ToList();
                Console.WriteLine($"gradient all-reduce: median {1000 * exposed[exposed.Count / 2]:F2} ms per step waited " +
                                  $"for after backward, {1000 * hidden[hidden.Count / 2]:F2} ms hidden behind it, over " +
                                  $"{exposed.Count} steps, {trainer.GradientBytesPerStep:N0} bytes per rank per step");
            }
            if (!finished)
            {
                Console.Error.WriteLine($"interrupted by {interruption.SignalName} at iteration {trainer.Iteration} of " +
                                        $"{trainer.TotalIterations}: checkpoint saved to '{folder.Checkpoint}'; run " +
                                        "the same command with --resume to continue");
                return interruption.ExitCode;
            }
            var last = trainer.History[^1];
            Console.WriteLine($"final test error: {100 * last.TestError:F2}% (train error {100 * last.TrainError:F2}%, " +
                              $"{trainer.Iteration} iterations)");
            return 0;
        });
        return command;
    }

    /// <summary>The job this process is a rank of: one process, or a rank of an mpirun job over MPI or NCCL.</summary>
    private static ICommunicator Open(string kind, double timeoutSeconds)
    {
        if (!(timeoutSeconds > 0))
            throw new ArgumentException($"--collective-timeout must be positive; got {timeoutSeconds}.");
        var timeout = TimeSpan.FromSeconds(timeoutSeconds);
        try
        {
            return kind switch
            {
                "mpi" => MpiCommunicator.Open(MpiReduction.RankOrdered, timeout),
                "nccl" => NcclCommunicator.Open(timeout),
                _ => new SingleProcessCommunicator(),
            };
        }
        catch (DllNotFoundException error)
        {
            throw new InvalidOperationException($"--distributed {kind}: {error.Message}", error);
        }
        catch (InvalidOperationException error) when (error.Message.Contains("not started by mpirun"))
        {
            throw new InvalidOperationException($"--distributed {kind}: {error.Message}", error);
        }
    }

    /// <summary>Every rank trains on an equal slice of each batch.</summary>
    private static void CheckBatch(int batch, int ranks)
    {
        if (batch % ranks != 0)
            throw new ArgumentException($"--batch {batch} is not a multiple of the {ranks} ranks: every rank trains on " +
                                        $"an equal slice of each batch; choose a --batch divisible by {ranks}.");
    }
}
