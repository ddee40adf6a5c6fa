// ImageDataset: labelled images held in memory as stored on disk: Pixels is N×C×H×W bytes (0–255, planar, row-major
// within each plane) and Labels holds one class index in [0, Classes) per image. Readers (Cifar10, Idx, FashionMnist,
// Mnist) return either a complete, validated dataset or throw; Subset, Split and Take copy into new datasets.
// The arrays are shared, not copied, with whoever passed them in: treat them as read-only.
namespace Engine.Core.Data;

/// <summary>Labelled images held in memory as stored on disk: <see cref="Pixels"/> N×C×H×W bytes (0–255, planar)
/// and one class index per image in <see cref="Labels"/>. Built by the readers (<see cref="Cifar10"/>,
/// <see cref="Idx"/>, …) only when complete and valid; the arrays are shared, not copied: treat them as
/// read-only.</summary>
public sealed class ImageDataset
{
    /// <summary>Wraps <paramref name="pixels"/> (N×C×H×W) and <paramref name="labels"/> (N) without copying.
    /// Throws InvalidDataException naming <paramref name="source"/>, the record and the value for a label outside
    /// [0, classes).</summary>
    /// <exception cref="InvalidDataException">An extent or <paramref name="classes"/> is below 1, an image is larger
    /// than an array can hold, or a label is outside [0, <paramref name="classes"/>).</exception>
    /// <exception cref="ArgumentException"><paramref name="pixels"/> does not hold exactly one image per label.
    /// </exception>
    public ImageDataset(byte[] pixels, int[] labels, int channels, int height, int width, int classes, string source)
    {
        if (channels < 1 || height < 1 || width < 1 || classes < 1)
            throw new InvalidDataException(
                $"{source}: images of {channels}×{height}×{width} in {classes} classes are not a dataset " +
                "(every extent must be at least 1).");
        long imageSize = (long)channels * height * width;
        if (imageSize > Array.MaxLength)
            throw new InvalidDataException(
                $"{source}: images of {channels}×{height}×{width} take {imageSize:N0} bytes each, more than an " +
                $"array can hold ({Array.MaxLength:N0}).");
        if (pixels.LongLength != labels.LongLength * imageSize)
            throw new ArgumentException(
                $"{source}: {pixels.Length} pixel bytes do not hold {labels.Length} images of " +
                $"{channels}×{height}×{width} ({labels.LongLength * imageSize} bytes).", nameof(pixels));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classes)
                throw new InvalidDataException(
                    $"{source}: record {i} is mislabelled: label {labels[i]} is outside [0, {classes}).");
        Pixels = pixels;
        Labels = labels;
        Channels = channels;
        Height = height;
        Width = width;
        Classes = classes;
        Source = source;
    }

    /// <summary>Number of images N.</summary>
    public int Count => Labels.Length;

    /// <summary>Channels per image C (3 for CIFAR-10, 1 for MNIST).</summary>
    public int Channels { get; }

    /// <summary>Image height H in pixels.</summary>
    public int Height { get; }

    /// <summary>Image width W in pixels.</summary>
    public int Width { get; }

    /// <summary>Bytes per image: Channels × Height × Width.</summary>
    public int ImageSize => Channels * Height * Width;

    /// <summary>Number of classes; every label is in [0, Classes).</summary>
    public int Classes { get; }

    /// <summary>The file(s) the images came from, comma-separated.</summary>
    public string Source { get; }

    /// <summary>N×C×H×W raw pixel values, 0–255.</summary>
    public byte[] Pixels { get; }

    /// <summary>The class index of each image, N values in [0, <see cref="Classes"/>).</summary>
    public int[] Labels { get; }

    /// <summary>The C×H×W bytes of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> Image(int index) => Pixels.AsSpan(checked(index * ImageSize), ImageSize);

    /// <summary>How many images each class has.</summary>
    public int[] ClassCounts()
    {
        var counts = new int[Classes];
        foreach (int label in Labels) counts[label]++;
        return counts;
    }

    /// <summary>A copy holding the images at <paramref name="indices"/>, in that order (repeats allowed).</summary>
    public ImageDataset Subset(int[] indices)
    {
        var pixels = new byte[(long)indices.Length * ImageSize];
        var labels = new int[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            int index = indices[i];
            if ((uint)index >= (uint)Count)
                throw new ArgumentOutOfRangeException(nameof(indices),
                    $"Index {index} (position {i}) is outside the dataset's {Count} images.");
            Image(index).CopyTo(pixels.AsSpan(i * ImageSize, ImageSize));
            labels[i] = Labels[index];
        }
        return new ImageDataset(pixels, labels, Channels, Height, Width, Classes, Source);
    }

    /// <summary>Splits off <paramref name="validationCount"/> images chosen by a shuffle seeded with
    /// <paramref name="seed"/> (e.g. CIFAR-10's 45k/5k split); both parts keep the original order.</summary>
    public (ImageDataset Train, ImageDataset Validation) Split(int validationCount, int seed)
    {
        if (validationCount < 0 || validationCount > Count)
            throw new ArgumentOutOfRangeException(nameof(validationCount),
                $"Validation count {validationCount} is outside [0, {Count}] (the dataset's size).");
        int[] order = new DeterministicRandom(seed, (long)RandomStream.Split).Permutation(Count);
        int[] validation = order[..validationCount], train = order[validationCount..];
        Array.Sort(validation);
        Array.Sort(train);
        return (Subset(train), Subset(validation));
    }

    /// <summary>The first <paramref name="count"/> images, or all of them if there are fewer (as LINQ's Take).</summary>
    public ImageDataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        int taken = Math.Min(count, Count);
        return new ImageDataset(Pixels[..(taken * ImageSize)], Labels[..taken], Channels, Height, Width, Classes,
            Source);
    }

    /// <summary>The parts' images one after another; all parts must have the same image shape and classes.</summary>
    public static ImageDataset Concatenate(IReadOnlyList<ImageDataset> parts)
    {
        if (parts.Count == 0) throw new ArgumentException("Nothing to concatenate.", nameof(parts));
        var first = parts[0];
        foreach (var part in parts)
            if ((part.Channels, part.Height, part.Width, part.Classes) !=
                (first.Channels, first.Height, first.Width, first.Classes))
                throw new ArgumentException(
                    $"{part.Source} holds {part.Channels}×{part.Height}×{part.Width} images of {part.Classes} " +
                    $"classes, but {first.Source} holds {first.Channels}×{first.Height}×{first.Width} images of " +
                    $"{first.Classes} classes.", nameof(parts));
        var pixels = new byte[parts.Sum(part => part.Pixels.LongLength)];
        var labels = new int[parts.Sum(part => part.Count)];
        int offset = 0;
        foreach (var part in parts)
        {
            part.Pixels.CopyTo(pixels.AsSpan(offset * first.ImageSize));
            part.Labels.CopyTo(labels, offset);
            offset += part.Count;
        }
        return new ImageDataset(pixels, labels, first.Channels, first.Height, first.Width, first.Classes,
            string.Join(", ", parts.Select(part => part.Source)));
    }

    /// <summary>Size, image shape, classes and source, e.g. <c>50000 images of 3×32×32, 10 classes, from …</c>.
    /// </summary>
    public override string ToString() =>
        $"{Count} images of {Channels}×{Height}×{Width}, {Classes} classes, from {Source}";
}
