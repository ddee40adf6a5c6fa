// ImageReader and ModelInput preprocessing, against values computed here: exact round trips of PNG bytes, the luma
// of a constant colour and its normalised value, gray files on 3-channel models, the resize + centre-crop geometry
// on patterns whose crop is known, antialiased shrinking, JPEG within its loss, and each bad input rejected with a
// message naming the file.
using Engine.Core.Data;
using Engine.Models.Prediction;
using Engine.Tests.Data;
using NUnit.Framework;
using SkiaSharp;

namespace Engine.Tests.Prediction;

public sealed class ImageReaderTests
{
    private TemporaryFolder _folder = null!;

    [SetUp]
    public void CreateFolder() => _folder = new TemporaryFolder();

    [TearDown]
    public void DeleteFolder() => _folder.Dispose();

    [TestCase(1)]
    [TestCase(3)]
    public void PngOfTheInputSizeReadsBackExactly(int channels)
    {
        var planes = new byte[channels * 28 * 28];
        new Random(channels).NextBytes(planes);
        string path = TestImageFiles.Write(_folder.File("random.png"), planes, channels, 28, 28);
        Assert.That(ImageReader.Read(path, channels, 28, 28), Is.EqualTo(planes));
    }

    [Test]
    public void GrayFileOnAThreeChannelModelRepeatsTheGrayPlane()
    {
        var gray = new byte[32 * 32];
        new Random(5).NextBytes(gray);
        string path = TestImageFiles.Write(_folder.File("gray.png"), gray, 1, 32, 32);
        Assert.That(ImageReader.Read(path, 3, 32, 32), Is.EqualTo(gray.Concat(gray).Concat(gray).ToArray()));
    }

    [Test]
    public void ConstantColourGivesItsLumaAndTheNormalisedConstant()
    {
        // 50×30 is resized (shorter side 30 → 28) and cropped; a constant stays constant.
        string path = TestImageFiles.Solid(_folder.File("solid.png"), 130, 60, 200, height: 30, width: 50);
        int luma = (int)Math.Floor(0.299 * 130 + 0.587 * 60 + 0.114 * 200 + 0.5);
        Assert.That(ImageReader.Read(path, 1, 28, 28), Is.All.EqualTo((byte)luma));
        Assert.That(ImageReader.Read(path, 3, 28, 28),
            Is.EqualTo(Enumerable.Repeat((byte)130, 784).Concat(Enumerable.Repeat((byte)60, 784))
                .Concat(Enumerable.Repeat((byte)200, 784)).ToArray()));

        var input = new ModelInput(1, 28, 28, new Normalization([0.25f], [0.4f]));
        var values = new float[784];
        input.Preprocess(path, values);
        double expected = (luma / 255.0 - 0.25) / 0.4;
        Assert.That(values, Is.All.EqualTo(expected).Within(1e-6));
    }

    [Test]
    public void PerPixelMeanIsSubtractedPixelByPixel()
    {
        string path = TestImageFiles.Solid(_folder.File("solid.png"), 90, 90, 90, 8, 8);
        var mean = Enumerable.Range(0, 3 * 64).Select(i => i / 192f).ToArray();
        var input = new ModelInput(3, 8, 8, new Normalization(mean, [1f, 1f, 1f]));
        var values = new float[3 * 64];
        input.Preprocess(path, values);
        for (int i = 0; i < values.Length; i++) Assert.That(values[i], Is.EqualTo(90 / 255.0 - mean[i]).Within(1e-6));
    }

    [TestCase(40, 80, 10, 10, 20)] // wide: the shorter side (height) becomes 10, the width 20
    [TestCase(80, 40, 10, 20, 10)] // tall
    [TestCase(30, 45, 28, 28, 42)] // ⌊28 × 45 / 30⌋ = 42
    [TestCase(28, 28, 28, 28, 28)]
    public void CoveringSizeKeepsTheAspectAndSetsTheShorterSide(int height, int width, int side, int expectedHeight,
        int expectedWidth) =>
        Assert.That(ImageReader.CoveringSize(height, width, side, side), Is.EqualTo((expectedHeight, expectedWidth)));

    [TestCase(false)]
    [TestCase(true)]
    public void ResizeThenCentreCropKeepsTheMiddleBand(bool tall)
    {
        // 40×80 (or 80×40) with the middle half of the long side bright: shrunk ×4 to 10×20, the centred 10×10
        // window is exactly that band (offset 5); an off-by-one crop would bring dark columns in.
        int longSide = 80, shortSide = 40, plane = longSide * shortSide;
        var planes = new byte[3 * plane];
        for (int along = 20; along < 60; along++)
            for (int across = 0; across < shortSide; across++)
            {
                int index = tall ? along * shortSide + across : across * longSide + along;
                planes[index] = planes[plane + index] = planes[2 * plane + index] = 200;
            }
        string path = TestImageFiles.Write(_folder.File("band.png"), planes, 3,
            tall ? longSide : shortSide, tall ? shortSide : longSide);
        var crop = ImageReader.Read(path, 1, 10, 10);
        Assert.That(crop.Select(v => (int)v), Is.All.InRange(198, 202), string.Join(" ", crop));
    }

