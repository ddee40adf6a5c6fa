// `train` as a user runs it, in child processes on the shipped Fashion-MNIST subset (64 images, ResNet-20 A, `cpu`):
// Ctrl-C saves a checkpoint that resumes to the uninterrupted run's weights bit for bit, the output folder is
// locked for a run's lifetime (and not after a kill), stale temporary files are removed, reports are rewritten on
// resume, and output paths and checkpoint fields that cannot work stop the run with one line before any training.
using System.Text.Json;
using Engine.Core.Serialization;
using Engine.Models.Training;
using Engine.Tests.TestData;
using NUnit.Framework;

namespace Engine.Tests.Cli;

[NonParallelizable]
public sealed class TrainCommandTests
{
    private string _root = "";

    /// <summary>The uninterrupted run every test compares with or starts from: 2 epochs of 4 steps.</summary>
    private string _reference = "";

    private static string[] Train(string output, params string[] more) =>
    [
        "train", "--model", "resnet20-a", "--data", "fashion-mnist", "--data-path", FashionMnistData.Folder,
        "--train-subset", "64", "--test-subset", "16", "--batch", "16", "--epochs", "2", "--device", "cpu",
        "--out", output, .. more,
    ];

    [OneTimeSetUp]
    public void TrainReference()
    {
        _root = Path.Combine(Path.GetTempPath(), $"engine-cli-{Guid.NewGuid():N}");
        _reference = Path.Combine(_root, "reference");
        using var run = BenchCli.Run(Train(_reference));
        Assert.That(run.ExitCode, Is.Zero, run.Transcript);
    }

    [OneTimeTearDown]
    public void RemoveFolders() => Directory.Delete(_root, recursive: true);

