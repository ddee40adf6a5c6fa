// Data-parallel training as a user runs it: `mpirun -np 2 dotnet Engine.Bench.dll train --distributed mpi ...` on
// the shipped Fashion-MNIST subset (ResNet-20 A, `cpu`, 2 epochs of 2 steps of 16 images), compared with runs of
// one process in this test process:
//   (a) with --sync-bn, 2 ranks × 8 images give the weights of 1 process × 16 within 1e-5 relative, tensor by
//       tensor, after 4 SGD steps (see RelativeErrors for the definition and the learning rate), and the same bits
//       in two runs: one averaging the gradients in 64 KiB buckets during backward, one after it (--no-overlap);
//   (b) without it, PyTorch DDP's semantics: the weights of two in-process replicas, each normalising with the
//       statistics of its own 8 images, whose gradients are averaged (rank 0's running statistics);
//   (c) a rank that is killed, or stopped, ends the job within a bound, with a message;
//   (d) the 2-rank checkpoint loads in one process, and --resume with one process says why not;
// and the bad input: no mpirun, no NCCL, a batch the ranks cannot share, ranks that disagree, a gradient bucket
// below one value — one line each, nothing written. Without mpirun these tests are ignored, naming the package.
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Engine.Core;
using Engine.Core.Data;
using Engine.Core.Modules;
using Engine.Core.Optim;
using Engine.Models;
using Engine.Models.Prediction;
using Engine.Models.Training;
using Engine.Tests.Cli;
using Engine.Tests.TestData;
using NUnit.Framework;

namespace Engine.Tests.Distributed;

[NonParallelizable]
public sealed class DataParallelTests
{
    private const int Batch = 16, TrainImages = 32, TestImages = 16, Epochs = 2;
    private const double LearningRate = 0.001;
    private static readonly TimeSpan JobLimit = TimeSpan.FromSeconds(120);

    private static readonly TrainOptions Options =
        new() { Model = "resnet20-a", Epochs = Epochs, BatchSize = Batch, LearningRate = LearningRate };

    /// <summary>The shipped subset even where the full set is installed: the tests read its first 32 and 16 records,
    /// the same in both, and every rank of every job loads the folder (the subset is a tenth of the full set).</summary>
    private static string DataFolder => FashionMnistData.SubsetFolder;

    private string _root = "";
    private Device _device = null!;
    private string? _perRankCheckpoint;

    /// <summary>The checkpoint of one 2-rank run without --sync-bn, shared by the tests that read it.</summary>
    private string PerRankCheckpoint => _perRankCheckpoint ??= TrainOnTwoRanks("per-rank");
    private ImageDataset _train = null!, _test = null!;

