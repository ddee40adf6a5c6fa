// BatchLoader: each epoch is a permutation covering every sample once; batches depend only on (seed, epoch), so a
// resumed run sees the same batches; prefetching on and off give the same batches and never overwrite the one the
// caller holds; dropLast, batch-size checks and Dispose. Labels here are sample indices (label i for image i).
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class BatchLoaderTests
{
    private static readonly ImageDataset Data = TestImages.Random(103, 3, 6, 6, seed: 31);
    private static readonly Normalization Statistics = Normalization.PerChannel(Data);

    private static BatchLoader Loader(int batchSize = 10, bool shuffle = true, int seed = 7, bool dropLast = false,
        bool prefetch = true) =>
        new(Data, batchSize, shuffle, seed, Statistics, new Augmentation(Padding: 2), dropLast) { Prefetch = prefetch };

    [Test]
    public void AnEpochCoversEverySampleExactlyOnce()
    {
        using var loader = Loader();
        var batches = TestImages.CopyEpoch(loader, 0);
        Assert.That(loader.BatchesPerEpoch, Is.EqualTo(11));
        Assert.That(batches, Has.Count.EqualTo(11));
        Assert.That(batches.Select(batch => batch.Labels.Length), Is.EqualTo(Enumerable.Repeat(10, 10).Append(3)));
        Assert.That(batches[^1].Images, Has.Length.EqualTo(3 * Data.ImageSize));
        var order = batches.SelectMany(batch => batch.Labels).ToArray();
        Assert.That(order.Order(), Is.EqualTo(Enumerable.Range(0, 103)));
        Assert.That(order, Is.Not.Ordered, "shuffled");
    }

    [Test]
    public void WithoutShuffleTheOrderIsTheDatasetOrder()
    {
        using var loader = Loader(shuffle: false);
        Assert.That(loader.Epoch(4).SelectMany(batch => batch.Labels.ToArray()), Is.EqualTo(Enumerable.Range(0, 103)));
    }

    [Test]
    public void ResumingAtAnEpochSeesTheSameBatchesAsAnUninterruptedRun()
    {
        using var uninterrupted = Loader();
        var epochs = Enumerable.Range(0, 3).Select(epoch => TestImages.CopyEpoch(uninterrupted, epoch)).ToList();
        using var resumed = Loader();
        AssertSameBatches(TestImages.CopyEpoch(resumed, 2), epochs[2]);
        AssertSameBatches(TestImages.CopyEpoch(resumed, 2), epochs[2]);
        Assert.That(epochs[1][0].Labels, Is.Not.EqualTo(epochs[2][0].Labels), "each epoch has its own order");
        using var otherSeed = Loader(seed: 8);
        Assert.That(TestImages.CopyEpoch(otherSeed, 2)[0].Labels, Is.Not.EqualTo(epochs[2][0].Labels));
    }

    [Test]
    public void PrefetchingChangesNothingAndNeverOverwritesTheHeldBatch()
    {
        using var synchronous = Loader(prefetch: false);
        var expected = TestImages.CopyEpoch(synchronous, 1);
        using var prefetching = Loader(prefetch: true);
        int index = 0;
        foreach (var batch in prefetching.Epoch(1))
        {
            // Give the prefetch of the next batch time to finish before looking at this one.
            Thread.Sleep(2);
            Assert.That(batch.Labels, Is.EqualTo(expected[index].Labels), $"batch {index} labels");
            Assert.That(batch.Images, Is.EqualTo(expected[index].Images), $"batch {index} images");
            index++;
        }
        Assert.That(index, Is.EqualTo(expected.Count));
    }

    [Test]
    public void DropLastLeavesOutTheFinalPartialBatch()
    {
        using var loader = Loader(dropLast: true);
        var batches = TestImages.CopyEpoch(loader, 0);
        Assert.That(loader.BatchesPerEpoch, Is.EqualTo(10));
        Assert.That(batches.Select(batch => batch.Labels.Length), Is.All.EqualTo(10));
        Assert.That(batches.SelectMany(batch => batch.Labels).Distinct().Count(), Is.EqualTo(100));
        using var exact = Loader(batchSize: 103, dropLast: true);
        Assert.That(exact.BatchesPerEpoch, Is.EqualTo(1));
    }

    [Test]
    public void BatchSizesOutsideTheDatasetAreRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => Loader(batchSize: 104))!;
        Assert.That(error.Message, Does.Contain("104").And.Contain("103"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Loader(batchSize: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Loader(batchSize: -3));
    }

    [Test]
    public void NormalizationForOtherImagesIsRejected()
    {
        var grey = new Normalization([0.5f], [0.2f]);
        Assert.Throws<ArgumentException>(() => new BatchLoader(Data, 10, true, 1, grey, Augmentation.None));
        var otherSize = new Normalization(new float[3 * 5 * 5], [1f, 1f, 1f]);
        Assert.Throws<ArgumentException>(() => new BatchLoader(Data, 10, true, 1, otherSize, Augmentation.None));
    }

    [Test]
    public void AnAbandonedEpochDoesNotDisturbTheNextAndDisposeStopsUse()
    {
        var loader = Loader();
        var expected = TestImages.CopyEpoch(loader, 5);
        foreach (var _ in loader.Epoch(5)) break;
        AssertSameBatches(TestImages.CopyEpoch(loader, 5), expected);
        using (var enumerator = loader.Epoch(0).GetEnumerator())
        {
            Assert.That(enumerator.MoveNext());
            loader.Dispose();
            Assert.Throws<ObjectDisposedException>(() => enumerator.MoveNext());
        }
        Assert.Throws<ObjectDisposedException>(() => loader.Epoch(0));
    }

    private static void AssertSameBatches(List<(float[] Images, int[] Labels)> actual,
        List<(float[] Images, int[] Labels)> expected)
    {
        Assert.That(actual, Has.Count.EqualTo(expected.Count));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.That(actual[i].Labels, Is.EqualTo(expected[i].Labels), $"batch {i} labels");
            Assert.That(actual[i].Images, Is.EqualTo(expected[i].Images), $"batch {i} images");
        }
    }
}
