// The resume check that every trainer test shares: a run trained straight through its epochs, and the same run
// checkpointed after one epoch and resumed, must end with bit-identical weights, buffers and history.
using Engine.Core;
using Engine.Core.Data;
using Engine.Models.Training;
using NUnit.Framework;

namespace Engine.Tests.Models;

internal static class ResumeCheck
{
    /// <summary>Trains <paramref name="options"/> straight through, and again as one epoch, a checkpoint and a
    /// resumed rest; asserts both end identically, then hands the one-epoch checkpoint to <paramref name="inspect"/>
    /// (further checks against it) and deletes it.</summary>
    public static void StraightAndResumedAgree(Device device, TrainOptions options, ImageDataset train,
        ImageDataset test, Action<string> inspect)
    {
        string folder = Path.Combine(Path.GetTempPath(), $"engine-resume-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            using var straight = new Trainer(device, options, train, test);
            while (!straight.Finished) straight.RunEpoch();

            string checkpoint = Path.Combine(folder, Trainer.CheckpointFile);
            int iterationsAfterOneEpoch;
            using (var first = new Trainer(device, options, train, test))
            {
                first.RunEpoch();
                first.Save(checkpoint);
                iterationsAfterOneEpoch = first.Iteration;
            }
            using var resumed = new Trainer(device, options, train, test);
            resumed.Resume(checkpoint);
            Assert.That(resumed.Iteration, Is.EqualTo(iterationsAfterOneEpoch), "resumed at the checkpoint");
            while (!resumed.Finished) resumed.RunEpoch();

            foreach (var ((name, expected), (_, actual)) in straight.Model.StateDict().Zip(resumed.Model.StateDict()))
                Assert.That(actual.ToArray(), Is.EqualTo(expected.ToArray()), name);
            Assert.That(resumed.History, Is.EqualTo(straight.History).Using<EpochRecord>(SameResults), "history");

            inspect(checkpoint);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Equal losses, errors and rates (times differ between runs).</summary>
    internal static bool SameResults(EpochRecord a, EpochRecord b) =>
        a with { ImagesPerSecond = 0, Seconds = 0 } == b with { ImagesPerSecond = 0, Seconds = 0 };
}
