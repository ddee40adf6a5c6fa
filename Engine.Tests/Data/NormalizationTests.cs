// Normalization: per-channel statistics make the training data mean 0 / std 1 per channel, the per-pixel mean
// makes its mean image 0, explicit values map bytes exactly, and bad statistics are rejected.
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class NormalizationTests
{
    /// <summary>Three channels with different ranges, so per-channel statistics differ.</summary>
    private static ImageDataset ColourImages()
    {
        var data = TestImages.Random(200, 3, 6, 5, seed: 11, classes: 10);
        for (int image = 0; image < data.Count; image++)
            for (int i = 0; i < 30; i++)
            {
                data.Pixels[image * 90 + i] /= 4;                   // red in [0, 64)
                data.Pixels[image * 90 + 60 + i] = (byte)(128 + data.Pixels[image * 90 + 60 + i] / 2); // blue high
            }
        return data;
    }

    private static float[][] NormaliseAll(ImageDataset data, Normalization normalization) =>
        Enumerable.Range(0, data.Count).Select(image =>
        {
            var values = new float[data.ImageSize];
            normalization.Apply(data.Image(image), values);
            return values;
        }).ToArray();

    [Test]
    public void PerChannelNormalisedTrainingDataHasMeanZeroAndStdOne()
    {
        var data = ColourImages();
        var normalization = Normalization.PerChannel(data);
        Assert.That(normalization.Mean[0], Is.LessThan(0.25f));
        Assert.That(normalization.Mean[2], Is.GreaterThan(0.5f));
        var images = NormaliseAll(data, normalization);
        for (int c = 0; c < 3; c++)
        {
            var values = images.SelectMany(image => image.Skip(c * 30).Take(30)).Select(v => (double)v).ToArray();
            double mean = values.Average();
            double std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
            Assert.That(mean, Is.EqualTo(0).Within(1e-5), $"channel {c} mean");
            Assert.That(std, Is.EqualTo(1).Within(1e-5), $"channel {c} std");
        }
    }

    [Test]
    public void PerPixelMeanMakesTheMeanImageZero()
    {
        var data = ColourImages();
        var normalization = Normalization.PerPixelMean(data);
        Assert.That(normalization.Mean, Has.Length.EqualTo(90));
        Assert.That(normalization.Std, Is.EqualTo(new[] { 1f, 1f, 1f }));
        var images = NormaliseAll(data, normalization);
        for (int i = 0; i < data.ImageSize; i++)
            Assert.That(images.Average(image => (double)image[i]), Is.EqualTo(0).Within(1e-6), $"pixel {i}");
        // Only the mean is subtracted: differences between images are the byte differences ÷ 255.
        Assert.That(images[1][7] - images[0][7],
            Is.EqualTo((data.Image(1)[7] - data.Image(0)[7]) / 255f).Within(1e-6));
    }

    [Test]
    public void ExplicitValuesMapBytesAsExpected()
    {
        var normalization = new Normalization([0.5f, 0f], [0.25f, 1f]);
        var values = new float[4];
        normalization.Apply([0, 255, 51, 255], values);
        Assert.That(values, Is.EqualTo(new[] { -2f, 2f, 0.2f, 1f }).Within(1e-6f));
        Assert.That(normalization.ToString(), Is.EqualTo("per-channel mean [0.5, 0], std [0.25, 1]"));
    }

    [Test]
    public void BadStatisticsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new Normalization([0.5f], [0f]));
        Assert.Throws<ArgumentException>(() => new Normalization([0.5f, 0.5f, 0.5f], [1f, 1f]));
        var perChannel = new Normalization([0.5f, 0.5f], [1f, 1f]);
        Assert.Throws<ArgumentException>(() => perChannel.Apply(new byte[5], new float[5]), "5 values, 2 channels");
        Assert.Throws<ArgumentException>(() => perChannel.Apply(new byte[4], new float[6]), "destination size");
        var perPixel = new Normalization(new float[8], [1f, 1f]);
        Assert.Throws<ArgumentException>(() => perPixel.Apply(new byte[4], new float[4]), "mean image size");
    }
}
