// Normalization: maps an image's bytes to floats as (byte / 255 − mean) / std, with one std per channel and a mean
// either per channel (Mean.Length == C, the usual (x − μ_c) / σ_c) or per pixel (Mean.Length == C×H×W, the mean
// image, as in He et al. 2015's CIFAR-10 preprocessing "the per-pixel mean subtracted", where std is 1).
// Statistics are computed from the training set on the 0–1 scale; images are C×H×W, planar.
namespace Engine.Core.Data;

/// <summary>Maps an image's bytes to floats as (byte / 255 − mean) / std, with one std per channel and a mean per
/// channel (as torchvision's Normalize after ToTensor) or per pixel (the mean image of He et al. 2015's CIFAR-10
/// preprocessing). Statistics are on the 0–1 scale; images are C×H×W, planar.</summary>
public sealed record Normalization
{
    /// <summary>Explicit statistics on the 0–1 scale: <paramref name="std"/> has one positive value per channel;
    /// <paramref name="mean"/> one per channel or one per pixel (C×H×W).</summary>
    /// <exception cref="ArgumentException"><paramref name="std"/> is empty or has a value that is not positive and
    /// finite, or the length of <paramref name="mean"/> is not a positive multiple of the channel count.</exception>
    public Normalization(float[] mean, float[] std)
    {
        if (std.Length == 0) throw new ArgumentException("Std needs one value per channel; got none.", nameof(std));
        if (std.Any(value => !(value > 0) || !float.IsFinite(value)))
            throw new ArgumentException($"Std values must be positive and finite; got [{string.Join(", ", std)}].",
                nameof(std));
        if (mean.Length == 0 || mean.Length % std.Length != 0)
            throw new ArgumentException(
                $"Mean has {mean.Length} values: expected one per channel ({std.Length}) or one per pixel " +
                $"(a multiple of {std.Length}).", nameof(mean));
        Mean = mean;
        Std = std;
    }

    /// <summary>The means on the 0–1 scale: C values (per channel) or C×H×W (per pixel, planar).</summary>
    public float[] Mean { get; }

    /// <summary>The standard deviations on the 0–1 scale, one per channel.</summary>
    public float[] Std { get; }

    /// <summary>Channels C the statistics are for.</summary>
    public int Channels => Std.Length;

    /// <summary>True when <see cref="Mean"/> holds a mean image (one value per pixel) rather than one per channel.
    /// </summary>
    public bool IsPerPixel => Mean.Length != Std.Length;

    /// <summary>Per-channel mean and (population) standard deviation of <paramref name="train"/>'s pixels.</summary>
    public static Normalization PerChannel(ImageDataset train)
    {
        if (train.Count == 0)
            throw new InvalidDataException($"{train.Source}: no training images to compute the normalisation from.");
        int channels = train.Channels, plane = train.Height * train.Width;
        var sums = new long[channels];
        var squares = new long[channels];
        for (int image = 0; image < train.Count; image++)
            for (int c = 0; c < channels; c++)
                foreach (byte value in train.Pixels.AsSpan((image * channels + c) * plane, plane))
                {
                    sums[c] += value;
                    squares[c] += value * value;
                }
        double n = (double)train.Count * plane;
        var mean = new float[channels];
        var std = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            double mean255 = sums[c] / n;
            mean[c] = (float)(mean255 / 255);
            std[c] = (float)(Math.Sqrt(Math.Max(0, squares[c] / n - mean255 * mean255)) / 255);
            if (!(std[c] > 0))
                throw new InvalidDataException(
                    $"{train.Source}: channel {c} is constant over the training images; it cannot be normalised.");
        }
        return new Normalization(mean, std);
    }

    /// <summary>The mean image of <paramref name="train"/> (one mean per pixel), std 1.</summary>
    public static Normalization PerPixelMean(ImageDataset train)
    {
        if (train.Count == 0)
            throw new InvalidDataException($"{train.Source}: no training images to compute the mean image from.");
        var sums = new long[train.ImageSize];
        for (int image = 0; image < train.Count; image++)
        {
            var pixels = train.Image(image);
            for (int i = 0; i < sums.Length; i++) sums[i] += pixels[i];
        }
        double scale = 1.0 / (255.0 * train.Count);
        var mean = sums.Select(sum => (float)(sum * scale)).ToArray();
        return new Normalization(mean, Enumerable.Repeat(1f, train.Channels).ToArray());
    }

    /// <summary>Writes the normalised C×H×W floats of one image's bytes to <paramref name="destination"/>.</summary>
    public void Apply(ReadOnlySpan<byte> image, Span<float> destination)
    {
        CheckImageSize(image.Length);
        if (destination.Length != image.Length)
            throw new ArgumentException(
                $"Destination holds {destination.Length} floats; the image has {image.Length} values.",
                nameof(destination));
        int plane = image.Length / Channels;
        for (int c = 0; c < Channels; c++)
        {
            float inverseStd = 1f / Std[c], scale = inverseStd / 255f;
            var source = image.Slice(c * plane, plane);
            var target = destination.Slice(c * plane, plane);
            if (IsPerPixel)
            {
                var mean = Mean.AsSpan(c * plane, plane);
                for (int i = 0; i < plane; i++) target[i] = source[i] * scale - mean[i] * inverseStd;
            }
            else
            {
                float offset = -Mean[c] * inverseStd;
                for (int i = 0; i < plane; i++) target[i] = source[i] * scale + offset;
            }
        }
    }

    /// <summary>Throws unless these statistics fit images of <paramref name="imageSize"/> values.</summary>
    internal void CheckImageSize(int imageSize)
    {
        if (imageSize % Channels != 0 || (IsPerPixel && Mean.Length != imageSize))
            throw new ArgumentException(
                $"This normalization ({this}) does not fit images of {imageSize} values.");
    }

    /// <summary>The statistics in brief, e.g. <c>per-channel mean [0.4914, 0.4822, 0.4465], std […]</c>; a mean
    /// image is summarised by its size and average.</summary>
    public override string ToString() =>
        (IsPerPixel ? $"per-pixel mean ({Mean.Length} values, average {Mean.Average():0.####})"
            : $"per-channel mean {Format(Mean)}") + $", std {Format(Std)}";

    private static string Format(float[] values) =>
        $"[{string.Join(", ", values.Select(value => value.ToString("0.####")))}]";
}