    [Test]
    public void ShrinkingIsAntialiased()
    {
        // A one-pixel checkerboard shrunk ten times averages to mid-gray; point sampling would give 0s and 255s.
        var planes = new byte[280 * 280];
        for (int y = 0; y < 280; y++)
            for (int x = 0; x < 280; x++) planes[y * 280 + x] = (byte)((x + y) % 2 == 0 ? 255 : 0);
        string path = TestImageFiles.Write(_folder.File("checker.png"), planes, 1, 280, 280);
        Assert.That(ImageReader.Read(path, 1, 28, 28).Select(v => (int)v), Is.All.InRange(120, 135));
    }

    [Test]
    public void EnlargingASmallImageKeepsAConstantConstant()
    {
        string path = TestImageFiles.Solid(_folder.File("small.png"), 10, 250, 99, 7, 7);
        Assert.That(ImageReader.Read(path, 3, 28, 28).Take(784), Is.All.EqualTo((byte)10));
    }

    [Test]
    public void JpegIsReadWithinItsCompressionLoss()
    {
        string path = TestImageFiles.Solid(_folder.File("solid.jpg"), 40, 120, 220, 64, 48,
            SKEncodedImageFormat.Jpeg);
        var rgb = ImageReader.Read(path, 3, 32, 32);
        int[] expected = [40, 120, 220];
        for (int c = 0; c < 3; c++)
            Assert.That(rgb.Skip(c * 1024).Take(1024).Select(v => (int)v),
                Is.All.InRange(expected[c] - 4, expected[c] + 4), $"channel {c}");
    }

    [Test]
    public void FileThatIsNotAnImageIsRejectedByName()
    {
        string path = _folder.File("noise.png");
        File.WriteAllBytes(path, Enumerable.Range(0, 500).Select(i => (byte)(i * 37)).ToArray());
        var error = Assert.Throws<InvalidDataException>(() => ImageReader.Read(path, 1, 28, 28))!;
        Assert.That(error.Message, Does.Contain(path));
    }

    [TestCase(SKEncodedImageFormat.Png, "cut.png")]
    [TestCase(SKEncodedImageFormat.Jpeg, "cut.jpg")]
    public void TruncatedFileIsRejectedByName(SKEncodedImageFormat format, string name)
    {
        var planes = new byte[3 * 64 * 64];
        new Random(2).NextBytes(planes);
        string path = TestImageFiles.Write(_folder.File(name), planes, 3, 64, 64, format);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var error = Assert.Throws<InvalidDataException>(() => ImageReader.Read(path, 3, 32, 32))!;
        Assert.That(error.Message, Does.Contain(path).And.Contain("corrupt or truncated"));
    }

    [Test]
    public void NamedPipeOrEmptyFileIsRefusedInsteadOfBlocking()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("Named pipes are not files on Windows: not run.");
        string empty = _folder.File("empty.png");
        File.WriteAllBytes(empty, []);
        Assert.That(Assert.Throws<InvalidDataException>(() => ImageReader.Read(empty, 1, 28, 28))!.Message,
            Does.Contain($"'{empty}' is empty or not a regular file"));

        string pipe = _folder.File("pipe.png");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", pipe)) mkfifo.WaitForExit();
        Assert.That(ImageReader.FilesIn(_folder.Path), Does.Contain(pipe), "a folder's listing names the pipe");
        var read = Task.Run(() => ImageReader.Read(pipe, 1, 28, 28));
        if (!SpinWait.SpinUntil(() => read.IsCompleted, TimeSpan.FromSeconds(5)))
        {
            using (new FileStream(pipe, FileMode.Open, FileAccess.Write)) { } // unblocks the reader: end of data
            Assert.Fail($"Reading the named pipe {pipe} blocked.");
        }
        var error = Assert.Throws<AggregateException>(() => read.Wait())!.InnerException;
        Assert.That(error, Is.InstanceOf<InvalidDataException>());
        Assert.That(error!.Message, Does.Contain($"'{pipe}' is empty or not a regular file (a named pipe or device)"));
    }

    [Test]
    public void MissingFileIsRejectedByName()
    {
        string path = _folder.File("absent.png");
        var error = Assert.Throws<FileNotFoundException>(() => ImageReader.Read(path, 1, 28, 28))!;
        Assert.That(error.Message, Does.Contain(path));
    }

    [Test]
    public void FolderListsItsImagesInNameOrder()
    {
        TestImageFiles.Solid(_folder.File("b.PNG"), 1, 2, 3, 4, 4);
        TestImageFiles.Solid(_folder.File("a.jpg"), 1, 2, 3, 4, 4, SKEncodedImageFormat.Jpeg);
        File.WriteAllText(_folder.File("notes.txt"), "not an image");
        Assert.That(ImageReader.FilesIn(_folder.Path).Select(Path.GetFileName), Is.EqualTo(new[] { "a.jpg", "b.PNG" }));
    }

    [Test]
    public void EmptyOrMissingFolderIsRejected()
    {
        File.WriteAllText(_folder.File("notes.txt"), "not an image");
        Assert.That(() => ImageReader.FilesIn(_folder.Path),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contain("holds no images"));
        string missing = _folder.File("nowhere");
        Assert.That(() => ImageReader.FilesIn(missing),
            Throws.InstanceOf<DirectoryNotFoundException>().With.Message.Contain(missing));
    }
}
