// FashionMnist and Mnist: the standard train (60,000) and test (10,000) splits of 1×28×28 images in 10 classes,
// read with Idx from a folder holding train-/t10k-{images-idx3,labels-idx1}-ubyte, plain or .gz.
namespace Engine.Core.Data;

/// <summary>Fashion-MNIST (Zalando): 10 classes of clothing, 1×28×28 grey images — as torchvision.datasets.FashionMNIST.</summary>
public static class FashionMnist
{
    /// <summary>Where Debian's dataset-fashion-mnist package installs the files.</summary>
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";

    private const string MissingHint =
        "Install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), which puts the " +
        "files in " + DefaultFolder + ", or pass a folder holding them (the source repository ships a small real " +
        "subset in Engine.Tests/TestData/fashion-mnist-subset)";

    /// <summary>Reads the training split (train-images-idx3-ubyte and train-labels-idx1-ubyte, plain or .gz).</summary>
    /// <exception cref="FileNotFoundException">A file is missing; the message says how to get them.</exception>
    /// <exception cref="InvalidDataException">A file is not a valid idx file, or images and labels disagree.</exception>
    public static ImageDataset ReadTrain(string folder = DefaultFolder) =>
        Idx.ReadStandardPair(folder, "train", MissingHint);

    /// <summary>Reads the test split (t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, plain or .gz).</summary>
    /// <inheritdoc cref="ReadTrain" path="/exception"/>
    public static ImageDataset ReadTest(string folder = DefaultFolder) =>
        Idx.ReadStandardPair(folder, "t10k", MissingHint);
}

/// <summary>MNIST handwritten digits: 10 classes, 1×28×28 grey images, in the same idx layout as Fashion-MNIST.</summary>
public static class Mnist
{
    private const string MissingHint = "Pass a folder holding the MNIST idx files (plain or .gz)";

    /// <summary>Reads the training split from <paramref name="folder"/>.</summary>
    /// <inheritdoc cref="FashionMnist.ReadTrain" path="/exception"/>
    public static ImageDataset ReadTrain(string folder) => Idx.ReadStandardPair(folder, "train", MissingHint);

    /// <summary>Reads the test split from <paramref name="folder"/>.</summary>
    /// <inheritdoc cref="FashionMnist.ReadTrain" path="/exception"/>
    public static ImageDataset ReadTest(string folder) => Idx.ReadStandardPair(folder, "t10k", MissingHint);
}
