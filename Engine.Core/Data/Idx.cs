// Idx: reads the idx format of MNIST and Fashion-MNIST (yann.lecun.com/exdb/mnist), plain or gzip:
//   images: [int32 0x00000803] [int32 N] [int32 H] [int32 W] then N×H×W unsigned bytes, row-major
//   labels: [int32 0x00000801] [int32 N] then N unsigned bytes
// All integers are big-endian. The result is a 1-channel ImageDataset; files with a wrong magic number, a
// size that does not match their header, differing counts, or an out-of-range label are rejected.
using System.Buffers.Binary;

namespace Engine.Core.Data;

/// <summary>Reads image/label file pairs in the idx format of MNIST and Fashion-MNIST (plain or gzip) into
/// 1-channel <see cref="ImageDataset"/>s.</summary>
public static class Idx
{
    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;

    /// <summary>The images of <paramref name="imagesPath"/> (idx3, N×H×W bytes) labelled by
    /// <paramref name="labelsPath"/> (idx1, N bytes), as an N×1×H×W dataset.</summary>
    /// <param name="imagesPath">The images file (magic 0x00000803), plain or gzip.</param>
    /// <param name="labelsPath">The labels file (magic 0x00000801), plain or gzip.</param>
    /// <param name="classes">Number of classes; every label must be below it.</param>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A wrong magic number, a size that does not match the header,
    /// differing image and label counts, or a label outside [0, <paramref name="classes"/>).</exception>
    public static ImageDataset Read(string imagesPath, string labelsPath, int classes = 10) =>
        ReadPair(imagesPath, labelsPath, classes, missingHint: null);

    /// <summary>The standard pair <c>{split}-images-idx3-ubyte</c> and <c>{split}-labels-idx1-ubyte</c> in
    /// <paramref name="folder"/>, each either plain or with a .gz suffix (split: "train" or "t10k").</summary>
    internal static ImageDataset ReadStandardPair(string folder, string split, string missingHint) =>
        ReadPair(Resolve(folder, $"{split}-images-idx3-ubyte"), Resolve(folder, $"{split}-labels-idx1-ubyte"), 10,
            missingHint);

    private static ImageDataset ReadPair(string imagesPath, string labelsPath, int classes, string? missingHint)
    {
        byte[] images = DataFile.ReadAllBytes(imagesPath, missingHint,
            new DataHeader(16, header => ImagesFileLength(header, imagesPath)));
        byte[] labelBytes = DataFile.ReadAllBytes(labelsPath, missingHint,
            new DataHeader(8, header => LabelsFileLength(header, labelsPath)));
        var (count, height, width) = ImagesHeader(images, imagesPath);
        int labelCount = LabelsHeader(labelBytes, labelsPath);
        if (count != labelCount)
            throw new InvalidDataException(
                $"{imagesPath} holds {count} images but {labelsPath} holds {labelCount} labels.");
        var labels = new int[count];
        for (int i = 0; i < count; i++) labels[i] = labelBytes[8 + i];
        return new ImageDataset(images[16..], labels, 1, height, width, classes, $"{imagesPath}, {labelsPath}");
    }

    /// <summary>The plain file if it exists, else the .gz one if that exists, else the plain name (which then
    /// fails as not found).</summary>
    private static string Resolve(string folder, string name)
    {
        string plain = Path.Combine(folder, name), gzip = plain + ".gz";
        return !File.Exists(plain) && File.Exists(gzip) ? gzip : plain;
    }

    private static (int Count, int Height, int Width) ImagesHeader(byte[] file, string path)
    {
        long length = ImagesFileLength(file, path);
        int count = Dimension(file, 4, "image count", path);
        int height = Dimension(file, 8, "height", path);
        int width = Dimension(file, 12, "width", path);
        RequireExactLength(file, length, $"{count} images of {height}×{width}", path);
        return (count, height, width);
    }

    /// <summary>The length of an images file with this header: 16 + N·H·W bytes, computed without overflow and
    /// rejected when no dataset file could be that long.</summary>
    private static long ImagesFileLength(byte[] file, string path)
    {
        CheckMagic(file, ImagesMagic, "images", path);
        RequireLength(file, 16, "a 16-byte header", path);
        int count = Dimension(file, 4, "image count", path);
        int height = Dimension(file, 8, "height", path);
        int width = Dimension(file, 12, "width", path);
        return FileLength(16 + (Int128)count * height * width, $"{count} images of {height}×{width}", path);
    }

    private static int LabelsHeader(byte[] file, string path)
    {
        long length = LabelsFileLength(file, path);
        int count = Dimension(file, 4, "label count", path);
        RequireExactLength(file, length, $"{count} labels", path);
        return count;
    }

    /// <summary>The length of a labels file with this header: 8 + N bytes.</summary>
    private static long LabelsFileLength(byte[] file, string path)
    {
        CheckMagic(file, LabelsMagic, "labels", path);
        RequireLength(file, 8, "an 8-byte header", path);
        int count = Dimension(file, 4, "label count", path);
        return FileLength(8 + (Int128)count, $"{count} labels", path);
    }

    /// <summary><paramref name="length"/> (exact, from 31-bit extents) when an array can hold it.</summary>
    private static long FileLength(Int128 length, string what, string path)
    {
        if (length > Array.MaxLength)
            throw new InvalidDataException(
                $"{path}: the header's {what} take {length:N0} bytes, more than a dataset file can hold " +
                $"({Array.MaxLength:N0} bytes).");
        return (long)length;
    }

    private static void CheckMagic(byte[] file, int expected, string kind, string path)
    {
        RequireLength(file, 4, "a magic number", path);
        int magic = BinaryPrimitives.ReadInt32BigEndian(file);
        if (magic != expected)
            throw new InvalidDataException(
                $"{path}: magic number 0x{magic:X8} is not 0x{expected:X8} (idx unsigned-byte {kind}).");
    }

    private static int Dimension(byte[] file, int offset, string what, string path)
    {
        int value = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(offset));
        if (value < 0) throw new InvalidDataException($"{path}: negative {what} {value} in the header.");
        return value;
    }

    private static void RequireLength(byte[] file, long expected, string what, string path)
    {
        if (file.Length < expected)
            throw new InvalidDataException(
                $"{path} is truncated: {file.Length} bytes cannot hold {what} ({expected} bytes).");
    }

    private static void RequireExactLength(byte[] file, long expected, string what, string path)
    {
        RequireLength(file, expected, $"the header and {what}", path);
        if (file.Length > expected)
            throw new InvalidDataException(
                $"{path}: {file.Length} bytes, but the header and {what} take {expected}: " +
                $"{file.Length - expected} trailing bytes.");
    }
}
