// Helpers for the data tests: small random datasets, a temporary folder per fixture, and copies of batches (a
// Batch's buffers are reused by its loader).
using Engine.Core.Data;

namespace Engine.Tests.Data;

internal static class TestImages
{
    /// <summary>Random pixels; image i has label i % classes, or label i when <paramref name="classes"/> is null
    /// (so labels identify samples).</summary>
    public static ImageDataset Random(int count, int channels, int height, int width, int seed, int? classes = null)
    {
        var pixels = new byte[count * channels * height * width];
        new Random(seed).NextBytes(pixels);
        var labels = Enumerable.Range(0, count).Select(i => classes is null ? i : i % classes.Value).ToArray();
        return new ImageDataset(pixels, labels, channels, height, width, classes ?? count, "random");
    }

    public static (float[] Images, int[] Labels) Copy(Batch batch) =>
        ((float[])batch.Images.Clone(), (int[])batch.Labels.Clone());

    public static List<(float[] Images, int[] Labels)> CopyEpoch(BatchLoader loader, int epoch) =>
        loader.Epoch(epoch).Select(Copy).ToList();
}

/// <summary>A fresh empty folder under the system temp folder, deleted on Dispose.</summary>
internal sealed class TemporaryFolder : IDisposable
{
    public string Path { get; } =
        Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"engine-data-{Guid.NewGuid():N}"))
            .FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
