// Augmentation: the CIFAR-10 training augmentation of He et al. 2015 (after Lee et al.): pad each side by Padding
// pixels, take a random crop of the original size, and flip it horizontally with probability 1/2.
// Convention: it acts on the *normalised* C×H×W floats, so the padding is 0 after normalisation (the mean colour
// for per-channel statistics, the mean image for per-pixel ones), not black. (torchvision's usual
// RandomCrop(32, padding=4) before ToTensor/Normalize pads with black instead; either is common.)
// Drawing the random choice (Draw) is separate from applying it (ImageTransform.Apply), so a given choice can be
// replayed and tested exactly.
namespace Engine.Core.Data;

/// <summary>The CIFAR-10 training augmentation of He et al. 2015: pad each side of the normalised C×H×W image by
/// <paramref name="Padding"/> zeros, crop a random H×W window, and flip it horizontally with probability 1/2 when
/// <paramref name="HorizontalFlip"/> (as torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip, but
/// padding with the mean rather than black). Applied per sample by <see cref="BatchLoader"/>.</summary>
/// <param name="Padding">Pixels of zero padding per side, i.e. the largest shift of the crop; 0 disables cropping.
/// </param>
/// <param name="HorizontalFlip">Whether to mirror each image left-right with probability 1/2.</param>
/// <exception cref="ArgumentOutOfRangeException"><paramref name="Padding"/> is negative.</exception>
public sealed record Augmentation(int Padding = 4, bool HorizontalFlip = true)
{
    /// <summary>Pixels of zero padding per side, the largest crop shift (non-negative).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a negative value.</exception>
    public int Padding { get; init; } = Padding >= 0
        ? Padding
        : throw new ArgumentOutOfRangeException(nameof(Padding), $"Padding must be non-negative; got {Padding}.");

    /// <summary>No padding, no flip: images pass through unchanged.</summary>
    public static Augmentation None { get; } = new(0, false);

    /// <summary>True when this augmentation leaves every image unchanged (no padding, no flip).</summary>
    public bool IsNone => Padding == 0 && !HorizontalFlip;

    /// <summary>A random crop offset in [−Padding, Padding]² and, if enabled, a fair coin for the flip.</summary>
    internal ImageTransform Draw(ref DeterministicRandom random)
    {
        int span = 2 * Padding + 1;
        int shiftY = random.NextInt(span) - Padding, shiftX = random.NextInt(span) - Padding;
        return new ImageTransform(shiftY, shiftX, HorizontalFlip && random.NextBool());
    }
}

/// <summary>One crop-and-flip: output(c, y, x) = input(c, y + ShiftY, x' + ShiftX) with x' = W − 1 − x when
/// flipped (else x), and 0 where that falls outside the image. A crop at offset (top, left) of the image padded
/// by P is the shift (top − P, left − P).</summary>
/// <param name="ShiftY">Row offset: output row y reads source row y + ShiftY.</param>
/// <param name="ShiftX">Column offset: output column x reads source column x' + ShiftX.</param>
/// <param name="Flip">Whether to mirror the result left-right.</param>
public readonly record struct ImageTransform(int ShiftY, int ShiftX, bool Flip)
{
    /// <summary>Writes the transformed C×H×W image to <paramref name="destination"/> (which must not overlap
    /// <paramref name="image"/>).</summary>
    public void Apply(ReadOnlySpan<float> image, Span<float> destination, int channels, int height, int width)
    {
        int plane = height * width;
        if (image.Length != channels * plane || destination.Length != image.Length)
            throw new ArgumentException(
                $"Image ({image.Length} values) and destination ({destination.Length}) must both hold " +
                $"{channels}×{height}×{width} = {channels * plane} values.");
        // Columns x in [first, last) read source column x + ShiftX inside the image; the rest are zero.
        int first = Math.Clamp(-ShiftX, 0, width), last = Math.Clamp(width - ShiftX, first, width);
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
            {
                var row = destination.Slice(c * plane + y * width, width);
                int sourceY = y + ShiftY;
                if (sourceY < 0 || sourceY >= height)
                {
                    row.Clear();
                    continue;
                }
                row[..first].Clear();
                if (last > first)
                    image.Slice(c * plane + sourceY * width + first + ShiftX, last - first).CopyTo(row[first..last]);
                row[last..].Clear();
                if (Flip) row.Reverse();
            }
    }
}
