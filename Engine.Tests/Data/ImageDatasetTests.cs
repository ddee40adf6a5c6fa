// ImageDataset: label validation, Subset, the seeded Split, Take and Concatenate.
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class ImageDatasetTests
{
    [Test]
    public void LabelOutsideTheClassesIsRejectedNamingTheRecord()
    {
        var error = Assert.Throws<InvalidDataException>(() =>
            new ImageDataset(new byte[3 * 4], [0, 1, 7], 1, 2, 2, 5, "made-up.bin"))!;
        Assert.That(error.Message, Does.Contain("made-up.bin").And.Contain("record 2").And.Contain("mislabelled")
            .And.Contain("label 7"));
    }

    [Test]
    public void PixelCountMustMatchTheLabels()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            new ImageDataset(new byte[11], [0, 1, 2], 1, 2, 2, 5, "made-up.bin"))!;
        Assert.That(error.Message, Does.Contain("11").And.Contain("12"));
    }

    [Test]
    public void SubsetCopiesTheChosenImagesInOrder()
    {
        var data = TestImages.Random(10, 3, 4, 5, seed: 1);
        var subset = data.Subset([7, 2, 7]);
        Assert.That(subset.Labels, Is.EqualTo(new[] { 7, 2, 7 }));
        Assert.That(subset.Image(0).ToArray(), Is.EqualTo(data.Image(7).ToArray()));
        Assert.That(subset.Image(1).ToArray(), Is.EqualTo(data.Image(2).ToArray()));
        Assert.That((subset.Channels, subset.Height, subset.Width, subset.Classes), Is.EqualTo((3, 4, 5, 10)));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Subset([10]));
    }

    [Test]
    public void SplitIsASeededPartitionKeepingTheOriginalOrder()
    {
        var data = TestImages.Random(50, 1, 2, 2, seed: 2);
        var (train, validation) = data.Split(5, seed: 3);
        Assert.That(validation.Count, Is.EqualTo(5));
        Assert.That(train.Count, Is.EqualTo(45));
        Assert.That(train.Labels.Concat(validation.Labels).Order(), Is.EqualTo(Enumerable.Range(0, 50)));
        Assert.That(train.Labels, Is.Ordered);
        Assert.That(validation.Labels, Is.Ordered);
        Assert.That(train.Image(0).ToArray(), Is.EqualTo(data.Image(train.Labels[0]).ToArray()));

        Assert.That(data.Split(5, seed: 3).Validation.Labels, Is.EqualTo(validation.Labels));
        Assert.That(data.Split(5, seed: 4).Validation.Labels, Is.Not.EqualTo(validation.Labels));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Split(51, seed: 3));
    }

    [Test]
    public void TakeKeepsTheFirstImagesLikeLinq()
    {
        var data = TestImages.Random(10, 1, 3, 3, seed: 4);
        var first = data.Take(4);
        Assert.That(first.Labels, Is.EqualTo(new[] { 0, 1, 2, 3 }));
        Assert.That(first.Pixels, Is.EqualTo(data.Pixels[..36]));
        Assert.That(data.Take(100).Count, Is.EqualTo(10));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Take(-1));
    }

    [Test]
    public void ConcatenateJoinsPartsAndRejectsDifferentShapes()
    {
        var a = TestImages.Random(3, 1, 2, 2, seed: 5, classes: 4);
        var b = TestImages.Random(2, 1, 2, 2, seed: 6, classes: 4);
        var joined = ImageDataset.Concatenate([a, b]);
        Assert.That(joined.Labels, Is.EqualTo(new[] { 0, 1, 2, 0, 1 }));
        Assert.That(joined.Pixels, Is.EqualTo(a.Pixels.Concat(b.Pixels)));
        Assert.That(joined.Source, Is.EqualTo("random, random"));
        Assert.Throws<ArgumentException>(() => ImageDataset.Concatenate([a, TestImages.Random(2, 1, 2, 3, 7, 4)]));
    }
}
