// Cifar10: reads the CIFAR-10 binary version (cifar-10-binary.tar.gz, www.cs.toronto.edu/~kriz/cifar.html).
// Each file is a sequence of 3073-byte records: 1 label byte (0–9), then 3072 pixel bytes: the 1024 red values,
// then 1024 green, then 1024 blue, each a row-major 32×32 plane. That is already C×H×W, so records are copied
// as they are. The training set is data_batch_1.bin … data_batch_5.bin (50,000 images), the test set
// test_batch.bin (10,000).
namespace Engine.Core.Data;

/// <summary>Reads the CIFAR-10 binary version (cifar-10-binary.tar.gz) into 3×32×32 <see cref="ImageDataset"/>s.
/// Every reader throws <see cref="FileNotFoundException"/> for a missing file (saying where to download it) and
/// <see cref="InvalidDataException"/> for a truncated file or a label outside 0–9.</summary>
public static class Cifar10
{
    /// <summary>Number of classes (airplane … truck), labelled 0–9.</summary>
    public const int Classes = 10;
    private const int Channels = 3, Side = 32, ImageSize = Channels * Side * Side, RecordSize = 1 + ImageSize;

    private const string MissingHint =
        "Download cifar-10-binary.tar.gz from www.cs.toronto.edu/~kriz/cifar.html and pass the folder " +
        "cifar-10-batches-bin it unpacks to";

    /// <summary>The 50,000 training images: data_batch_1.bin … data_batch_5.bin in <paramref name="folder"/>
    /// (the cifar-10-batches-bin folder), in file order.</summary>
    public static ImageDataset ReadTrain(string folder) =>
        Read(Enumerable.Range(1, 5).Select(i => Path.Combine(folder, $"data_batch_{i}.bin")).ToArray());

    /// <summary>The 10,000 test images: test_batch.bin in <paramref name="folder"/>.</summary>
    public static ImageDataset ReadTest(string folder) => Read(Path.Combine(folder, "test_batch.bin"));

    /// <summary>The records of <paramref name="files"/>, in order, as one dataset.</summary>
    public static ImageDataset Read(params string[] files)
    {
        if (files.Length == 0) throw new ArgumentException("No CIFAR-10 files given.", nameof(files));
        return ImageDataset.Concatenate(files.Select(ReadFile).ToArray());
    }

    private static ImageDataset ReadFile(string path)
    {
        byte[] file = DataFile.ReadAllBytes(path, MissingHint);
        int records = file.Length / RecordSize;
        if (records == 0 || file.Length % RecordSize != 0)
        {
            int expectedRecords = Math.Max(1, (file.Length + RecordSize - 1) / RecordSize);
            throw new InvalidDataException(
                $"{path} is truncated or not CIFAR-10: {file.Length} bytes is not a whole, positive number of " +
                $"{RecordSize}-byte records (1 label + 3×32×32 pixels); expected {expectedRecords * RecordSize} " +
                $"bytes for {expectedRecords} records.");
        }
        var pixels = new byte[records * ImageSize];
        var labels = new int[records];
        for (int i = 0; i < records; i++)
        {
            labels[i] = file[i * RecordSize];
            file.AsSpan(i * RecordSize + 1, ImageSize).CopyTo(pixels.AsSpan(i * ImageSize));
        }
        return new ImageDataset(pixels, labels, Channels, Side, Side, Classes, path);
    }
}
