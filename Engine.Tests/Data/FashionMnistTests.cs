// Fashion-MNIST reader against facts of the real files from Debian's dataset-fashion-mnist package (CI installs
// it; without it these tests fail, saying so). The expected values below were obtained independently of the C#
// reader, with Python's gzip and struct modules on the same .gz files:
//   im = gzip.open(f).read(); n, h, w = struct.unpack('>III', im[4:16]); lb = gzip.open(g).read()[8:]
//   pixel(i, r, c) = im[16 + i*784 + r*28 + c]; collections.Counter(lb); sum(im[16:]); population std of im[16:]
using System.IO.Compression;
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class FashionMnistTests
{
    private ImageDataset _train = null!;
    private ImageDataset _test = null!;

    [OneTimeSetUp]
    public void ReadTheInstalledFiles()
    {
        string[] names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"];
        var missing = names.Select(name => Path.Combine(FashionMnist.DefaultFolder, name)).Where(p => !File.Exists(p))
            .ToArray();
        if (missing.Length > 0)
            Assert.Fail($"Fashion-MNIST is not installed (missing {string.Join(", ", missing)}): install Debian's " +
                "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist).");
        _train = FashionMnist.ReadTrain(FashionMnist.DefaultFolder);
        _test = FashionMnist.ReadTest(FashionMnist.DefaultFolder);
    }

    [Test]
    public void TrainingSetIs60000ImagesOf1x28x28With6000PerClass()
    {
        Assert.That((_train.Count, _train.Channels, _train.Height, _train.Width, _train.Classes),
            Is.EqualTo((60_000, 1, 28, 28, 10)));
        Assert.That(_train.ClassCounts(), Is.All.EqualTo(6_000));
    }

    [Test]
    public void TestSetIs10000ImagesOf1x28x28With1000PerClass()
    {
        Assert.That((_test.Count, _test.Channels, _test.Height, _test.Width, _test.Classes),
            Is.EqualTo((10_000, 1, 28, 28, 10)));
        Assert.That(_test.ClassCounts(), Is.All.EqualTo(1_000));
    }

    [Test]
    public void KnownLabelsAndPixels()
    {
        Assert.That(_train.Labels[..10], Is.EqualTo(new[] { 9, 0, 0, 3, 0, 2, 7, 2, 5, 5 }));
        Assert.That(_train.Labels[^1], Is.EqualTo(5));
        Assert.That(Pixel(_train, 0, 14, 14), Is.EqualTo(217));
        Assert.That(Pixel(_train, 1, 20, 20), Is.EqualTo(217));
        Assert.That(Sum(_train.Image(0)), Is.EqualTo(76_247));
        Assert.That(Sum(_train.Image(59_999)), Is.EqualTo(16_684));
        Assert.That(Sum(_train.Pixels), Is.EqualTo(3_431_114_169));

        Assert.That(_test.Labels[..10], Is.EqualTo(new[] { 9, 2, 1, 1, 6, 1, 4, 6, 5, 7 }));
        Assert.That(_test.Labels[^1], Is.EqualTo(5));
        Assert.That(Pixel(_test, 0, 14, 14), Is.EqualTo(110));
        Assert.That(Pixel(_test, 1, 20, 20), Is.EqualTo(134));
        Assert.That(Pixel(_test, 9_999, 14, 14), Is.EqualTo(132));
        Assert.That(Sum(_test.Image(0)), Is.EqualTo(33_456));
        Assert.That(Sum(_test.Pixels), Is.EqualTo(573_469_082));
    }

    [Test]
    public void PerChannelStatisticsMatchTheKnownValues()
    {
        var normalization = Normalization.PerChannel(_train);
        Assert.That(normalization.Mean[0], Is.EqualTo(0.2860406).Within(1e-6));
        Assert.That(normalization.Std[0], Is.EqualTo(0.3530242).Within(1e-6));
    }

    [Test]
    public void UncompressedFilesReadTheSameAsGzip()
    {
        using var folder = new TemporaryFolder();
        foreach (string name in new[] { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
        {
            using var gzip = new GZipStream(File.OpenRead(Path.Combine(FashionMnist.DefaultFolder, name + ".gz")),
                CompressionMode.Decompress);
            using var plain = File.Create(folder.File(name));
            gzip.CopyTo(plain);
        }
        var test = FashionMnist.ReadTest(folder.Path);
        Assert.That(test.Pixels, Is.EqualTo(_test.Pixels));
        Assert.That(test.Labels, Is.EqualTo(_test.Labels));
        Assert.That(test.Source, Does.Not.Contain(".gz"));
    }

    [Test]
    public void MissingFilesSayWhichPackageToInstall()
    {
        using var folder = new TemporaryFolder();
        var error = Assert.Throws<FileNotFoundException>(() => FashionMnist.ReadTrain(folder.Path))!;
        Assert.That(error.Message, Does.Contain(folder.File("train-images-idx3-ubyte"))
            .And.Contain("dataset-fashion-mnist"));
    }

    private static int Pixel(ImageDataset data, int image, int row, int column) =>
        data.Image(image)[row * data.Width + column];

    private static long Sum(ReadOnlySpan<byte> bytes)
    {
        long sum = 0;
        foreach (byte value in bytes) sum += value;
        return sum;
    }
}
