// Idx reader on files the tests write: plain and gzip read the same (detected by content, not name), and wrong
// magic numbers, truncated or oversized files, differing counts, bad labels and missing files are rejected with
// messages that name the file.
using System.Buffers.Binary;
using System.IO.Compression;
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class IdxTests
{
    private const int Count = 5, Height = 3, Width = 4;
    private TemporaryFolder _folder = null!;
    private byte[] _pixels = null!;
    private readonly byte[] _labels = [3, 0, 9, 9, 1];

    [SetUp]
    public void WriteFiles()
    {
        _folder = new TemporaryFolder();
        _pixels = Enumerable.Range(0, Count * Height * Width).Select(i => (byte)(i * 7 % 256)).ToArray();
        File.WriteAllBytes(_folder.File("images"), ImagesFile(_pixels, Count, Height, Width));
        File.WriteAllBytes(_folder.File("labels"), LabelsFile(_labels));
    }

    [TearDown]
    public void DeleteFiles() => _folder.Dispose();

    [Test]
    public void ReadsShapeLabelsAndPixels()
    {
        var data = Idx.Read(_folder.File("images"), _folder.File("labels"));
        Assert.That((data.Count, data.Channels, data.Height, data.Width, data.Classes),
            Is.EqualTo((Count, 1, Height, Width, 10)));
        Assert.That(data.Labels, Is.EqualTo(_labels.Select(label => (int)label)));
        Assert.That(data.Pixels, Is.EqualTo(_pixels));
        // Image 2, row 1, column 3 is byte 2·12 + 1·4 + 3 = 31 of the pixel data.
        Assert.That(data.Image(2)[1 * Width + 3], Is.EqualTo((byte)(31 * 7)));
        Assert.That(data.Source, Does.Contain(_folder.File("images")).And.Contain(_folder.File("labels")));
    }

    [Test]
    public void GzipIsDetectedByContentNotName()
    {
        // Gzip data under a plain name, and plain data under a .gz name.
        File.WriteAllBytes(_folder.File("images-zipped"), Gzip(File.ReadAllBytes(_folder.File("images"))));
        File.WriteAllBytes(_folder.File("labels.gz"), File.ReadAllBytes(_folder.File("labels")));
        var plain = Idx.Read(_folder.File("images"), _folder.File("labels"));
        var zipped = Idx.Read(_folder.File("images-zipped"), _folder.File("labels.gz"));
        Assert.That(zipped.Pixels, Is.EqualTo(plain.Pixels));
        Assert.That(zipped.Labels, Is.EqualTo(plain.Labels));
    }

    [Test]
    public void WrongMagicNumberIsRejected()
    {
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("labels"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.Contain(_folder.File("labels")).And.Contain("0x00000801")
            .And.Contain("0x00000803"));
    }

    [Test]
    public void TruncatedImagesAreRejectedWithBothSizes()
    {
        byte[] file = File.ReadAllBytes(_folder.File("images"));
        File.WriteAllBytes(_folder.File("images"), file[..^1]);
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.Contain(_folder.File("images")).And.Contain("truncated")
            .And.Contain($"{file.Length - 1} bytes").And.Contain($"({file.Length} bytes)"));
    }

    [Test]
    public void TruncatedGzipIsRejected()
    {
        byte[] zipped = Gzip(File.ReadAllBytes(_folder.File("images")));
        File.WriteAllBytes(_folder.File("images.gz"), zipped[..(zipped.Length / 2)]);
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images.gz"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.Contain(_folder.File("images.gz")));
    }

    [Test]
    public void TrailingBytesAreRejected()
    {
        File.WriteAllBytes(_folder.File("labels"), [.. LabelsFile(_labels), 0]);
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.Contain(_folder.File("labels")).And.Contain("1 trailing bytes"));
    }

    [Test]
    public void DifferentImageAndLabelCountsAreRejected()
    {
        File.WriteAllBytes(_folder.File("labels"), LabelsFile(_labels[..4]));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.Contain("5 images").And.Contain("4 labels").And.Contain(_folder.File("labels")));
    }

    [Test]
    public void LabelOutsideTheClassesIsRejected()
    {
        File.WriteAllBytes(_folder.File("labels"), LabelsFile([3, 0, 9, 10, 1]));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.Contain(_folder.File("labels")).And.Contain("record 3")
            .And.Contain("mislabelled").And.Contain("label 10"));
        Assert.That(Idx.Read(_folder.File("images"), _folder.File("labels"), classes: 11).Labels[3], Is.EqualTo(10));
    }

    [Test]
    public void MissingFileIsReportedWithItsPath()
    {
        var error = Assert.Throws<FileNotFoundException>(() => Idx.Read(_folder.File("nope"), _folder.File("labels")))!;
        Assert.That(error.FileName, Is.EqualTo(_folder.File("nope")));
        Assert.That(error.Message, Does.Contain(_folder.File("nope")));
    }

    internal static byte[] ImagesFile(byte[] pixels, int count, int height, int width) =>
        [.. BigEndian(0x803, count, height, width), .. pixels];

    internal static byte[] LabelsFile(byte[] labels) => [.. BigEndian(0x801, labels.Length), .. labels];

    internal static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest)) gzip.Write(data);
        return output.ToArray();
    }

    private static byte[] BigEndian(params int[] values)
    {
        var bytes = new byte[4 * values.Length];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }
}
