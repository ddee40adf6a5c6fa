// Trainer: trains a ResNet on an image dataset with SGD and a learning-rate schedule, evaluates it on the test set
// after every epoch, and checkpoints atomically after every epoch (model state, momentum buffers, iteration and
// history in one safetensors file), so that Resume continues to bit-identical weights: batches depend only on
// (seed, epoch) and every kernel is deterministic.
//
// Training error is measured on the augmented training batches as they are trained on (train mode), as in the
// paper's curves; test error in eval mode.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Data;
using Engine.Core.Optim;
using Engine.Core.Serialization;

namespace Engine.Models.Training;

public sealed record TrainOptions
{
    public required string Model { get; init; }
    public int Epochs { get; init; } = 10;

    /// <summary>Stop after this many iterations instead of after <see cref="Epochs"/>.</summary>
    public int? Iterations { get; init; }

    public int BatchSize { get; init; } = 128;
    public string Schedule { get; init; } = "multistep";
    public double LearningRate { get; init; } = 0.1;
    public IReadOnlyList<int>? Milestones { get; init; }
    public int WarmupIterations { get; init; }
    public double WarmupRate { get; init; } = 0.01;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 1e-4;
    public bool Nesterov { get; init; }
    public int Seed { get; init; }
    public bool Augment { get; init; } = true;

    /// <summary>"channel" (per-channel mean and std) or "pixel" (the paper's per-pixel mean subtraction).</summary>
    public string Normalize { get; init; } = "channel";

    public int EvaluationBatchSize { get; init; } = 500;
}

public sealed record EpochRecord(int Epoch, int Iteration, double LearningRate, double TrainLoss, double TrainError,
    double TestLoss, double TestError, double ImagesPerSecond, double Seconds);

public sealed record TrainProgress(int Epoch, int Iteration, int TotalIterations, double Loss, double Accuracy,
    double ImagesPerSecond);

public sealed class Trainer : IDisposable
{
    public const string CheckpointFile = "checkpoint.safetensors";

    private readonly TrainOptions _options;
    private readonly ImageDataset _train, _test;
    private readonly Sgd<float> _sgd;
    private readonly LearningRateSchedule _schedule;
    private readonly BatchLoader _trainLoader;
    private readonly Normalization _normalization;
    private readonly string[] _parameterNames;
    private readonly List<EpochRecord> _history = [];
    private int _iteration;

    public Trainer(Device device, TrainOptions options, ImageDataset train, ImageDataset test)
    {
        _options = options;
        _train = train;
        _test = test;
        if (train.Channels != test.Channels || train.Height != test.Height || train.Width != test.Width ||
            train.Classes != test.Classes)
            throw new ArgumentException(
                $"Training data ({train.Channels}x{train.Height}x{train.Width}, {train.Classes} classes, {train.Source}) " +
                $"and test data ({test.Channels}x{test.Height}x{test.Width}, {test.Classes} classes, {test.Source}) differ.");
        Model = ModelRegistry.Create<float>(options.Model, device, options.Seed, train.Classes,
            inputChannels: train.Channels);
        _parameterNames = Model.NamedParameters().Select(p => p.Name).ToArray();
        _sgd = new Sgd<float>(Model.Parameters(), options.LearningRate, options.Momentum, 0, options.WeightDecay,
            options.Nesterov);
        _normalization = options.Normalize switch
        {
            "channel" => Normalization.PerChannel(train),
            "pixel" => Normalization.PerPixelMean(train),
            _ => throw new ArgumentException($"Unknown normalisation '{options.Normalize}': channel or pixel."),
        };
        _trainLoader = new BatchLoader(train, options.BatchSize, shuffle: true, options.Seed, _normalization,
            options.Augment ? new Augmentation() : Augmentation.None);
        TotalIterations = options.Iterations ?? checked(options.Epochs * _trainLoader.BatchesPerEpoch);
        if (TotalIterations < 1) throw new ArgumentException("Nothing to train: epochs and iterations are zero.");
        _schedule = LearningRateSchedule.Create(options.Schedule, options.LearningRate, TotalIterations,
            options.Milestones, options.WarmupIterations, options.WarmupRate);
    }

    public ResNet<float> Model { get; }
    public int TotalIterations { get; }
    public int Iteration => _iteration;
    public IReadOnlyList<EpochRecord> History => _history;
    public bool Finished => _iteration >= TotalIterations;

