// The options shared by `train` and `degradation`, turned into TrainOptions and loaded data.
using System.CommandLine;
using Engine.Bench.Training;
using Engine.Core.Data;
using Engine.Models.Training;

namespace Engine.Bench.Commands;

internal sealed class TrainOptionsBinder(int defaultEpochs = 5, int defaultTrainSubset = 0, int defaultTestSubset = 0,
    int defaultBatch = 128, double defaultLearningRate = 0.1)
{
    public Option<string> Data { get; } = new("--data") { Description = $"Dataset: {string.Join(", ", DataSources.Kinds)}.", DefaultValueFactory = _ => "fashion-mnist" };
    public Option<string?> DataPath { get; } = new("--data-path") { Description = "Folder of the dataset files (Fashion-MNIST defaults to Debian's dataset-fashion-mnist)." };
    public Option<int> Epochs { get; } = new("--epochs") { Description = "Epochs to train.", DefaultValueFactory = _ => defaultEpochs };
    public Option<int?> Iterations { get; } = new("--iters") { Description = "Iterations to train (instead of epochs)." };
    public Option<int> Batch { get; } = new("--batch") { Description = "Batch size.", DefaultValueFactory = _ => defaultBatch };
    public Option<string> Schedule { get; } = new("--schedule") { Description = "multistep, cosine or constant.", DefaultValueFactory = _ => "multistep" };
    public Option<double> LearningRate { get; } = new("--lr") { Description = "Base learning rate.", DefaultValueFactory = _ => defaultLearningRate };
    public Option<int[]?> Milestones { get; } = new("--milestones") { Description = "Iterations where multistep divides the rate by 10 (default: 50% and 75%; the paper: 32000 48000).", AllowMultipleArgumentsPerToken = true };
    public Option<int> WarmupIterations { get; } = new("--warmup-iters") { Description = "Iterations at --warmup-lr first (the paper's ResNet-110: 400 at 0.01)." };
    public Option<double> WarmupRate { get; } = new("--warmup-lr") { Description = "Warm-up learning rate.", DefaultValueFactory = _ => 0.01 };
    public Option<double> Momentum { get; } = new("--momentum") { DefaultValueFactory = _ => 0.9 };
    public Option<double> WeightDecay { get; } = new("--wd") { Description = "Weight decay.", DefaultValueFactory = _ => 1e-4 };
    public Option<bool> Nesterov { get; } = new("--nesterov");
    public Option<bool> NoAugment { get; } = new("--no-augment") { Description = "No padding, cropping or flipping." };
    public Option<string> Normalize { get; } = new("--normalize") { Description = "channel (mean/std) or pixel (per-pixel mean).", DefaultValueFactory = _ => "channel" };
    public Option<int> Seed { get; } = new("--seed") { DefaultValueFactory = _ => 0 };
    public Option<int> TrainSubset { get; } = new("--train-subset") { Description = "Use only the first N training images (0: all).", DefaultValueFactory = _ => defaultTrainSubset };
    public Option<int> TestSubset { get; } = new("--test-subset") { Description = "Use only the first N test images (0: all).", DefaultValueFactory = _ => defaultTestSubset };
    public Option<int> Validation { get; } = new("--validation") { Description = "Hold out N training images as the evaluation set (the paper: 5000)." };
    public Option<string?> Device { get; } = CommonOptions.Device();

    public void AddTo(Command command)
    {
        foreach (var option in new Option[]
                 {
                     Data, DataPath, Epochs, Iterations, Batch, Schedule, LearningRate, Milestones, WarmupIterations,
                     WarmupRate, Momentum, WeightDecay, Nesterov, NoAugment, Normalize, Seed, TrainSubset, TestSubset,
                     Validation, Device,
                 })
            command.Options.Add(option);
    }

    public TrainOptions Options(ParseResult result, string model) => new()
    {
        Model = model,
        Epochs = result.GetValue(Epochs),
        Iterations = result.GetValue(Iterations),
        BatchSize = result.GetValue(Batch),
        Schedule = result.GetValue(Schedule)!,
        LearningRate = result.GetValue(LearningRate),
        Milestones = result.GetValue(Milestones) is { Length: > 0 } milestones ? milestones : null,
        WarmupIterations = result.GetValue(WarmupIterations),
        WarmupRate = result.GetValue(WarmupRate),
        Momentum = result.GetValue(Momentum),
        WeightDecay = result.GetValue(WeightDecay),
        Nesterov = result.GetValue(Nesterov),
        Augment = !result.GetValue(NoAugment),
        Normalize = result.GetValue(Normalize)!,
        Seed = result.GetValue(Seed),
    };

    public (ImageDataset Train, ImageDataset Test) LoadData(ParseResult result) =>
        DataSources.Load(result.GetValue(Data)!, result.GetValue(DataPath), result.GetValue(TrainSubset),
            result.GetValue(TestSubset), result.GetValue(Validation), result.GetValue(Seed));
}