    [OneTimeSetUp]
    public void Prepare()
    {
        _root = Path.Combine(Path.GetTempPath(), $"engine-dp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_root);
        _device = Device.Create("cpu");
        _train = FashionMnist.ReadTrain(DataFolder).Take(TrainImages);
        _test = FashionMnist.ReadTest(DataFolder).Take(TestImages);
    }

    [OneTimeTearDown]
    public void Remove()
    {
        _device.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    /// <summary>The train command on the subset; an option of <paramref name="more"/> that the defaults have
    /// replaces its value there.</summary>
    private static string[] Train(string output, params string[] more)
    {
        var arguments = new List<string>
        {
            MpiJob.Dotnet, MpiJob.BenchDll, "train", "--model", "resnet20-a", "--data", "fashion-mnist", "--data-path",
            DataFolder, "--train-subset", $"{TrainImages}", "--test-subset", $"{TestImages}", "--batch",
            $"{Batch}", "--epochs", $"{Epochs}", "--lr", $"{LearningRate}", "--device", "cpu", "--out", output,
        };
        for (int i = 0; i < more.Length; i++)
        {
            int at = arguments.IndexOf(more[i]);
            if (at >= 0 && i + 1 < more.Length && !more[i + 1].StartsWith("--")) arguments[at + 1] = more[++i];
            else arguments.Add(more[i]);
        }
        return [.. arguments];
    }

    /// <summary>A 2-rank training job into a new folder of <paramref name="name"/>; asserts that it succeeded and
    /// that progress and reports came once.</summary>
    private string TrainOnTwoRanks(string name, params string[] more)
    {
        string output = Path.Combine(_root, name);
        var job = MpiJob.Launch(JobLimit, null, ["-np", "2", .. Train(output, ["--distributed", "mpi", .. more])]);
        Assert.That(job.ExitCode, Is.Zero, job.Output);
        Assert.That(Regex.Matches(job.Output, $"epoch {Epochs}: train error").Count, Is.EqualTo(1), "one progress: " + job.Output);
        Assert.That(Regex.Matches(job.Output, "device: cpu").Count, Is.EqualTo(1), job.Output);
        Assert.That(job.Output, Does.Contain("data-parallel: 2 ranks (mpi), 8 images per rank per step"));
        Assert.That(Directory.GetFiles(output).Select(Path.GetFileName),
            Is.EquivalentTo(new[] { ".lock", "checkpoint.safetensors", "history.csv", "errors.png" }));
        return Path.Combine(output, Trainer.CheckpointFile);
    }

    /// <summary>The model's parameters and buffers in a checkpoint, by name.</summary>
    private Dictionary<string, float[]> Weights(string checkpoint)
    {
        using var classifier = ImageClassifier.Load(_device, checkpoint);
        return classifier.Model.StateDict().ToDictionary(e => e.Name, e => e.Tensor.ToArray());
    }

    private static Dictionary<string, float[]> Weights(Module<float> model) =>
        model.StateDict().ToDictionary(e => e.Name, e => e.Tensor.ToArray());

    /// <summary>
    /// The relative error of every tensor of the state: ‖a − b‖₂ / max(‖a‖₂, ‖b‖₂), except for a batch-norm shift β
    /// (name ending in "bn….bias"), whose error is taken relative to the norm of its layer's scale γ instead.
    /// Why: β starts at zero, so its value is nothing but the sum of its updates, and its gradient Σ dy is a sum
    /// with heavy cancellation (over N·H·W values, and the class gradients of softmax cross-entropy sum to zero): a
    /// different but equally exact summation order (each rank sums its 8 images, then the two sums are added)
    /// changes it by 1e-5 to 3e-5 of its own tiny norm at every learning rate measured (1e-3 to 1e-1), although
    /// the layer's output γ·x̂ + β moves by ‖Δβ‖ per channel against a scale of ‖γ‖ — a relative change of 1e-9
    /// here. Every other tensor is measured against its own norm.
    /// </summary>
    private static Dictionary<string, double> RelativeErrors(Dictionary<string, float[]> a, Dictionary<string, float[]> b)
    {
        Assert.That(a.Keys, Is.EquivalentTo(b.Keys));
        static double Norm(float[] values) => Math.Sqrt(values.Sum(v => (double)v * v));
        var errors = new Dictionary<string, double>();
        foreach (var (name, values) in b)
        {
            double difference = Math.Sqrt(values.Zip(a[name], (x, y) => ((double)x - y) * ((double)x - y)).Sum());
            bool shift = name.EndsWith(".bias", StringComparison.Ordinal) && name.Split('.')[^2].StartsWith("bn");
            string scaleName = shift ? name[..^"bias".Length] + "weight" : name;
            double scale = Math.Max(Norm(a[scaleName]), Norm(b[scaleName]));
            errors[name] = scale == 0 ? difference : difference / scale;
        }
        return errors;
    }

    /// <summary>The largest of <see cref="RelativeErrors"/>, with its tensor.</summary>
    private static (double Worst, string Where) Worst(Dictionary<string, double> errors)
    {
        var worst = errors.MaxBy(entry => entry.Value);
        return (worst.Value, worst.Key);
    }

    private static bool BitIdentical(Dictionary<string, float[]> a, Dictionary<string, float[]> b) =>
        a.Keys.All(name => MemoryMarshal.AsBytes(a[name].AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(b[name].AsSpan())));

    /// <remarks>The learning rate is 0.001 under the default multistep schedule (0.001, 0.001, 0.0001, 0.00001 over
    /// the 4 steps), not the trainer's default 0.1: the two runs start from the same weights and their first
    /// gradients agree to 2e-6 per tensor, but at 0.1 this small-batch run is so sensitive to its weights that the
    /// second step's gradients already differ by 5e-4 and the weights after 4 steps by 7e-4. At 0.01 it is still
    /// sensitive to rounding alone: two one-process runs whose only difference is the summation order of the strided
    /// data gradient (two exact forms, each with the same bits for an image at batch 1, 8 and 16) end 2e-4 apart,
    /// 4.5e-6 at 0.003 and 8e-8 at 0.001. That growth is the trajectory's, not the reduction's
    /// (docs/distributed.md).</remarks>
    [Test]
    public void SyncBatchNormOnTwoRanksIsOneProcessWithTheWholeBatch()
    {
        var overlapped = Weights(TrainOnTwoRanks("sync-overlapped", "--sync-bn", "--bucket-mib", "0.0625"));
        var afterBackward = Weights(TrainOnTwoRanks("sync-after-backward", "--sync-bn", "--no-overlap"));
        Assert.That(BitIdentical(overlapped, afterBackward),
            "two runs of 2 ranks, one reducing 64 KiB buckets during backward and one after it, give the same bits");

        using var single = new Trainer(_device, Options with { SyncBatchNorm = true }, _train, _test);
        while (!single.Finished) single.RunEpoch();
        var errors = RelativeErrors(overlapped, Weights(single.Model));
        var (worst, where) = Worst(errors);
        TestContext.Out.WriteLine($"sync-bn, 2 ranks × 8 vs 1 × 16: largest relative error of a tensor {worst:E2} " +
                                  $"({where}) over {errors.Count} tensors");
        Assert.That(errors.Where(e => e.Value > 1e-5).Select(e => $"{e.Key} {e.Value:E2}"), Is.Empty,
            "tensors beyond 1e-5 relative");

        var (contrast, contrastWhere) = Worst(RelativeErrors(Weights(PerRankCheckpoint), Weights(single.Model)));
        TestContext.Out.WriteLine($"per-rank batch-norm, 2 ranks × 8 vs 1 × 16: largest relative error {contrast:E2} ({contrastWhere})");
        Assert.That(contrast, Is.GreaterThan(100 * worst), "without --sync-bn the statistics differ, and so do the weights");
    }

    [Test]
    public void WithoutSyncBatchNormTwoRanksFollowDdpSemantics()
    {
        var ranks = Weights(PerRankCheckpoint);
        var replica = EmulateDdp();
        var (worst, where) = Worst(RelativeErrors(ranks, replica));
        TestContext.Out.WriteLine($"per-rank batch-norm, 2 ranks vs in-process DDP emulation: largest relative error " +
                                  $"{worst:E2} ({where}); bit-identical: {BitIdentical(ranks, replica)}");
        Assert.That(worst, Is.LessThanOrEqualTo(1e-5), $"largest relative error {worst:E2} in {where}");
    }

    /// <summary>PyTorch DDP in one process: two replicas of the seeded model, each trained on its half of every
    /// batch with its own batch-norm statistics; after each backward both take the average gradient (x0 + x1) / 2,
    /// as a 2-rank all-reduce computes it; replica 0's parameters and running statistics are returned.</summary>
    private Dictionary<string, float[]> EmulateDdp()
    {
        var normalization = Normalization.PerChannel(_train);
        var models = new ResNet<float>[2];
        var optimizers = new Sgd<float>[2];
        var loaders = new BatchLoader[2];
        for (int r = 0; r < 2; r++)
        {
            models[r] = ModelRegistry.Create<float>("resnet20-a", _device, Options.Seed, _train.Classes, inputChannels: 1);
            optimizers[r] = new Sgd<float>(models[r].Parameters(), Options.LearningRate, Options.Momentum, 0,
                Options.WeightDecay);
            loaders[r] = new BatchLoader(_train, Batch, shuffle: true, Options.Seed, normalization, new Augmentation(),
                shardIndex: r, shardCount: 2) { Prefetch = false };
        }
        int steps = TrainImages / Batch, total = Epochs * steps;
        var schedule = LearningRateSchedule.Create("multistep", Options.LearningRate, total);
        int iteration = 0;
        for (int epoch = 0; epoch < Epochs; epoch++)
        {
            var batches = loaders.Select(loader => loader.Epoch(epoch).GetEnumerator()).ToArray();
            for (int step = 0; step < steps; step++)
            {
                for (int r = 0; r < 2; r++)
                {
                    Assert.That(batches[r].MoveNext());
                    var batch = batches[r].Current;
                    using var scope = TensorScope.Begin();
                    var x = Tensor.FromArray(batch.Images, [batch.Count, 1, 28, 28], _device);
                    models[r].Forward(x).CrossEntropy(batch.Labels).Backward();
                }
                var grads = models.Select(m => m.Parameters().Select(p => p.Grad!).ToList()).ToArray();
                for (int i = 0; i < grads[0].Count; i++)
                {
                    var g0 = grads[0][i].ToArray();
                    var g1 = grads[1][i].ToArray();
                    var average = g0.Zip(g1, (a, b) => (a + b) / 2f).ToArray();
                    grads[0][i].CopyFrom(average);
                    grads[1][i].CopyFrom(average);
                }
                foreach (var optimizer in optimizers)
                {
                    optimizer.LearningRate = schedule.RateAt(iteration);
                    optimizer.Step();
                    optimizer.ZeroGrad();
                }
                iteration++;
            }
        }
        var weights = Weights(models[0]);
        foreach (var optimizer in optimizers) optimizer.Dispose();
        foreach (var model in models) model.Dispose();
        return weights;
    }

    [Test]
    public void TwoRankCheckpointLoadsInOneProcessButResumesOnlyOnTwo()
    {
        string checkpoint = PerRankCheckpoint;
        using var history = System.Text.Json.JsonDocument.Parse(
            Engine.Core.Serialization.SafeTensors.ReadHeader(checkpoint).Metadata["history"]);
        double recorded = history.RootElement[Epochs - 1].GetProperty(nameof(EpochRecord.TestError)).GetDouble();
        using var single = new Trainer(_device, Options, _train, _test);
        using (var classifier = ImageClassifier.Load(_device, checkpoint))
        using (Engine.Core.Autograd.GradMode.NoGrad())
            foreach (var ((_, target), (_, source)) in single.Model.StateDict().Zip(classifier.Model.StateDict()))
                target.CopyFrom(source.ToArray());
        var (_, error) = single.Evaluate(_test);
        Assert.That(error, Is.EqualTo(recorded), "one process evaluates the 2-rank weights to rank 0's test error");

        var refused = Assert.Throws<InvalidDataException>(() => single.Resume(checkpoint))!;
        Assert.That(refused.Message, Does.Contain("written by a run of 2 rank(s) and this run has 1"));

        using var cli = BenchCli.Run(Train(Path.GetDirectoryName(checkpoint)!, "--resume")[2..]);
        Assert.That(cli.ExitCode, Is.EqualTo(2), cli.Transcript);
        Assert.That(cli.Stderr, Has.Count.EqualTo(1), cli.Transcript);
        Assert.That(cli.Stderr[0], Does.Contain("written by a run of 2 rank(s) and this run has 1: resume it with 2 rank(s)"));
    }

    [Test]
    public void KilledRankEndsTheJob()
    {
        string marker = Guid.NewGuid().ToString("N");
        var job = MpiJob.Launch(JobLimit, (_, output) =>
            {
                WaitFor(output, "data-parallel:");
                Kill(RankProcess(marker, 1), 9);
            }, ["-np", "2", "-x", $"ENGINE_TEST_JOB={marker}",
                .. Train(Path.Combine(_root, "killed"), "--distributed", "mpi", "--epochs", "1000")]);
        Assert.That(job.ExitCode, Is.Not.Zero, job.Output);
        Assert.That(job.Output, Does.Contain("signal 9").Or.Contain("exited on signal").Or.Contain("killed"), job.Output);
        Assert.That(job.Elapsed, Is.LessThan(TimeSpan.FromSeconds(90)));
    }

    [Test]
    public void StoppedRankIsAbortedByTheCollectiveTimeout()
    {
        string marker = Guid.NewGuid().ToString("N");
        int stopped = 0;
        try
        {
            var clock = Stopwatch.StartNew();
            var job = MpiJob.Launch(JobLimit, (_, output) =>
                {
                    WaitFor(output, "data-parallel:");
                    stopped = RankProcess(marker, 1);
                    clock.Restart();
                    Kill(stopped, 19); // SIGSTOP: the rank hangs
                }, ["-np", "2", "-x", $"ENGINE_TEST_JOB={marker}",
                    .. Train(Path.Combine(_root, "stopped"), "--distributed", "mpi", "--epochs", "1000",
                        "--collective-timeout", "3")]);
            Assert.That(job.ExitCode, Is.Not.Zero, job.Output);
            Assert.That(job.Output, Does.Match(@"error: rank 0 of 2: .* did not complete within 3 s: another rank died, hangs"));
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(45)), "ended within a bound of the stop");
        }
        finally
        {
            if (stopped > 0) Kill(stopped, 9);
        }
    }

