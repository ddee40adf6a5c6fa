// CIFAR-10 reader on files the tests write in the official binary format (1 label byte + 1024 R + 1024 G + 1024 B
// bytes per record): labels, pixels and channel order, the five-file training layout and the test file, and
// truncated files, labels ≥ 10 and missing files rejected with messages naming the file.
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.Data;

[TestFixture]
public sealed class Cifar10Tests
{
    private TemporaryFolder _folder = null!;

    [SetUp]
    public void CreateFolder() => _folder = new TemporaryFolder();

    [TearDown]
    public void DeleteFolder() => _folder.Dispose();

    /// <summary>A record whose red plane is all <c>10 + label</c>, green 100, blue 200, except the pixel at row 1,
    /// column 2 of each plane, which is 1, 2 and 3 for red, green and blue.</summary>
    private static byte[] Record(int label)
    {
        var record = new byte[3073];
        record[0] = (byte)label;
        record.AsSpan(1, 1024).Fill((byte)(10 + label));
        record.AsSpan(1 + 1024, 1024).Fill(100);
        record.AsSpan(1 + 2048, 1024).Fill(200);
        for (int channel = 0; channel < 3; channel++) record[1 + channel * 1024 + 1 * 32 + 2] = (byte)(channel + 1);
        return record;
    }

    private string WriteFile(string name, params int[] labels)
    {
        File.WriteAllBytes(_folder.File(name), labels.SelectMany(Record).ToArray());
        return _folder.File(name);
    }

    [Test]
    public void ReadsLabelsAndPixelsInChannelOrder()
    {
        var data = Cifar10.Read(WriteFile("batch.bin", 4, 0, 9));
        Assert.That((data.Count, data.Channels, data.Height, data.Width, data.Classes), Is.EqualTo((3, 3, 32, 32, 10)));
        Assert.That(data.Labels, Is.EqualTo(new[] { 4, 0, 9 }));
        var image = data.Image(2);
        Assert.That(image[0], Is.EqualTo(19), "red plane comes first");
        Assert.That(image[1024 + 5 * 32 + 7], Is.EqualTo(100), "then green");
        Assert.That(image[2048 + 1023], Is.EqualTo(200), "then blue");
        Assert.That(new[] { image[34], image[1024 + 34], image[2048 + 34] }, Is.EqualTo(new byte[] { 1, 2, 3 }),
            "row 1, column 2 of each plane");
        Assert.That(data.Source, Is.EqualTo(_folder.File("batch.bin")));
    }

    [Test]
    public void TrainingSetIsTheFiveBatchFilesInOrderAndTestIsTestBatch()
    {
        for (int i = 1; i <= 5; i++) WriteFile($"data_batch_{i}.bin", i, 9 - i);
        WriteFile("test_batch.bin", 7);
        var train = Cifar10.ReadTrain(_folder.Path);
        Assert.That(train.Labels, Is.EqualTo(new[] { 1, 8, 2, 7, 3, 6, 4, 5, 5, 4 }));
        Assert.That(train.Image(9)[0], Is.EqualTo(14));
        Assert.That(train.Source, Does.Contain("data_batch_1.bin").And.Contain("data_batch_5.bin"));
        var test = Cifar10.ReadTest(_folder.Path);
        Assert.That(test.Labels, Is.EqualTo(new[] { 7 }));
    }

    [Test]
    public void MissingBatchFileIsReportedWithItsPath()
    {
        for (int i = 1; i <= 4; i++) WriteFile($"data_batch_{i}.bin", i);
        var error = Assert.Throws<FileNotFoundException>(() => Cifar10.ReadTrain(_folder.Path))!;
        Assert.That(error.FileName, Is.EqualTo(_folder.File("data_batch_5.bin")));
    }

    [Test]
    public void TruncatedFileIsRejectedWithExpectedAndActualSizes()
    {
        string path = WriteFile("batch.bin", 1, 2);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..^10]);
        var error = Assert.Throws<InvalidDataException>(() => Cifar10.Read(path))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("truncated").And.Contain("6136 bytes")
            .And.Contain("expected 6146 bytes"));
    }

    [Test]
    public void LabelOfTenIsRejectedNamingFileAndRecord()
    {
        string good = WriteFile("good.bin", 1, 2), bad = WriteFile("bad.bin", 3, 10);
        var error = Assert.Throws<InvalidDataException>(() => Cifar10.Read(good, bad))!;
        Assert.That(error.Message, Does.Contain(bad).And.Contain("record 1").And.Contain("mislabelled")
            .And.Contain("label 10"));
    }
}
