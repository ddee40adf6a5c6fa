// Fashion-MNIST reader against facts of real files: Debian's full dataset-fashion-mnist set when installed, else the
// subset shipped in TestData/fashion-mnist-subset (FashionMnistData decides). The expected values of both sets were
// obtained independently of the C# reader, with Python's gzip and struct modules on the same .gz files:
//   im = gzip.open(f).read(); n, h, w = struct.unpack('>III', im[4:16]); lb = gzip.open(g).read()[8:]
//   pixel(i, r, c) = im[16 + i*784 + r*28 + c]; collections.Counter(lb); sum(im[16:]); population std of im[16:]
using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Core.Data;
using Engine.Tests.TestData;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class FashionMnistTests
{
    private sealed record SplitFacts(int Count, int[] ClassCounts, int[] FirstLabels, int LastLabel,
        (int Image, int Row, int Column, int Value)[] Pixels, (int Image, long Sum)[] ImageSums, long PixelSum);

    private sealed record SetFacts(SplitFacts Train, SplitFacts Test, double Mean, double Std);

    private static readonly SetFacts FullSet = new(
        new SplitFacts(60_000, Enumerable.Repeat(6_000, 10).ToArray(), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], 5,
            [(0, 14, 14, 217), (1, 20, 20, 217)], [(0, 76_247), (59_999, 16_684)], 3_431_114_169),
        new SplitFacts(10_000, Enumerable.Repeat(1_000, 10).ToArray(), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], 5,
            [(0, 14, 14, 110), (1, 20, 20, 134), (9_999, 14, 14, 132)], [(0, 33_456)], 573_469_082),
        0.2860406, 0.3530242);

    private static readonly SetFacts Subset = new(
        new SplitFacts(6_000, [560, 643, 608, 612, 584, 594, 590, 617, 590, 602], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], 0,
            [(0, 14, 14, 217), (1, 20, 20, 217), (5_999, 14, 14, 200)], [(0, 76_247), (5_999, 77_039)],
            342_670_278),
        new SplitFacts(1_000, [107, 105, 111, 93, 115, 87, 97, 95, 95, 95], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], 7,
            [(0, 14, 14, 110), (1, 20, 20, 134), (999, 14, 14, 200)], [(0, 33_456), (999, 28_316)], 58_034_149),
        0.2856728, 0.3536861);

    private string _folder = null!;
    private SetFacts _facts = null!;
    private ImageDataset _train = null!;
    private ImageDataset _test = null!;

    [OneTimeSetUp]
    public void ReadTheFiles()
    {
        _folder = FashionMnistData.Folder;
        _facts = FashionMnistData.FullSetInstalled ? FullSet : Subset;
        _train = FashionMnist.ReadTrain(_folder);
        _test = FashionMnist.ReadTest(_folder);
    }

    [SetUp]
    public void SayWhichSet() => TestContext.Out.WriteLine(FashionMnistData.Description);

    [Test]
    public void TrainingSetHasTheKnownSizeAndClassCounts() => AssertSizeAndClassCounts(_train, _facts.Train);

    [Test]
    public void TestSetHasTheKnownSizeAndClassCounts() => AssertSizeAndClassCounts(_test, _facts.Test);

    [Test]
    public void KnownLabelsAndPixels()
    {
        AssertLabelsAndPixels(_train, _facts.Train);
        AssertLabelsAndPixels(_test, _facts.Test);
    }

    [Test]
    public void PerChannelStatisticsMatchTheKnownValues()
    {
        var normalization = Normalization.PerChannel(_train);
        Assert.That(normalization.Mean[0], Is.EqualTo(_facts.Mean).Within(1e-6));
        Assert.That(normalization.Std[0], Is.EqualTo(_facts.Std).Within(1e-6));
    }

    [Test]
    public void UncompressedFilesReadTheSameAsGzip()
    {
        using var folder = new TemporaryFolder();
        foreach (string name in new[] { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
            File.WriteAllBytes(folder.File(name), FashionMnistData.Decompress(Path.Combine(_folder, name + ".gz")));
        var test = FashionMnist.ReadTest(folder.Path);
        Assert.That(test.Pixels, Is.EqualTo(_test.Pixels));
        Assert.That(test.Labels, Is.EqualTo(_test.Labels));
        Assert.That(test.Source, Does.Not.Contain(".gz"));
    }

    /// <summary>The shipped files hold the contents their README records; with the full set installed, they are
    /// also exactly its first records (same header apart from the count, same bytes).</summary>
    [Test]
    public void ShippedSubsetIsTheFirstRecordsOfTheFullSet()
    {
        string readme = File.ReadAllText(Path.Combine(FashionMnistData.SubsetFolder, "README.md"));
        foreach (string name in FashionMnistData.FileNames)
        {
            byte[] subset = FashionMnistData.Decompress(Path.Combine(FashionMnistData.SubsetFolder, name));
            string expected = FashionMnistData.SubsetContentSha256[name];
            Assert.That(Convert.ToHexStringLower(SHA256.HashData(subset)), Is.EqualTo(expected), name);
            Assert.That(readme, Does.Contain($"{expected}  {name[..^3]}"), $"{name}: the README records its checksum");

            int count = name.StartsWith("train") ? FashionMnistData.SubsetTrainCount : FashionMnistData.SubsetTestCount;
            int header = name.Contains("images") ? 16 : 8, record = name.Contains("images") ? 28 * 28 : 1;
            Assert.That(BinaryPrimitives.ReadInt32BigEndian(subset.AsSpan(4)), Is.EqualTo(count), name);
            Assert.That(subset, Has.Length.EqualTo(header + count * record), name);
            if (!FashionMnistData.FullSetInstalled) continue;

            byte[] full = FashionMnistData.Decompress(Path.Combine(FashionMnist.DefaultFolder, name));
            Assert.That(subset.AsSpan(..4).SequenceEqual(full.AsSpan(..4)), Is.True, $"{name}: same magic number");
            Assert.That(subset.AsSpan(8..).SequenceEqual(full.AsSpan(8, subset.Length - 8)), Is.True,
                $"{name}: same dimensions and the first {count} records of {FashionMnist.DefaultFolder}");
        }
        TestContext.Out.WriteLine(FashionMnistData.FullSetInstalled
            ? "checked the recorded checksums and, byte for byte, against the full set"
            : "checked the recorded checksums; the comparison with the full set needs Debian's dataset-fashion-mnist");
    }

    [Test]
    public void MissingFilesSayWhichPackageToInstall()
    {
        using var folder = new TemporaryFolder();
        var error = Assert.Throws<FileNotFoundException>(() => FashionMnist.ReadTrain(folder.Path))!;
        Assert.That(error.Message, Does.Contain(folder.File("train-images-idx3-ubyte"))
            .And.Contain("dataset-fashion-mnist").And.Contain("Engine.Tests/TestData/fashion-mnist-subset"));
    }

    private static void AssertSizeAndClassCounts(ImageDataset data, SplitFacts facts)
    {
        Assert.That((data.Count, data.Channels, data.Height, data.Width, data.Classes),
            Is.EqualTo((facts.Count, 1, 28, 28, 10)));
        Assert.That(data.ClassCounts(), Is.EqualTo(facts.ClassCounts));
    }

    private static void AssertLabelsAndPixels(ImageDataset data, SplitFacts facts)
    {
        Assert.That(data.Labels[..10], Is.EqualTo(facts.FirstLabels));
        Assert.That(data.Labels[^1], Is.EqualTo(facts.LastLabel));
        foreach (var (image, row, column, value) in facts.Pixels)
            Assert.That(data.Image(image)[row * data.Width + column], Is.EqualTo(value),
                $"pixel ({row}, {column}) of image {image}");
        foreach (var (image, sum) in facts.ImageSums)
            Assert.That(Sum(data.Image(image)), Is.EqualTo(sum), $"pixel sum of image {image}");
        Assert.That(Sum(data.Pixels), Is.EqualTo(facts.PixelSum));
    }

    private static long Sum(ReadOnlySpan<byte> bytes)
    {
        long sum = 0;
        foreach (byte value in bytes) sum += value;
        return sum;
    }
}