    /// <summary>Loads a checkpoint written by <see cref="Save"/> for the same model and options.</summary>
    public void Resume(string checkpointPath)
    {
        var header = SafeTensors.ReadHeader(checkpointPath);
        var metadata = header.Metadata;
        string saved = metadata.GetValueOrDefault("options") ?? "";
        if (saved != OptionsFingerprint())
            throw new InvalidDataException(
                $"Checkpoint '{checkpointPath}' was written with other options:\n  saved: {saved}\n  now:   {OptionsFingerprint()}");
        SafeTensors.Load(Model.StateDict().Concat(_sgd.State(_parameterNames)), checkpointPath);
        _iteration = int.Parse(metadata["iteration"], CultureInfo.InvariantCulture);
        _history.Clear();
        _history.AddRange(JsonSerializer.Deserialize<List<EpochRecord>>(metadata["history"]) ?? []);
    }

    /// <summary>Writes the checkpoint atomically.</summary>
    public void Save(string checkpointPath) =>
        SafeTensors.Save(Model.StateDict().Concat(_sgd.State(_parameterNames)), checkpointPath,
            new Dictionary<string, string>
            {
                ["model"] = _options.Model,
                ["iteration"] = _iteration.ToString(CultureInfo.InvariantCulture),
                ["options"] = OptionsFingerprint(),
                ["history"] = JsonSerializer.Serialize(_history),
            });

    private string OptionsFingerprint() => JsonSerializer.Serialize(_options with { Epochs = 0 }) +
                                           $" data={_train.Count}/{_test.Count}";

    /// <summary>Trains one epoch (or what remains of the iteration budget), evaluates, and returns its record.</summary>
    public EpochRecord RunEpoch(IProgress<TrainProgress>? progress = null)
    {
        if (Finished) throw new InvalidOperationException("Training is already complete.");
        int epoch = _history.Count;
        var device = Model.Conv1.Weight.Device;
        Model.Train();
        double lossSum = 0;
        long correct = 0, seen = 0;
        var clock = Stopwatch.StartNew();
        foreach (var batch in _trainLoader.Epoch(epoch))
        {
            if (Finished) break;
            _sgd.LearningRate = _schedule.RateAt(_iteration);
            using (TensorScope.Begin())
            {
                var x = Tensor.FromArray(batch.Images, [batch.Count, _train.Channels, _train.Height, _train.Width], device);
                var logits = Model.Forward(x);
                var loss = logits.CrossEntropy(batch.Labels);
                loss.Backward();
                _sgd.Step();
                _sgd.ZeroGrad();
                lossSum += loss.Item() * batch.Count;
                correct += logits.TopKCorrect(batch.Labels, 1);
                seen += batch.Count;
            }
            _iteration++;
            progress?.Report(new TrainProgress(epoch, _iteration, TotalIterations, lossSum / seen,
                (double)correct / seen, seen / clock.Elapsed.TotalSeconds));
        }
        double seconds = clock.Elapsed.TotalSeconds;
        var (testLoss, testError) = Evaluate(_test);
        var record = new EpochRecord(epoch, _iteration, _schedule.RateAt(Math.Max(0, _iteration - 1)),
            lossSum / seen, 1 - (double)correct / seen, testLoss, testError, seen / seconds, seconds);
        _history.Add(record);
        return record;
    }

    /// <summary>Mean cross-entropy and top-1 error of the model in eval mode.</summary>
    public (double Loss, double Error) Evaluate(ImageDataset data)
    {
        var device = Model.Conv1.Weight.Device;
        using var loader = new BatchLoader(data, Math.Min(_options.EvaluationBatchSize, data.Count), shuffle: false,
            _options.Seed, _normalization, Augmentation.None);
        Model.Eval();
        double lossSum = 0;
        long correct = 0;
        using (GradMode.NoGrad())
            foreach (var batch in loader.Epoch(0))
                using (TensorScope.Begin())
                {
                    var x = Tensor.FromArray(batch.Images, [batch.Count, data.Channels, data.Height, data.Width], device);
                    var logits = Model.Forward(x);
                    lossSum += logits.CrossEntropy(batch.Labels).Item() * batch.Count;
                    correct += logits.TopKCorrect(batch.Labels, 1);
                }
        Model.Train();
        return (lossSum / data.Count, 1 - (double)correct / data.Count);
    }

    public void Dispose()
    {
        _trainLoader.Dispose();
        _sgd.Dispose();
        Model.Dispose();
    }
}
