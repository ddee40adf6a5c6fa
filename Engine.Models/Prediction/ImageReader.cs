// ImageReader: decodes an image file (PNG, JPEG, or any other format Skia decodes) with SkiaSharp into the planar
// C×H×W bytes the data readers produce, as torchvision's Resize(size) + CenterCrop(size) would:
//   1. decode to 8-bit RGBA and drop alpha (as converting to RGB does); EXIF orientation is not applied;
//   2. scale, keeping the aspect ratio, so that the image covers H×W (for a square input: the shorter side becomes
//      the input size and the longer one ⌊size × long / short⌋), then cut the centred H×W window (offsets rounded
//      half to even, as torchvision's round()); an image already of the input size is used as it is;
//      sampling: trilinear with mipmaps when shrinking (no aliasing), Catmull-Rom cubic when enlarging;
//   3. one channel: the luma ⌊(299 R + 587 G + 114 B + 500) / 1000⌋ (ITU-R 601, as PIL's "L"), exact for gray
//      pixels; three channels: R, G, B planes (a gray file decodes to R = G = B).
// A file that does not decode completely is rejected naming the file; nothing is half-read.
using SkiaSharp;

namespace Engine.Models.Prediction;

/// <summary>Decodes image files into planar C×H×W bytes sized and centre-cropped for a model's input (as
/// torchvision's Resize + CenterCrop).</summary>
public static class ImageReader
{
    /// <summary>The extensions a folder is searched for.</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".png", ".jpg", ".jpeg"];

    /// <summary>The image files (by <see cref="Extensions"/>, any case) directly in <paramref name="folder"/>,
    /// in ordinal name order. Throws when the folder does not exist or holds none.</summary>
    public static IReadOnlyList<string> FilesIn(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Folder '{folder}' does not exist.");
        var files = Directory.EnumerateFiles(folder)
            .Where(file => Extensions.Contains(Path.GetExtension(file).ToLowerInvariant()))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
            throw new InvalidDataException(
                $"Folder '{folder}' holds no images ({string.Join(", ", Extensions)}).");
        return files;
    }

    /// <summary>Decodes <paramref name="path"/>, resizes and centre-crops it to
    /// <paramref name="height"/>×<paramref name="width"/> and returns its <paramref name="channels"/> (1 or 3)
    /// planes as bytes, C×H×W. Throws <see cref="InvalidDataException"/> naming the file when it is not a complete
    /// image, <see cref="FileNotFoundException"/> when it does not exist.</summary>
    public static byte[] Read(string path, int channels, int height, int width)
    {
        if (channels is not (1 or 3))
            throw new ArgumentException($"Images can be read as 1 or 3 channels, not {channels}.", nameof(channels));
        if (height < 1 || width < 1)
            throw new ArgumentException($"Image size {height}×{width} must be positive.");
        using var decoded = Decode(path);
        using var resized = Resize(decoded, height, width);
        int top = (int)Math.Round((resized.Height - height) / 2.0, MidpointRounding.ToEven);
        int left = (int)Math.Round((resized.Width - width) / 2.0, MidpointRounding.ToEven);
        return Planes(resized, top, left, channels, height, width);
    }

    /// <summary>The whole file as opaque 8-bit RGBA.</summary>
    private static SKBitmap Decode(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Image '{path}' does not exist.", path);
        // A named pipe or device reports a length of 0 and would block the decoder until a writer appears.
        if (new FileInfo(path).Length == 0)
            throw new InvalidDataException($"'{path}' is empty or not a regular file (a named pipe or device).");
        using var stream = new SKFileStream(path);
        using var codec = SKCodec.Create(stream, out var created);
        if (codec is null)
            throw new InvalidDataException($"'{path}' is not an image Skia can decode ({created}).");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            bitmap.Dispose();
            throw new InvalidDataException(
                $"'{path}' is corrupt or truncated: decoding its {codec.EncodedFormat} data stopped with {result}.");
        }
        var pixels = bitmap.GetPixelSpan();
        for (int i = 3; i < pixels.Length; i += 4) pixels[i] = 255;
        return bitmap;
    }

    /// <summary>The bitmap scaled to cover <paramref name="height"/>×<paramref name="width"/>, aspect kept; the
    /// bitmap itself (a copy) when it already has that size in one dimension and covers the other.</summary>
    private static SKBitmap Resize(SKBitmap image, int height, int width)
    {
        var (newHeight, newWidth) = CoveringSize(image.Height, image.Width, height, width);
        if (newHeight == image.Height && newWidth == image.Width) return image.Copy();
        bool shrinking = newHeight < image.Height;
        var sampling = shrinking
            ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear)
            : new SKSamplingOptions(SKCubicResampler.CatmullRom);
        var info = new SKImageInfo(newWidth, newHeight, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        return image.Resize(info, sampling)
               ?? throw new InvalidOperationException($"Skia could not resize a {image.Width}×{image.Height} image.");
    }

    /// <summary>The size an image of <paramref name="height"/>×<paramref name="width"/> is scaled to so that it
    /// covers <paramref name="targetHeight"/>×<paramref name="targetWidth"/> with its aspect ratio kept: the side
    /// that needs the larger scale gets the target exactly, the other ⌊side × scale⌋ (torchvision's Resize).</summary>
    public static (int Height, int Width) CoveringSize(int height, int width, int targetHeight, int targetWidth)
    {
        if ((long)targetHeight * width >= (long)targetWidth * height)
            return (targetHeight, Math.Max(targetWidth, (int)((double)targetHeight * width / height)));
        return (Math.Max(targetHeight, (int)((double)targetWidth * height / width)), targetWidth);
    }

    private static byte[] Planes(SKBitmap image, int top, int left, int channels, int height, int width)
    {
        var rgba = image.GetPixelSpan();
        int stride = image.RowBytes, plane = height * width;
        var planes = new byte[channels * plane];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int source = (top + y) * stride + (left + x) * 4, target = y * width + x;
                byte r = rgba[source], g = rgba[source + 1], b = rgba[source + 2];
                if (channels == 1)
                    planes[target] = (byte)((299 * r + 587 * g + 114 * b + 500) / 1000);
                else
                {
                    planes[target] = r;
                    planes[plane + target] = g;
                    planes[2 * plane + target] = b;
                }
            }
        return planes;
    }
}
