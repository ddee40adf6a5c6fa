// The datasets the train and degradation commands read: Fashion-MNIST, MNIST (idx files, plain or gzip) and
// CIFAR-10 (binary batches), optionally cut to a subset and with a held-out validation split in place of the
// test set (the paper's 45k/5k).
using Engine.Core.Data;

namespace Engine.Bench.Training;

internal static class DataSources
{
    public static IReadOnlyList<string> Kinds { get; } = ["fashion-mnist", "mnist", "cifar10"];

    public static (ImageDataset Train, ImageDataset Test) Load(string kind, string? path, int trainSubset,
        int testSubset, int validation, int seed)
    {
        if (trainSubset < 0 || testSubset < 0 || validation < 0)
            throw new ArgumentException($"--train-subset, --test-subset and --validation must be 0 or more " +
                                        $"(got {trainSubset}, {testSubset}, {validation}).");
        var (train, test) = kind.Trim().ToLowerInvariant() switch
        {
            "fashion-mnist" => (FashionMnist.ReadTrain(path ?? FashionMnist.DefaultFolder),
                FashionMnist.ReadTest(path ?? FashionMnist.DefaultFolder)),
            "mnist" => (Mnist.ReadTrain(Required(path, kind)), Mnist.ReadTest(Required(path, kind))),
            "cifar10" => (Cifar10.ReadTrain(Required(path, kind)), Cifar10.ReadTest(Required(path, kind))),
            _ => throw new ArgumentException($"Unknown dataset '{kind}'. Datasets: {string.Join(", ", Kinds)}."),
        };
        if (validation > 0)
        {
            if (validation >= train.Count)
                throw new ArgumentException($"--validation {validation} leaves no training data ({train.Count} images).");
            (train, test) = train.Split(validation, seed);
        }
        if (trainSubset > 0) train = train.Take(trainSubset);
        if (testSubset > 0) test = test.Take(testSubset);
        return (train, test);
    }

    private static string Required(string? path, string kind) =>
        path ?? throw new ArgumentException($"--data-path is required for {kind}.");
}