    /// <summary>Waits until the job has printed <paramref name="text"/> (at most the job limit).</summary>
    private static void WaitFor(Func<string> output, string text)
    {
        var clock = Stopwatch.StartNew();
        while (!output().Contains(text, StringComparison.Ordinal))
        {
            if (clock.Elapsed > JobLimit || output().Contains("error:"))
                Assert.Fail($"the job never printed '{text}':\n{output()}");
            Thread.Sleep(100);
        }
    }

    /// <summary>The process of rank <paramref name="rank"/> of the job whose ranks carry
    /// ENGINE_TEST_JOB=<paramref name="marker"/>.</summary>
    private static int RankProcess(string marker, int rank)
    {
        foreach (string folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out int pid)) continue;
            string environment;
            try
            {
                environment = File.ReadAllText(Path.Combine(folder, "environ"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            var variables = environment.Split('\0');
            if (variables.Contains($"ENGINE_TEST_JOB={marker}") && variables.Contains($"OMPI_COMM_WORLD_RANK={rank}"))
                return pid;
        }
        Assert.Fail($"no process of rank {rank} found");
        return 0;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private static void Kill(int pid, int signal) => SendSignal(pid, signal);

    [Test]
    public void WithoutMpirunTheRunStopsWithOneLine()
    {
        if (MpiJob.InsideMpiJob) Assert.Ignore("this test process runs under mpirun itself.");
        string output = Path.Combine(_root, "no-mpirun");
        using var run = BenchCli.Run(Train(output, "--distributed", "mpi")[2..]);
        Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
        Assert.That(run.Stderr, Is.EqualTo(new[] { "error: --distributed mpi: This process was not started by mpirun " +
            "(OMPI_COMM_WORLD_SIZE is not set): start every rank with it, e.g. `mpirun -np 2 <command>`." }), run.Transcript);
        Assert.That(Directory.Exists(output), Is.False, "nothing written");
    }

    [Test]
    public void BucketSmallerThanOneValueIsRefusedWithOneLine()
    {
        string output = Path.Combine(_root, "bucket");
        using var run = BenchCli.Run(Train(output, "--bucket-mib", "0")[2..]);
        Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
        Assert.That(run.Stderr, Is.EqualTo(new[] { "error: --bucket-mib must hold at least one float32 value; got 0." }),
            run.Transcript);
        Assert.That(Directory.Exists(output), Is.False, "nothing written");
    }

    [Test]
    public void NcclWithoutLibraryOrDeviceIsRefusedWithOneLine()
    {
        string output = Path.Combine(_root, "nccl");
        using var run = BenchCli.Run(Train(output, "--distributed", "nccl")[2..]);
        if (NativeLibrary.TryLoad("libnccl.so.2", out var nccl) && NativeLibrary.TryLoad("libcuda.so.1", out _))
        {
            NativeLibrary.Free(nccl);
            Assert.Inconclusive("NCCL and the CUDA driver are installed here: the refusal cannot be exercised.");
        }
        Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
        Assert.That(run.Stderr, Has.Count.EqualTo(1), run.Transcript);
        Assert.That(run.Stderr[0], Does.StartWith("error: --distributed nccl needs ")
            .And.Contain("libnccl.so.2 was not found").Or.Contain("CUDA"), run.Transcript);
        Assert.That(Directory.Exists(output), Is.False, "nothing written");
    }

    [Test]
    public void BatchThatTheRanksCannotShareIsRefusedOnce()
    {
        string output = Path.Combine(_root, "odd-batch");
        var job = MpiJob.Launch(JobLimit, null, ["-np", "2", .. Train(output, "--distributed", "mpi", "--batch", "15")]);
        Assert.That(job.ExitCode, Is.Not.Zero, job.Output);
        Assert.That(Regex.Matches(job.Output, "^error: ", RegexOptions.Multiline).Count, Is.EqualTo(1), job.Output);
        Assert.That(job.Output, Does.Contain("error: --batch 15 is not a multiple of the 2 ranks"));
        Assert.That(Directory.Exists(output), Is.False, "nothing written");
    }

    [Test]
    public void RanksWithOtherDataOrOptionsAreRefusedOnce()
    {
        string output = Path.Combine(_root, "mismatch");
        var job = MpiJob.Launch(JobLimit, null,
            ["-np", "1", .. Train(output, "--distributed", "mpi"), ":",
                "-np", "1", .. Train(output, "--distributed", "mpi", "--train-subset", "48", "--seed", "3")]);
        Assert.That(job.ExitCode, Is.Not.Zero, job.Output);
        Assert.That(Regex.Matches(job.Output, "^error: ", RegexOptions.Multiline).Count, Is.EqualTo(1), job.Output);
        Assert.That(job.Output, Does.Contain("error: The 2 ranks of this job disagree: rank 1 has other options than " +
                                             "rank 0; rank 1 has other data than rank 0; every rank must run the same " +
                                             "command on the same data."));
        Assert.That(Directory.Exists(output), Is.False, "nothing written");
    }

    [Test]
    public void ShardsOfEveryBatchTogetherAreTheOneProcessBatch()
    {
        var normalization = Normalization.PerChannel(_train);
        using var whole = new BatchLoader(_train, 10, shuffle: true, seed: 4, normalization, Augmentation.None);
        var shards = Enumerable.Range(0, 3).Select(r =>
            new BatchLoader(_train, 10, shuffle: true, seed: 4, normalization, Augmentation.None, shardIndex: r,
                shardCount: 3) { Prefetch = false }).ToArray();
        var expected = whole.Epoch(1).Select(b => b.Labels.ToArray()).ToList();
        var sliced = shards.Select(s => s.Epoch(1).Select(b => b.Labels.ToArray()).ToList()).ToArray();
        Assert.That(expected, Has.Count.EqualTo(4)); // 10, 10, 10 and a last batch of 2
        for (int i = 0; i < expected.Count; i++)
            Assert.That(sliced.SelectMany(s => s[i]), Is.EqualTo(expected[i]), $"batch {i}");
        Assert.That(sliced.Select(s => s[0].Length), Is.EqualTo(new[] { 3, 3, 4 }));
        foreach (var shard in shards) shard.Dispose();
    }
}
