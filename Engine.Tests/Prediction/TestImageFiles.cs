// Helpers for the prediction tests: image files written with SkiaSharp from planar bytes (gray or RGB), as PNG or
// JPEG, in a temporary folder.
using SkiaSharp;

namespace Engine.Tests.Prediction;

internal static class TestImageFiles
{
    /// <summary>Writes a <paramref name="width"/>×<paramref name="height"/> image whose <paramref name="channels"/>
    /// (1: a gray file, 3: RGB) planes are <paramref name="planes"/>, C×H×W.</summary>
    public static string Write(string path, byte[] planes, int channels, int height, int width,
        SKEncodedImageFormat format = SKEncodedImageFormat.Png, int quality = 100)
    {
        var info = new SKImageInfo(width, height, channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888,
            SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var pixels = bitmap.GetPixelSpan();
        int plane = height * width;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = y * width + x;
                if (channels == 1)
                    pixels[y * bitmap.RowBytes + x] = planes[i];
                else
                {
                    int p = y * bitmap.RowBytes + 4 * x;
                    (pixels[p], pixels[p + 1], pixels[p + 2], pixels[p + 3]) =
                        (planes[i], planes[plane + i], planes[2 * plane + i], 255);
                }
            }
        using var data = bitmap.Encode(format, quality)
                         ?? throw new InvalidOperationException($"Skia could not encode {format}.");
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }

    /// <summary>A file of one colour.</summary>
    public static string Solid(string path, byte r, byte g, byte b, int height, int width,
        SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        int plane = height * width;
        var planes = new byte[3 * plane];
        planes.AsSpan(0, plane).Fill(r);
        planes.AsSpan(plane, plane).Fill(g);
        planes.AsSpan(2 * plane, plane).Fill(b);
        return Write(path, planes, 3, height, width, format);
    }
}
