// KnownClassNames: the label names of the datasets the readers know, and how training data is recognised as one of them
// (by its reader's file names, image shape and class count) so that a checkpoint can carry its class names.
using Engine.Core.Data;

namespace Engine.Models.Prediction;

/// <summary>Class names of the datasets the readers know (Fashion-MNIST, CIFAR-10), and recognition of training data
/// as one of them.</summary>
public static class KnownClassNames
{
    /// <summary>Fashion-MNIST's ten labels, in label order.</summary>
    public static IReadOnlyList<string> FashionMnist { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>CIFAR-10's ten labels, in label order.</summary>
    public static IReadOnlyList<string> Cifar10 { get; } =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>The names of <paramref name="train"/>'s labels when it is CIFAR-10 (read from data_batch_*.bin
    /// files: 3×32×32 in 10 classes) or Fashion-MNIST (idx files under a path naming "fashion": 1×28×28 in 10
    /// classes); null otherwise (e.g. MNIST, whose label is its digit).</summary>
    public static IReadOnlyList<string>? Of(ImageDataset train)
    {
        var shape = (train.Channels, train.Height, train.Width, train.Classes);
        string source = train.Source.ToLowerInvariant();
        if (shape == (3, 32, 32, 10) && source.Contains("data_batch_")) return Cifar10;
        if (shape == (1, 28, 28, 10) && source.Contains("idx3-ubyte") && source.Contains("fashion")) return FashionMnist;
        return null;
    }
}
