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

    [Test]
    public void HeaderWhoseSizeOverflows64BitsIsRejectedNamingTheDimensions()
    {
        // 2^22 images of 2^21×2^21 bytes: the product is 2^64, which wraps to 0 in 64-bit arithmetic, so a bare
        // 16-byte header looked complete.
        File.WriteAllBytes(_folder.File("images"), BigEndian(0x803, 1 << 22, 1 << 21, 1 << 21));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.StartWith(_folder.File("images"))
            .And.Contain("4194304 images of 2097152×2097152 take 18,446,744,073,709,551,632 bytes")
            .And.Contain("more than a dataset file can hold"));
    }

    [Test]
    public void ImagesTooLargeForAnArrayAreRejectedEvenWhenThereAreNone()
    {
        File.WriteAllBytes(_folder.File("images"), BigEndian(0x803, 0, 65536, 65536));
        File.WriteAllBytes(_folder.File("labels"), LabelsFile([]));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images"), _folder.File("labels")))!;
        Assert.That(error.Message, Does.Contain(_folder.File("images")).And.Contain("1×65536×65536 take 4,294,967,296 bytes each"));
    }

    [Test]
    public void GzipBombStopsAtTheLengthTheHeaderImplies()
    {
        // A valid header for 5 images of 3×4 followed by 64 MiB of zeros: decompression stops past 16 + 60 bytes.
        byte[] bomb = [.. ImagesFile(_pixels, Count, Height, Width), .. new byte[64 << 20]];
        File.WriteAllBytes(_folder.File("images.gz"), Gzip(bomb));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images.gz"), _folder.File("labels")))!;
        Assert.That(error.Message, Is.EqualTo(
            $"{_folder.File("images.gz")}: the gzip data decompresses to more than 76 bytes, the length its header implies."));
    }

    [Test]
    public void FoldersAndEmptyFilesAreRejectedNamingThePath()
    {
        Directory.CreateDirectory(_folder.File("folder"));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("folder"), _folder.File("labels")))!;
        Assert.That(error.Message, Is.EqualTo($"{_folder.File("folder")} is a folder, not a dataset file."));
        File.WriteAllBytes(_folder.File("empty"), []);
        error = Assert.Throws<InvalidDataException>(() => Idx.Read(_folder.File("images"), _folder.File("empty")))!;
        Assert.That(error.Message, Does.StartWith($"{_folder.File("empty")} is empty or not a regular file"));
    }

    [Test]
    public void NamedPipeIsRefusedInsteadOfBlocking()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("Named pipes are not files on Windows: not run.");
        string pipe = _folder.File("pipe");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", pipe)) mkfifo.WaitForExit();
        var read = Task.Run(() => Idx.Read(pipe, _folder.File("labels")));
        bool finished = SpinWait.SpinUntil(() => read.IsCompleted, TimeSpan.FromSeconds(5));
        if (!finished)
        {
            using (new FileStream(pipe, FileMode.Open, FileAccess.Write)) { } // unblocks the reader: end of data
            Assert.Fail($"Reading the named pipe {pipe} blocked.");
        }
        var error = Assert.Throws<AggregateException>(() => read.Wait())!.InnerException;
        Assert.That(error, Is.InstanceOf<InvalidDataException>());
        Assert.That(error!.Message, Does.StartWith($"{pipe} is empty or not a regular file (a named pipe or device)"));
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
