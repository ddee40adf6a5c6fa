// Augmentation: a padded crop is a shifted copy with zeros entering at the border (one case spelled out, then every
// draw of the loader checked against the shifts), flips reverse rows, about half the draws flip, and None leaves
// images unchanged.
using Engine.Core;
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class AugmentationTests
{
    [Test]
    public void CropIsAShiftedCopyWithZerosEnteringAtTheBorder()
    {
        // A 1×3×4 image 1..12; shift (1, −2) reads input(y + 1, x − 2): row 0 ← row 1 moved right by two columns.
        float[] image = Enumerable.Range(1, 12).Select(v => (float)v).ToArray();
        var output = new float[12];
        new ImageTransform(1, -2, Flip: false).Apply(image, output, 1, 3, 4);
        Assert.That(output, Is.EqualTo(new float[]
        {
            0, 0, 5, 6,
            0, 0, 9, 10,
            0, 0, 0, 0,
        }));
        new ImageTransform(1, -2, Flip: true).Apply(image, output, 1, 3, 4);
        Assert.That(output, Is.EqualTo(new float[]
        {
            6, 5, 0, 0,
            10, 9, 0, 0,
            0, 0, 0, 0,
        }));
    }

    [Test]
    public void FlipReversesEveryRowOfEveryChannel()
    {
        float[] image = Enumerable.Range(1, 2 * 2 * 3).Select(v => (float)v).ToArray();
        var output = new float[image.Length];
        new ImageTransform(0, 0, Flip: true).Apply(image, output, 2, 2, 3);
        Assert.That(output, Is.EqualTo(new float[] { 3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10 }));
    }

    [Test]
    public void ShiftsBeyondTheImageGiveZeros()
    {
        float[] image = Enumerable.Range(1, 6).Select(v => (float)v).ToArray();
        var output = new float[6];
        foreach (var transform in new ImageTransform[] { new(0, 3, false), new(0, -5, true), new(2, 0, false) })
        {
            transform.Apply(image, output, 1, 2, 3);
            Assert.That(output, Is.All.Zero, transform.ToString());
        }
    }

    [Test]
    public void DrawsCoverEveryOffsetWithinThePaddingAndFlipAboutHalf()
    {
        var augmentation = new Augmentation(Padding: 4);
        var offsets = new HashSet<(int, int)>();
        int flips = 0;
        const int draws = 10_000;
        for (int i = 0; i < draws; i++)
        {
            var random = new DeterministicRandom(99, i);
            var transform = augmentation.Draw(ref random);
            offsets.Add((transform.ShiftY, transform.ShiftX));
            if (transform.Flip) flips++;
        }
        Assert.That(offsets, Has.Count.EqualTo(81));
        Assert.That(offsets.All(o => Math.Abs(o.Item1) <= 4 && Math.Abs(o.Item2) <= 4));
        Assert.That(flips, Is.InRange(4_800, 5_200));
    }

    [Test]
    public void EveryLoadedImageIsAShiftedPossiblyFlippedCopyOfItsSample()
    {
        var data = TestImages.Random(40, 3, 8, 8, seed: 21);
        var normalization = Normalization.PerChannel(data);
        using var loader = new BatchLoader(data, 8, shuffle: true, seed: 5, normalization, new Augmentation(4));
        var candidates = (from dy in Enumerable.Range(-4, 9)
            from dx in Enumerable.Range(-4, 9)
            from flip in new[] { false, true }
            select new ImageTransform(dy, dx, flip)).ToArray();
        var normalised = new float[data.ImageSize];
        var expected = new float[data.ImageSize];
        int shifted = 0, flipped = 0;
        foreach (var batch in loader.Epoch(0))
            for (int i = 0; i < batch.Count; i++)
            {
                normalization.Apply(data.Image(batch.Labels[i]), normalised);
                var image = batch.Images.AsSpan(i * data.ImageSize, data.ImageSize).ToArray();
                var match = candidates.Where(transform =>
                {
                    transform.Apply(normalised, expected, 3, 8, 8);
                    return expected.AsSpan().SequenceEqual(image);
                }).ToArray();
                Assert.That(match, Has.Length.EqualTo(1), $"sample {batch.Labels[i]}");
                if (match[0].ShiftX != 0 || match[0].ShiftY != 0) shifted++;
                if (match[0].Flip) flipped++;
            }
        Assert.That(shifted, Is.GreaterThan(30));
        Assert.That(flipped, Is.InRange(8, 32));
    }

    [Test]
    public void NoneLeavesImagesUnchanged()
    {
        var random = new DeterministicRandom(1);
        Assert.That(Augmentation.None.Draw(ref random), Is.EqualTo(new ImageTransform(0, 0, false)));
        Assert.That(new Augmentation(0, false), Is.EqualTo(Augmentation.None));

        var data = TestImages.Random(12, 1, 5, 5, seed: 22);
        var normalization = Normalization.PerChannel(data);
        using var loader = new BatchLoader(data, 4, shuffle: false, seed: 5, normalization, Augmentation.None);
        var expected = new float[data.ImageSize];
        foreach (var batch in loader.Epoch(3))
            for (int i = 0; i < batch.Count; i++)
            {
                normalization.Apply(data.Image(batch.Labels[i]), expected);
                Assert.That(batch.Images.AsSpan(i * data.ImageSize, data.ImageSize).ToArray(), Is.EqualTo(expected));
            }
    }

    [Test]
    public void NegativePaddingIsRejected() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new Augmentation(Padding: -1));
}
