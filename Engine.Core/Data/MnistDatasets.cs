// FashionMnist and Mnist: the standard train (60,000) and test (10,000) splits of 1×28×28 images in 10 classes,
// read with Idx from a folder holding train-/t10k-{images-idx3,labels-idx1}-ubyte, plain or .gz.
namespace Engine.Core.Data;

public static class FashionMnist
{
    /// <summary>Where Debian's dataset-fashion-mnist package installs the files.</summary>
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";

    private const string MissingHint =
        "Install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), which puts the " +
        "files in " + DefaultFolder + ", or pass a folder holding them (the source repository ships a small real " +
        "subset in Engine.Tests/TestData/fashion-mnist-subset)";

    public static ImageDataset ReadTrain(string folder = DefaultFolder) =>
        Idx.ReadStandardPair(folder, "train", MissingHint);

    public static ImageDataset ReadTest(string folder = DefaultFolder) =>
        Idx.ReadStandardPair(folder, "t10k", MissingHint);
}

public static class Mnist
{
    private const string MissingHint = "Pass a folder holding the MNIST idx files (plain or .gz)";

    public static ImageDataset ReadTrain(string folder) => Idx.ReadStandardPair(folder, "train", MissingHint);

    public static ImageDataset ReadTest(string folder) => Idx.ReadStandardPair(folder, "t10k", MissingHint);
}
