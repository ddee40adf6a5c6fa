// The options shared by `train` and `degradation`, turned into TrainOptions and loaded data. The learning rate and
// weight decay default by optimizer: SGD this command's rate and 1e-4, Adam and AdamW PyTorch's defaults.
using System.CommandLine;
using Engine.Bench.Training;
using Engine.Core.Data;
using Engine.Models.Training;

namespace Engine.Bench.Commands;

internal sealed class TrainOptionsBinder(int defaultEpochs = 5, int defaultTrainSubset = 0, int defaultTestSubset = 0,
    int defaultBatch = 128, double defaultLearningRate = 0.1, bool defaultZeroInitResidual = false)
{
    public Option<string> Data { get; } = new("--data") { Description = $"Dataset: {string.Join(", ", DataSources.Kinds)}.", DefaultValueFactory = _ => "fashion-mnist" };
    public Option<string?> DataPath { get; } = new("--data-path") { Description = "Folder of the dataset files (Fashion-MNIST defaults to Debian's dataset-fashion-mnist)." };
    public Option<int> Epochs { get; } = new("--epochs") { Description = "Epochs to train.", DefaultValueFactory = _ => defaultEpochs };
    public Option<int?> Iterations { get; } = new("--iters") { Description = "Iterations to train (instead of epochs)." };
    public Option<int> Batch { get; } = new("--batch") { Description = "Batch size.", DefaultValueFactory = _ => defaultBatch };
    public Option<string> Schedule { get; } = new("--schedule") { Description = "multistep, cosine or constant.", DefaultValueFactory = _ => "multistep" };
    public Option<string> Optimizer { get; } = new("--optimizer") { Description = "sgd, adam or adamw (PyTorch's semantics).", DefaultValueFactory = _ => "sgd" };
    public Option<double?> LearningRate { get; } = new("--lr") { Description = $"Base learning rate (default: {defaultLearningRate} with sgd, 0.001 with adam and adamw)." };
    public Option<int[]?> Milestones { get; } = new("--milestones") { Description = "Iterations where multistep divides the rate by 10 (default: 50% and 75%; the paper: 32000 48000).", AllowMultipleArgumentsPerToken = true };
    public Option<int> WarmupIterations { get; } = new("--warmup-iters") { Description = "Iterations at --warmup-lr first (the paper's ResNet-110: 400 at 0.01)." };
    public Option<double> WarmupRate { get; } = new("--warmup-lr") { Description = "Warm-up learning rate.", DefaultValueFactory = _ => 0.01 };
    public Option<double> Momentum { get; } = new("--momentum") { Description = "SGD's momentum.", DefaultValueFactory = _ => 0.9 };
    public Option<double?> WeightDecay { get; } = new("--wd") { Description = "Weight decay: L2 with sgd and adam, decoupled with adamw (default: 1e-4 with sgd, 0 with adam, 0.01 with adamw)." };
    public Option<bool> Nesterov { get; } = new("--nesterov") { Description = "SGD's Nesterov momentum." };
    public Option<double[]> Betas { get; } = new("--betas") { Description = "Adam's and AdamW's beta1 beta2.", DefaultValueFactory = _ => [0.9, 0.999], AllowMultipleArgumentsPerToken = true };
    public Option<double> Epsilon { get; } = new("--eps") { Description = "Adam's and AdamW's epsilon.", DefaultValueFactory = _ => 1e-8 };
    public Option<bool> Amsgrad { get; } = new("--amsgrad") { Description = "Adam's and AdamW's AMSGrad variant." };
    public Option<bool> ZeroInitResidual { get; } = new("--zero-init-residual") { Description = $"Start each residual block's last batch-norm gamma at 0 (torchvision's zero_init_residual); residual networks only (default: {defaultZeroInitResidual.ToString().ToLowerInvariant()}; --zero-init-residual false turns it off).", DefaultValueFactory = _ => defaultZeroInitResidual };
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
                     Data, DataPath, Epochs, Iterations, Batch, Schedule, Optimizer, LearningRate, Milestones,
                     WarmupIterations, WarmupRate, Momentum, WeightDecay, Nesterov, Betas, Epsilon, Amsgrad,
                     ZeroInitResidual, NoAugment, Normalize, Seed, TrainSubset, TestSubset, Validation, Device,
                 })
            command.Options.Add(option);
    }

    public TrainOptions Options(ParseResult result, string model)
    {
        string optimizer = result.GetValue(Optimizer)!;
        var (learningRate, weightDecay) = TrainOptions.DefaultsFor(optimizer);
        if (optimizer == "sgd") learningRate = defaultLearningRate;
        double[] betas = result.GetValue(Betas)!;
        if (betas.Length != 2)
            throw new ArgumentException($"--betas takes two values (beta1 beta2), got {betas.Length}.");
        return new TrainOptions
        {
            Model = model,
            Epochs = result.GetValue(Epochs),
            Iterations = result.GetValue(Iterations),
            BatchSize = result.GetValue(Batch),
            Schedule = result.GetValue(Schedule)!,
            Optimizer = optimizer,
            LearningRate = result.GetValue(LearningRate) ?? learningRate,
            Milestones = result.GetValue(Milestones) is { Length: > 0 } milestones ? milestones : null,
            WarmupIterations = result.GetValue(WarmupIterations),
            WarmupRate = result.GetValue(WarmupRate),
            Momentum = result.GetValue(Momentum),
            WeightDecay = result.GetValue(WeightDecay) ?? weightDecay,
            Nesterov = result.GetValue(Nesterov),
            Beta1 = betas[0],
            Beta2 = betas[1],
            Epsilon = result.GetValue(Epsilon),
            Amsgrad = result.GetValue(Amsgrad),
            ZeroInitResidual = result.GetValue(ZeroInitResidual),
            Augment = !result.GetValue(NoAugment),
            Normalize = result.GetValue(Normalize)!,
            Seed = result.GetValue(Seed),
        };
    }

    public (ImageDataset Train, ImageDataset Test) LoadData(ParseResult result) =>
        DataSources.Load(result.GetValue(Data)!, result.GetValue(DataPath), result.GetValue(TrainSubset),
            result.GetValue(TestSubset), result.GetValue(Validation), result.GetValue(Seed));
}
