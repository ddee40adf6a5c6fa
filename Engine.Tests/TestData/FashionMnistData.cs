// The one place that decides which Fashion-MNIST the tests read: the full set from Debian's dataset-fashion-mnist
// package when all four files are installed, else the real subset shipped in TestData/fashion-mnist-subset (the first
// 6,000 training and 1,000 test records, copied next to the test assembly; its README says how it was cut).
using System.IO.Compression;
using Engine.Core.Data;
using NUnit.Framework;

namespace Engine.Tests.TestData;

internal static class FashionMnistData
{
    /// <summary>The standard file names, as in both folders.</summary>
    public static IReadOnlyList<string> FileNames { get; } =
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"];

    /// <summary>How many training and test records the shipped subset holds.</summary>
    public const int SubsetTrainCount = 6_000, SubsetTestCount = 1_000;

    /// <summary>SHA-256 of each shipped file's uncompressed contents, as recorded in the subset's README.</summary>
    public static IReadOnlyDictionary<string, string> SubsetContentSha256 { get; } = new Dictionary<string, string>
    {
        ["train-images-idx3-ubyte.gz"] = "6dded81672539b5d148c1a85358069d1808c316dc6f6c0abfd12ba3ced5dd394",
        ["train-labels-idx1-ubyte.gz"] = "d7c464914ae4b919728c5c99c3cdde5a0259febf1e99ddc6927a15768731d7dc",
        ["t10k-images-idx3-ubyte.gz"] = "7a6d8e07ea021ec5bc73135ebd0a5770799557ec6f8242d8749c4f32a3cf4643",
        ["t10k-labels-idx1-ubyte.gz"] = "b40abac7ec8228f434940f579deb7cf7b6e3103b5274cb91d1545771f5ef1c8b",
    };

    /// <summary>The shipped subset, found next to the test assembly whatever the working directory.</summary>
    public static string SubsetFolder { get; } =
        Path.Combine(AppContext.BaseDirectory, "TestData", "fashion-mnist-subset");

    /// <summary>Whether Debian's full set is installed (all four files).</summary>
    public static bool FullSetInstalled { get; } =
        FileNames.All(name => File.Exists(Path.Combine(FashionMnist.DefaultFolder, name)));

    /// <summary>Which set the tests read, in words.</summary>
    public static string Description => FullSetInstalled
        ? $"Fashion-MNIST: the full set from {FashionMnist.DefaultFolder}"
        : $"Fashion-MNIST: the shipped subset in {SubsetFolder} ({SubsetTrainCount} training, {SubsetTestCount} test " +
          "images; Debian's dataset-fashion-mnist is not installed)";

    /// <summary>The folder the tests read; writes <see cref="Description"/> to the current test's output.</summary>
    public static string Folder
    {
        get
        {
            TestContext.Out.WriteLine(Description);
            return FullSetInstalled ? FashionMnist.DefaultFolder : SubsetFolder;
        }
    }

    /// <summary>The uncompressed bytes of a .gz file.</summary>
    public static byte[] Decompress(string path)
    {
        using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var bytes = new MemoryStream();
        gzip.CopyTo(bytes);
        return bytes.ToArray();
    }
}