    /// <summary>A copy of the reference run's folder (checkpoint and reports).</summary>
    private string CopyOfReference(string name)
    {
        string folder = Path.Combine(_root, name);
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.EnumerateFiles(_reference))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        return folder;
    }

    [Test]
    public void CtrlCSavesACheckpointThatResumesToTheUninterruptedWeights()
    {
        string folder = Path.Combine(_root, "interrupted");
        using (var run = BenchCli.Start(Train(folder)))
        {
            run.WaitForLine("epoch 1: train error"); // after the first checkpoint
            if (run.IgnoresSigint())
                Assert.Inconclusive("Processes started here ignore SIGINT (a background job without job control).");
            run.Signal("INT");
            run.WaitForExit();
            Assert.That(run.ExitCode, Is.EqualTo(130), run.Transcript);
            Assert.That(run.Stderr, Has.Some.Contains("interrupted by Ctrl-C (SIGINT) at iteration")
                .And.Contains("checkpoint saved"), run.Transcript);
            Assert.That(run.Stdout, Has.None.Contains("final test error"), "it stopped before the end");
        }
        int iteration = int.Parse(SafeTensors.ReadHeader(Path.Combine(folder, Trainer.CheckpointFile))
            .Metadata["iteration"]);
        TestContext.Out.WriteLine($"interrupted at iteration {iteration} of 8");
        Assert.That(iteration, Is.InRange(4, 7), "saved after the first epoch, before the end");

        using (var resumed = BenchCli.Run(Train(folder, "--resume")))
            Assert.That(resumed.ExitCode, Is.Zero, resumed.Transcript);
        AssertSameTensors(Path.Combine(folder, Trainer.CheckpointFile), Path.Combine(_reference, Trainer.CheckpointFile));
    }

    /// <summary>The same tensors, bit for bit (the metadata holds timings and differs).</summary>
    private static void AssertSameTensors(string actual, string expected)
    {
        var (a, b) = (SafeTensors.ReadHeader(actual), SafeTensors.ReadHeader(expected));
        Assert.That(a.Tensors.Select(t => t.Name), Is.EqualTo(b.Tensors.Select(t => t.Name)));
        Assert.That(a.DataLength, Is.EqualTo(b.DataLength));
        byte[] Data(string path, SafeTensorsHeader header) =>
            File.ReadAllBytes(path).AsSpan((int)header.DataStart, (int)header.DataLength).ToArray();
        Assert.That(Data(actual, a).SequenceEqual(Data(expected, b)), Is.True, "weights and optimizer state");
    }

    [Test]
    public void ASecondRunOnTheSameFolderStopsNamingTheFirstAndAKilledRunLeavesNoLock()
    {
        string folder = Path.Combine(_root, "locked");
        // The first run must still hold the folder when the second looks, so it is given epochs it never finishes
        // (it is killed below): its two epochs had ended before the second process reached the lock.
        string[] endless = Train(folder);
        endless[Array.IndexOf(endless, "--epochs") + 1] = "1000";
        using (var first = BenchCli.Start(endless))
        {
            first.WaitForLine("data:"); // the folder is taken before the data line
            using (var second = BenchCli.Run(Train(folder)))
            {
                Assert.That(second.ExitCode, Is.EqualTo(2), second.Transcript);
                Assert.That(second.Stderr, Has.Count.EqualTo(1), second.Transcript);
                Assert.That(second.Stderr[0], Does.Contain("in use by another run")
                    .And.Contain($"process {first.Id} on {Environment.MachineName}"));
            }
            first.Signal("KILL");
            first.WaitForExit();
        }
        // The lock went with the killed process: the next run takes the folder and gets as far as the check that
        // follows the lock (a checkpoint is there, without --resume).
        File.Copy(Path.Combine(_reference, Trainer.CheckpointFile), Path.Combine(folder, Trainer.CheckpointFile),
            overwrite: true);
        using var third = BenchCli.Run(Train(folder));
        Assert.That(third.ExitCode, Is.EqualTo(2), third.Transcript);
        Assert.That(third.Stderr, Is.EqualTo(new[]
        {
            $"error: '{folder}' already holds a checkpoint; pass --resume to continue it or choose another --out.",
        }));
    }

    [Test]
    public void ResumeRemovesStaleTemporaryFilesAndRewritesStaleReports()
    {
        string folder = CopyOfReference("stale");
        string[] stale =
        [
            $"{Trainer.CheckpointFile}.{Guid.NewGuid():N}.tmp.safetensors", $"history.csv.{Guid.NewGuid():N}.tmp.csv",
            $"errors.png.{Guid.NewGuid():N}.tmp.png",
        ];
        string[] kept =
        [
            "notes.tmp", $"{Trainer.CheckpointFile}.backup.tmp", "history.tmp.csv", "history.csv.tmp.csv",
            $"{Trainer.CheckpointFile}.{Guid.NewGuid():N}.tmp",
        ];
        foreach (string name in stale.Concat(kept)) File.WriteAllText(Path.Combine(folder, name), "half");
        string history = File.ReadAllText(Path.Combine(folder, "history.csv"));
        File.WriteAllText(Path.Combine(folder, "history.csv"), "stale"); // killed between checkpoint and reports
        File.Delete(Path.Combine(folder, "errors.png"));

        using var run = BenchCli.Run(Train(folder, "--resume")); // a finished run: nothing left to train
        Assert.That(run.ExitCode, Is.Zero, run.Transcript);
        Assert.That(run.Stdout, Has.Some.Contains("removed 3 temporary file(s)"), run.Transcript);
        foreach (string name in stale) Assert.That(File.Exists(Path.Combine(folder, name)), Is.False, name);
        foreach (string name in kept) Assert.That(File.Exists(Path.Combine(folder, name)), Is.True, name);
        Assert.That(File.ReadAllText(Path.Combine(folder, "history.csv")), Is.EqualTo(history),
            "rewritten from the checkpoint's history");
        Assert.That(new FileInfo(Path.Combine(folder, "errors.png")).Length, Is.GreaterThan(1000), "errors.png");
    }

    [TestCase("file")]
    [TestCase("checkpoint is a folder")]
    [TestCase("checkpoint is a folder, --resume")]
    [TestCase("history.csv is a folder")]
    [TestCase("not writable")]
    public void OutputThatCannotBeWrittenStopsWithOneLineBeforeTraining(string problem)
    {
        string folder = Path.Combine(_root, $"bad-{Guid.NewGuid():N}");
        string[] extra = [];
        switch (problem)
        {
            case "file":
                File.WriteAllText(folder, "");
                break;
            case "checkpoint is a folder":
                Directory.CreateDirectory(Path.Combine(folder, Trainer.CheckpointFile));
                break;
            case "checkpoint is a folder, --resume":
                Directory.CreateDirectory(Path.Combine(folder, Trainer.CheckpointFile));
                extra = ["--resume"];
                break;
            case "history.csv is a folder":
                Directory.CreateDirectory(Path.Combine(folder, "history.csv"));
                break;
            case "not writable" when !OperatingSystem.IsLinux():
                Assert.Ignore("Needs Linux's file modes and /proc.");
                break;
            case "not writable" when Environment.UserName == "root":
                folder = "/proc/self"; // permissions do not stop root: /proc refuses new files whoever asks
                break;
            case "not writable":
                Directory.CreateDirectory(folder);
                if (OperatingSystem.IsLinux())
                    File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserExecute);
                break;
        }
        using var run = BenchCli.Run(Train(folder, extra));
        Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
        Assert.That(run.Stderr, Has.Count.EqualTo(1).And.Some.StartsWith("error: ").And.Some.Contains(folder),
            run.Transcript);
        Assert.That(run.Stdout, Has.None.Contains("epoch"), "no training");
    }

    [TestCase("iteration", "-7", "iteration -7 is outside 0–8")]
    [TestCase("iteration", "2000000000", "iteration 2000000000 is outside 0–8")]
    [TestCase("history", "[]", "history holds 0 epochs, but iteration 8 completes 2")]
    public void ACheckpointWithImpossibleFieldsIsRefusedWithOneLine(string key, string value, string message)
    {
        string folder = CopyOfReference($"tampered-{key}-{Guid.NewGuid():N}");
        string checkpoint = Path.Combine(folder, Trainer.CheckpointFile);
        CheckpointMetadata.Rewrite(checkpoint, metadata => metadata[key] = value);
        using var run = BenchCli.Run(Train(folder, "--resume"));
        Assert.That(run.ExitCode, Is.EqualTo(2), run.Transcript);
        Assert.That(run.Stderr, Has.Count.EqualTo(1), run.Transcript);
        Assert.That(run.Stderr[0], Does.StartWith($"error: Checkpoint '{checkpoint}': {message}"));
        Assert.That(run.Stdout, Has.None.Contains("epoch").And.None.Contains("final test error"));
    }
}

/// <summary>Rewrites a safetensors file's metadata in place (header only; the tensors stay as they are).</summary>
internal static class CheckpointMetadata
{
    public static void Rewrite(string path, Action<Dictionary<string, string>> change)
    {
        byte[] file = File.ReadAllBytes(path);
        int headerLength = (int)BitConverter.ToUInt64(file, 0);
        var header = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(file.AsSpan(8, headerLength))!;
        var metadata = header["__metadata__"].Deserialize<Dictionary<string, string>>()!;
        change(metadata);
        header["__metadata__"] = JsonSerializer.SerializeToElement(metadata);
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8; // the format pads the header with spaces to 8 bytes
        using var output = new FileStream(path, FileMode.Create);
        output.Write(BitConverter.GetBytes((ulong)padded));
        output.Write(json);
        output.Write(Enumerable.Repeat((byte)' ', padded - json.Length).ToArray());
        output.Write(file.AsSpan(8 + headerLength));
    }
}
