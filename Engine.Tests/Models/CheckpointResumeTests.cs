// The trainer's side of stopping and resuming: a run cancelled between two steps (from a progress callback, as the
// command's Ctrl-C handler does) saves a mid-epoch checkpoint that resumes to the uninterrupted run's weights and
// history bit for bit, and Resume refuses a checkpoint whose iteration, history or epoch in progress this run
// could not have written, naming the field and its value, before loading anything.
using Engine.Core;
using Engine.Core.Data;
using Engine.Models.Training;
using Engine.Tests.Cli;
using Engine.Tests.TestData;
using NUnit.Framework;

namespace Engine.Tests.Models;

[NonParallelizable]
public sealed class CheckpointResumeTests
{
    private static Device? _device;
    private string _folder = "";

    /// <summary>128 training images in batches of 32: epochs of 4 steps, 8 in all.</summary>
    private static readonly TrainOptions Options = new() { Model = "resnet20-a", Epochs = 2, BatchSize = 32, Seed = 5 };

    private static ImageDataset _train = null!, _test = null!;

    /// <summary>A checkpoint after the first epoch, which the refusal tests tamper with copies of.</summary>
    private static string _afterOneEpoch = "";

    [OneTimeSetUp]
    public void CreateDevice()
    {
        _device = Device.Create("cpu");
        _train = FashionMnist.ReadTrain(FashionMnistData.Folder).Take(128);
        _test = FashionMnist.ReadTest(FashionMnistData.Folder).Take(32);
        _afterOneEpoch = Path.Combine(Path.GetTempPath(), $"engine-checkpoint-{Guid.NewGuid():N}.safetensors");
        using var first = new Trainer(_device, Options, _train, _test);
        first.RunEpoch();
        first.Save(_afterOneEpoch);
    }

    [OneTimeTearDown]
    public void DisposeDevice()
    {
        _device?.Dispose();
        File.Delete(_afterOneEpoch);
    }

    [SetUp]
    public void CreateFolder() => Directory.CreateDirectory(_folder = Path.Combine(Path.GetTempPath(),
        $"engine-checkpoint-{Guid.NewGuid():N}"));

    [TearDown]
    public void RemoveFolder() => Directory.Delete(_folder, recursive: true);

    /// <summary>Runs epochs until <paramref name="trainer"/> is finished or cancelled at
    /// <paramref name="stopAt"/> (from the progress callback, after that step); returns whether it was cancelled.</summary>
    private static bool TrainUntil(Trainer trainer, int stopAt)
    {
        using var cancellation = new CancellationTokenSource();
        var progress = new Progress(p =>
        {
            if (p.Iteration == stopAt) cancellation.Cancel();
        });
        try
        {
            while (!trainer.Finished) trainer.RunEpoch(progress, cancellation.Token);
            return false;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }

    private sealed class Progress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }

    [Test]
    public void ARunCancelledMidEpochResumesToBitIdenticalWeightsAndHistory()
    {
        using var straight = new Trainer(_device!, Options, _train, _test);
        Assert.That(TrainUntil(straight, stopAt: -1), Is.False);

        string checkpoint = Path.Combine(_folder, Trainer.CheckpointFile);
        // Stopped in the first epoch, resumed, stopped in the second, resumed to the end.
        foreach (int stopAt in new[] { 2, 6 })
        {
            using var part = new Trainer(_device!, Options, _train, _test);
            if (File.Exists(checkpoint)) part.Resume(checkpoint);
            Assert.That(TrainUntil(part, stopAt), Is.True, "cancelled");
            Assert.That(part.Iteration, Is.EqualTo(stopAt), "the step under way finished, no other");
            Assert.That(part.History, Has.Count.EqualTo(stopAt / 4), "the epoch in progress has no record yet");
            part.Save(checkpoint);
        }
        using var resumed = new Trainer(_device!, Options, _train, _test);
        resumed.Resume(checkpoint);
        Assert.That(resumed.Iteration, Is.EqualTo(6));
        Assert.That(TrainUntil(resumed, stopAt: -1), Is.False);

        foreach (var ((name, expected), (_, actual)) in straight.Model.StateDict().Zip(resumed.Model.StateDict()))
            Assert.That(actual.ToArray(), Is.EqualTo(expected.ToArray()), name);
        Assert.That(resumed.History, Is.EqualTo(straight.History).Using<EpochRecord>(ResumeCheck.SameResults),
            "history, the interrupted epochs' losses and errors included");
    }

    [TestCase("iteration", "-7", "iteration -7 is outside 0–8")]
    [TestCase("iteration", "2000000000", "iteration 2000000000 is outside 0–8")]
    [TestCase("iteration", "4.5", "iteration '4.5' is not an integer")]
    [TestCase("iteration", null, "iteration is missing")]
    [TestCase("history", "[]", "history holds 0 epochs, but iteration 4 completes 1")]
    [TestCase("history", "null", "history is null")]
    [TestCase("history", "{", "history '{' is unreadable")]
    [TestCase("history", "[{\"Epoch\":3,\"Iteration\":4,\"TestError\":0.5}]", "history[0].Epoch is 3, not 0")]
    [TestCase("history", "[{\"Epoch\":0,\"Iteration\":3,\"TestError\":0.5}]", "history[0].Iteration is 3, not 4")]
    [TestCase("history", "[{\"Epoch\":0,\"Iteration\":4,\"TestError\":7}]", "history[0].TestError is 7, outside 0–1")]
    [TestCase("epoch_progress", "{\"Seen\":3}", "epoch_progress.Seen is 3, but iteration 4 is 0 steps")]
    [TestCase("epoch_progress", "{\"Seen\":0,\"LossSum\":-1}", "epoch_progress.LossSum is -1")]
    public void ResumeRefusesImpossibleFieldsNamingThem(string key, string? value, string message)
    {
        string checkpoint = Path.Combine(_folder, Trainer.CheckpointFile);
        File.Copy(_afterOneEpoch, checkpoint);
        CheckpointMetadata.Rewrite(checkpoint, metadata =>
        {
            if (value is null) metadata.Remove(key);
            else metadata[key] = value;
        });
        using var trainer = new Trainer(_device!, Options, _train, _test);
        var initial = trainer.Model.StateDict().Select(entry => entry.Tensor.ToArray()).ToList();
        var error = Assert.Throws<InvalidDataException>(() => trainer.Resume(checkpoint))!;
        Assert.That(error.Message, Does.StartWith($"Checkpoint '{checkpoint}': {message}"));
        Assert.That(trainer.Iteration, Is.Zero, "nothing loaded");
        Assert.That(trainer.Model.StateDict().Select(entry => entry.Tensor.ToArray()), Is.EqualTo(initial),
            "no weight loaded");
    }
}
