// Trainer: trains a ResNet on an image dataset with SGD, Adam or AdamW and a learning-rate schedule, evaluates it on
// the test set after every epoch, and checkpoints atomically (model state, optimizer state, iteration, history and
// the sums of an epoch in progress in one safetensors file), after every epoch or when a run is cancelled between
// two steps, so that Resume continues to bit-identical weights and history: batches depend only on (seed, epoch)
// and every kernel is deterministic. Resume trusts no field of a checkpoint it has not checked against the run.
//
// Training error is measured on the augmented training batches as they are trained on (train mode), as in the
// paper's curves; test error in eval mode.
//
// Data-parallel (an ICommunicator of several ranks, docs/distributed.md): the ranks check at construction that they
// run the same options, model and data, and take rank 0's initial state; every rank trains on its slice of each
// batch (BatchLoader's shard), the gradients are averaged in buckets (GradientBuckets, during backward where the
// communicator allows) before the optimizer step, a step's loss and accuracy are summed over the ranks, and
// evaluation is split between the ranks. Batch-norm keeps
// per-rank statistics (PyTorch DDP) unless TrainOptions.SyncBatchNorm pools them over the ranks; without it the
// running statistics of rank 0 are broadcast to every rank before evaluating (DDP's broadcast_buffers).
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Data;
using Engine.Core.Distributed;
using Engine.Core.Modules;
using Engine.Core.Optim;
using Engine.Core.Serialization;

namespace Engine.Models.Training;

/// <summary>Everything that defines a training run; a checkpoint resumes only under the same options.</summary>
public sealed record TrainOptions
{
    /// <summary>The registry name of the model, e.g. "resnet20-a".</summary>
    public required string Model { get; init; }

    /// <summary>Passes over the training set.</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Stop after this many iterations instead of after <see cref="Epochs"/>.</summary>
    public int? Iterations { get; init; }

    /// <summary>Images per training step.</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>The learning-rate schedule: "multistep", "cosine" or "constant" (see
    /// <see cref="LearningRateSchedule.Create"/>).</summary>
    public string Schedule { get; init; } = "multistep";

    /// <summary>"sgd" (torch.optim.SGD), "adam" (torch.optim.Adam) or "adamw" (torch.optim.AdamW).</summary>
    public string Optimizer { get; init; } = "sgd";

    /// <summary>The base learning rate of the schedule (SGD's usual 0.1 by default; see
    /// <see cref="DefaultsFor"/>).</summary>
    public double LearningRate { get; init; } = 0.1;

    /// <summary>The multistep schedule's milestones (iterations); null: at 50 % and 75 % of the run.</summary>
    public IReadOnlyList<int>? Milestones { get; init; }

    /// <summary>Iterations run at <see cref="WarmupRate"/> before the schedule starts.</summary>
    public int WarmupIterations { get; init; }

    /// <summary>The learning rate during the warm-up.</summary>
    public double WarmupRate { get; init; } = 0.01;

    /// <summary>SGD's momentum.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>SGD's and Adam's L2 weight decay, AdamW's decoupled decay.</summary>
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>SGD's Nesterov momentum.</summary>
    public bool Nesterov { get; init; }

    /// <summary>Adam's and AdamW's decay of the first moment.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Adam's and AdamW's decay of the second moment.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Adam's and AdamW's term added to the denominator.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Adam's and AdamW's AMSGrad variant.</summary>
    public bool Amsgrad { get; init; }

    /// <summary>Seeds the initial weights, the shuffling and the augmentation.</summary>
    public int Seed { get; init; }

    /// <summary>Random crops with padding and horizontal flips on the training batches.</summary>
    public bool Augment { get; init; } = true;

    /// <summary>"channel" (per-channel mean and std) or "pixel" (the paper's per-pixel mean subtraction).</summary>
    public string Normalize { get; init; } = "channel";

    /// <summary>Start every residual block's last batch-norm gamma at 0, so each block starts as the identity
    /// (torchvision's zero_init_residual, Goyal et al. 2017); residual networks only.</summary>
    public bool ZeroInitResidual { get; init; }

    /// <summary>Images per batch when evaluating (eval mode).</summary>
    public int EvaluationBatchSize { get; init; } = 500;

    /// <summary>In a data-parallel run, batch-norm statistics pooled over every rank's slice of the batch (as one
    /// process with the whole batch); off (default), each rank's own slice, as PyTorch DDP.</summary>
    public bool SyncBatchNorm { get; init; }

    /// <summary>The optimizers <see cref="Optimizer"/> names.</summary>
    public static IReadOnlyList<string> Optimizers { get; } = ["sgd", "adam", "adamw"];

    /// <summary>The default learning rate and weight decay of an optimizer: SGD the ResNet paper's 0.1 and 1e-4,
    /// Adam and AdamW PyTorch's (1e-3 with no decay, 1e-3 with decoupled decay 0.01).</summary>
    public static (double LearningRate, double WeightDecay) DefaultsFor(string optimizer) => optimizer switch
    {
        "sgd" => (0.1, 1e-4),
        "adam" => (1e-3, 0),
        "adamw" => (1e-3, 0.01),
        _ => throw new ArgumentException(
            $"Unknown optimizer '{optimizer}': {string.Join(", ", Optimizers)}."),
    };
}

/// <summary>One finished epoch, as written to the history CSV and the checkpoint.</summary>
/// <param name="Epoch">The epoch number, from 1.</param>
/// <param name="Iteration">Iterations completed at its end.</param>
/// <param name="LearningRate">The rate of its last iteration.</param>
/// <param name="TrainLoss">Mean cross-entropy over its training batches (train mode, augmented).</param>
/// <param name="TrainError">Top-1 error over its training batches, 0–1.</param>
/// <param name="TestLoss">Mean cross-entropy on the test set (eval mode).</param>
/// <param name="TestError">Top-1 error on the test set, 0–1.</param>
/// <param name="ImagesPerSecond">Training throughput.</param>
/// <param name="Seconds">Wall time of the epoch, evaluation included.</param>
public sealed record EpochRecord(int Epoch, int Iteration, double LearningRate, double TrainLoss, double TrainError,
    double TestLoss, double TestError, double ImagesPerSecond, double Seconds);

/// <summary>A progress report after a training step.</summary>
/// <param name="Epoch">The current epoch, from 1.</param>
/// <param name="Iteration">Iterations completed.</param>
/// <param name="TotalIterations">Iterations in the whole run.</param>
/// <param name="Loss">The step's loss.</param>
/// <param name="Accuracy">The step's top-1 accuracy on its batch, 0–1.</param>
/// <param name="ImagesPerSecond">Recent training throughput.</param>
public sealed record TrainProgress(int Epoch, int Iteration, int TotalIterations, double Loss, double Accuracy,
    double ImagesPerSecond);

/// <summary>Trains a registry ResNet on an image dataset with the chosen optimizer and schedule, evaluates after
/// every epoch and checkpoints atomically so that <see cref="Resume"/> continues to bit-identical weights.</summary>
public sealed class Trainer : IDisposable
{
    /// <summary>The checkpoint's file name inside an output folder.</summary>
    public const string CheckpointFile = "checkpoint.safetensors";

    private readonly TrainOptions _options;
    private readonly ImageDataset _train, _test;
    private readonly Optimizer<float> _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly BatchLoader _trainLoader;
    private readonly Normalization _normalization;
    private readonly string[] _parameterNames;
    private readonly List<EpochRecord> _history = [];
    private readonly string _dataFingerprint;
    private readonly ICommunicator _communicator;
    private readonly GradientBuckets<float> _gradients;
    private readonly List<double> _allReduceSeconds = [];
    private readonly List<double> _allReduceHiddenSeconds = [];
    private int _iteration;
    private EpochProgress _epochProgress = EpochProgress.None;

    /// <summary>The sums of the epoch in progress over its steps so far (all zero at an epoch's start), saved in a
    /// checkpoint taken mid-epoch so that the resumed epoch's record is the same as an uninterrupted one's.</summary>
    /// <param name="LossSum">Σ loss × batch size.</param>
    /// <param name="Correct">Images classified correctly.</param>
    /// <param name="Seen">Images trained on.</param>
    /// <param name="Seconds">Training time spent on these steps.</param>
    private sealed record EpochProgress(double LossSum, long Correct, long Seen, double Seconds)
    {
        public static EpochProgress None { get; } = new(0, 0, 0, 0);
    }

    /// <summary>History numbers may be NaN or infinite (a diverged run): written as named literals.</summary>
    private static readonly JsonSerializerOptions HistoryJson =
        new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Builds the model (seeded), the optimizer, the schedule and the loaders for a new run; in a
    /// data-parallel job, checks that every rank has the same options, model and data and takes rank 0's initial
    /// state (every rank constructs its trainer at the same point).</summary>
    /// <param name="device">Where the model lives.</param>
    /// <param name="options">The run.</param>
    /// <param name="train">Training images.</param>
    /// <param name="test">Evaluation images.</param>
    /// <param name="communicator">The data-parallel job (not owned); null: a job of one.</param>
    /// <param name="overlapGradients">In a data-parallel job, average each gradient bucket while backward goes on,
    /// where the communicator allows (<see cref="GradientBuckets{T}"/>); false: after backward. The weights are the
    /// same bits either way.</param>
    /// <param name="bucketBytes">Most bytes of one gradient bucket (PyTorch DDP's bucket_cap_mb): smaller buckets
    /// start sooner during backward, larger ones cost fewer collectives.</param>
    /// <exception cref="ArgumentException">The datasets' image shapes or class counts differ, or an option is
    /// invalid (unknown model, optimizer or schedule, inapplicable optimizer options, zero-init-residual on a plain
    /// network, a batch that the ranks cannot share equally).</exception>
    /// <exception cref="InvalidOperationException">The ranks differ in options, model or data (the message names
    /// the ranks).</exception>
    public Trainer(Device device, TrainOptions options, ImageDataset train, ImageDataset test,
        ICommunicator? communicator = null, bool overlapGradients = true,
        long bucketBytes = GradientBuckets<float>.DefaultBucketBytes)
    {
        _options = options;
        _communicator = communicator ?? new SingleProcessCommunicator();
        int ranks = _communicator.Size;
        _train = train;
        _test = test;
        if (train.Channels != test.Channels || train.Height != test.Height || train.Width != test.Width ||
            train.Classes != test.Classes)
            throw new ArgumentException(
                $"Training data ({train.Channels}x{train.Height}x{train.Width}, {train.Classes} classes, {train.Source}) " +
                $"and test data ({test.Channels}x{test.Height}x{test.Width}, {test.Classes} classes, {test.Source}) differ.");
        if (options.BatchSize < 1 || options.EvaluationBatchSize < 1)
            throw new ArgumentException($"Batch sizes must be at least 1 (training {options.BatchSize}, evaluation " +
                                        $"{options.EvaluationBatchSize}).");
        if (options.Milestones?.Where(m => m < 0).ToArray() is [var negative, ..])
            throw new ArgumentException($"Milestones are iterations and must not be negative (got {negative}).");
        if (options.Iterations is < 0 || options.Epochs < 0)
            throw new ArgumentException($"Epochs ({options.Epochs}) and iterations ({options.Iterations}) must not be negative.");
        if (!(options.WarmupRate >= 0) || options.WarmupIterations < 0)
            throw new ArgumentException(
                $"Warm-up rate ({options.WarmupRate}) and iterations ({options.WarmupIterations}) must not be negative.");
        TrainOptions.DefaultsFor(options.Optimizer); // an unknown name fails before any work
        if (options.Optimizer == "sgd" && options.Amsgrad)
            throw new ArgumentException("AMSGrad applies to adam and adamw, not to sgd.");
        if (options.Optimizer != "sgd" && options.Nesterov)
            throw new ArgumentException($"Nesterov momentum applies to sgd, not to {options.Optimizer}.");
        if (options.ZeroInitResidual && ModelRegistry.Parse(options.Model).IsPlain)
            throw new ArgumentException($"Zero-init-residual applies to residual networks, not to {options.Model} " +
                                        "(a plain network has no residual branch to zero).");
        _normalization = options.Normalize switch
        {
            "channel" => Normalization.PerChannel(train),
            "pixel" => Normalization.PerPixelMean(train),
            _ => throw new ArgumentException($"Unknown normalisation '{options.Normalize}': channel or pixel."),
        };
        if (options.BatchSize % ranks != 0)
            throw new ArgumentException(
                $"The batch size {options.BatchSize} is not a multiple of the world size {ranks}: every rank trains on " +
                $"an equal slice of each batch; choose a batch size divisible by {ranks}.");
        // A last batch of one image would give batch-norm a single value per channel in 1x1 stages: drop it. In a
        // data-parallel run, so is a last batch that the ranks cannot share in equal slices of two or more.
        int remainder = train.Count % options.BatchSize;
        bool dropLast = remainder == 1 || (ranks > 1 && remainder != 0 && (remainder % ranks != 0 || remainder / ranks < 2));
        _trainLoader = new BatchLoader(train, options.BatchSize, shuffle: true, options.Seed, _normalization,
            options.Augment ? new Augmentation() : Augmentation.None, dropLast, _communicator.Rank, ranks);
        long total = options.Iterations ?? (long)options.Epochs * _trainLoader.BatchesPerEpoch;
        if (total < 1) throw new ArgumentException("Nothing to train: epochs and iterations are zero.");
        if (total > int.MaxValue)
            throw new ArgumentException($"{options.Epochs} epochs of {_trainLoader.BatchesPerEpoch} batches exceed " +
                                        $"{int.MaxValue} iterations.");
        TotalIterations = (int)total;
        _schedule = LearningRateSchedule.Create(options.Schedule, options.LearningRate, TotalIterations,
            options.Milestones, options.WarmupIterations, options.WarmupRate);
        _dataFingerprint = DataFingerprint(train, test);
        Model = ModelRegistry.Create<float>(options.Model, device, options.Seed, train.Classes,
            zeroInitResidual: options.ZeroInitResidual, inputChannels: train.Channels);
        _parameterNames = Model.NamedParameters().Select(p => p.Name).ToArray();
        try
        {
            _optimizer = CreateOptimizer(options, Model.Parameters());
            _gradients = new GradientBuckets<float>(_communicator, Model.NamedParameters(), bucketBytes,
                overlapGradients);
            if (ranks > 1) JoinJob();
        }
        catch
        {
            _gradients?.Dispose();
            _optimizer?.Dispose();
            Model.Dispose();
            _trainLoader.Dispose();
            throw;
        }
    }

    /// <summary>The start of a data-parallel run: the ranks compare hashes of their options, model (parameter names
    /// and shapes) and data, then take rank 0's parameters and buffers; with synchronised batch-norm every
    /// batch-norm layer is given the communicator.</summary>
    private void JoinJob()
    {
        var device = Model.Conv1.Weight.Device;
        (string What, string Text)[] identity =
        [
            ("options", JsonSerializer.Serialize(_options)),
            ("model", string.Join(";", Model.StateDict().Select(entry => $"{entry.Name}{entry.Tensor.Shape}"))),
            ("data", _dataFingerprint),
        ];
        // Each 64-bit hash as four 16-bit parts: exact in a double, so the gather carries it bit for bit.
        var own = identity.SelectMany(entry => Enumerable.Range(0, 4)
            .Select(part => (double)((Fnv1a(entry.Text) >> (16 * part)) & 0xFFFF))).ToArray();
        var ranks = Gather.ToAll<double>(_communicator, own, device);
        var differences = new List<string>();
        for (int i = 0; i < identity.Length; i++)
        {
            var differing = Enumerable.Range(1, ranks.Length - 1)
                .Where(rank => !ranks[rank].AsSpan(4 * i, 4).SequenceEqual(ranks[0].AsSpan(4 * i, 4))).ToList();
            if (differing.Count > 0)
                differences.Add($"rank{(differing.Count > 1 ? "s" : "")} {string.Join(", ", differing)} " +
                                $"ha{(differing.Count > 1 ? "ve" : "s")} other {identity[i].What} than rank 0");
        }
        if (differences.Count > 0)
            throw new InvalidOperationException(
                $"The {ranks.Length} ranks of this job disagree: {string.Join("; ", differences)}; every rank must run " +
                "the same command on the same data.");
        using (GradMode.NoGrad())
            foreach (var (_, tensor) in Model.StateDict())
                _communicator.Broadcast(tensor);
        if (_options.SyncBatchNorm)
            foreach (var layer in Descendants(Model).OfType<BatchNorm2d<float>>())
                layer.SyncStatistics = _communicator;
    }

    /// <summary>Every module under <paramref name="module"/>, itself included.</summary>
    private static IEnumerable<Module<float>> Descendants(Module<float> module) =>
        module.NamedChildren().SelectMany(child => Descendants(child.Module)).Prepend(module);

    /// <summary>64-bit FNV-1a of a string's UTF-16 code units.</summary>
    private static ulong Fnv1a(string text)
    {
        ulong hash = 14695981039346656037;
        foreach (char c in text) hash = (hash ^ c) * 1099511628211;
        return hash;
    }

    /// <summary>The optimizer <paramref name="options"/> name, with its hyper-parameters.</summary>
    private static Optimizer<float> CreateOptimizer(TrainOptions options, IEnumerable<Tensor<float>> parameters) =>
        options.Optimizer switch
        {
            "sgd" => new Sgd<float>(parameters, options.LearningRate, options.Momentum, 0, options.WeightDecay,
                options.Nesterov),
            "adam" => new Adam<float>(parameters, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon,
                options.WeightDecay, options.Amsgrad),
            // "adamw": the name was checked before the model was built.
            _ => new AdamW<float>(parameters, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon,
                options.WeightDecay, options.Amsgrad),
        };

    /// <summary>The network being trained.</summary>
    public ResNet<float> Model { get; }

    /// <summary>The length of the run in iterations (from the epochs or the iteration limit).</summary>
    public int TotalIterations { get; }

    /// <summary>Iterations completed so far.</summary>
    public int Iteration => _iteration;

    /// <summary>The finished epochs.</summary>
    public IReadOnlyList<EpochRecord> History => _history;

    /// <summary>The data-parallel job this trainer is a rank of (a job of one by default).</summary>
    public ICommunicator Communicator => _communicator;

    /// <summary>Bytes of gradient each rank all-reduces per step.</summary>
    public long GradientBytesPerStep => _gradients.BytesPerStep;

    /// <summary>Gradient buckets reduced per step.</summary>
    public int GradientBuckets => _gradients.Count;

    /// <summary>Wall time each step waited for its gradient all-reduce after backward in this process so far, in
    /// seconds (the exposed part).</summary>
    public IReadOnlyList<double> AllReduceSeconds => _allReduceSeconds;

    /// <summary>Time each step's gradient all-reduce ran during backward in this process so far, in seconds (the part
    /// hidden behind backward; 0 without overlap).</summary>
    public IReadOnlyList<double> AllReduceHiddenSeconds => _allReduceHiddenSeconds;

    /// <summary>Why the gradient all-reduce does not overlap backward, or null when it does.</summary>
    public string? GradientOverlapUnavailableReason => _gradients.OverlapUnavailableReason;

    /// <summary>True once <see cref="TotalIterations"/> have run.</summary>
    public bool Finished => _iteration >= TotalIterations;

    /// <summary>Loads a checkpoint written by <see cref="Save"/> for the same model, options and data.</summary>
    /// <exception cref="InvalidDataException">The checkpoint belongs to another run, or a field it holds is
    /// missing, unreadable or impossible for this run (the message names the field and its value); nothing is
    /// loaded then.</exception>
    public void Resume(string checkpointPath)
    {
        var metadata = SafeTensors.ReadHeader(checkpointPath).Metadata;
        string savedRanks = metadata.GetValueOrDefault("world_size") ?? "1";
        if (savedRanks != _communicator.Size.ToString(CultureInfo.InvariantCulture))
            throw new InvalidDataException(
                $"Checkpoint '{checkpointPath}' was written by a run of {savedRanks} rank(s) and this run has " +
                $"{_communicator.Size}: resume it with {savedRanks} rank(s) (each rank's slice of every batch, and so " +
                "the batch-norm statistics, depend on the world size); its weights load in a run of any size.");
        var differences = new List<string>();
        foreach (var (key, now) in Identity())
        {
            string saved = metadata.GetValueOrDefault(key) ?? "(missing)";
            if (saved != now) differences.AddRange(Differences(key, saved, now));
        }
        if (differences.Count > 0)
            throw new InvalidDataException(
                $"Checkpoint '{checkpointPath}' belongs to another run: {string.Join("; ", differences.Take(6))}" +
                (differences.Count > 6 ? $"; and {differences.Count - 6} more" : "") + ".");
        var (iteration, history, epochProgress) = ReadPosition(metadata, checkpointPath);
        SafeTensors.Load(Model.StateDict().Concat(_optimizer.State(_parameterNames)), checkpointPath);
        _iteration = iteration;
        _history.Clear();
        _history.AddRange(history);
        _epochProgress = epochProgress;
    }

    /// <summary>Reads a checkpoint's iteration, history and epoch in progress, and checks them against this run:
    /// 0 ≤ iteration ≤ <see cref="TotalIterations"/>, one history record per epoch that iteration completes, each
    /// with its own epoch number and final iteration and with errors in [0, 1], and the sums of exactly the steps
    /// the epoch in progress has taken (a checkpoint without them predates mid-epoch checkpoints: none).</summary>
    private (int Iteration, List<EpochRecord> History, EpochProgress EpochProgress) ReadPosition(
        IReadOnlyDictionary<string, string> metadata, string checkpointPath)
    {
        InvalidDataException Invalid(string what, Exception? inner = null) =>
            new($"Checkpoint '{checkpointPath}': {what}.", inner);
        string Field(string key) => metadata.TryGetValue(key, out string? text) ? text : throw Invalid($"{key} is missing");
        T Json<T>(string key, JsonSerializerOptions? options = null) where T : class
        {
            try
            {
                return JsonSerializer.Deserialize<T>(Field(key), options) ?? throw Invalid($"{key} is null");
            }
            catch (JsonException e)
            {
                throw Invalid($"{key} '{Shorten(Field(key))}' is unreadable ({e.Message})", e);
            }
        }

        if (!int.TryParse(Field("iteration"), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture,
                out int iteration))
            throw Invalid($"iteration '{Shorten(Field("iteration"))}' is not an integer");
        if (iteration < 0 || iteration > TotalIterations)
            throw Invalid($"iteration {iteration} is outside 0–{TotalIterations}, the length of this run");
        var history = Json<List<EpochRecord>>("history", HistoryJson);
        int batches = _trainLoader.BatchesPerEpoch;
        int completed = iteration == TotalIterations
            ? (int)(((long)TotalIterations + batches - 1) / batches)
            : iteration / batches;
        if (history.Count != completed)
            throw Invalid($"history holds {history.Count} epochs, but iteration {iteration} completes {completed} " +
                          $"(epochs of {batches} iterations)");
        for (int epoch = 0; epoch < history.Count; epoch++)
        {
            var record = history[epoch] ?? throw Invalid($"history[{epoch}] is null");
            int end = (int)Math.Min((long)(epoch + 1) * batches, TotalIterations);
            if (record.Epoch != epoch) throw Invalid($"history[{epoch}].Epoch is {record.Epoch}, not {epoch}");
            if (record.Iteration != end)
                throw Invalid($"history[{epoch}].Iteration is {record.Iteration}, not {end} (the end of epoch {epoch})");
            foreach (var (field, value, upper) in new[]
                     {
                         (nameof(EpochRecord.TrainError), record.TrainError, 1.0),
                         (nameof(EpochRecord.TestError), record.TestError, 1.0),
                         (nameof(EpochRecord.TrainLoss), record.TrainLoss, double.PositiveInfinity),
                         (nameof(EpochRecord.TestLoss), record.TestLoss, double.PositiveInfinity),
                         (nameof(EpochRecord.LearningRate), record.LearningRate, double.PositiveInfinity),
                         (nameof(EpochRecord.ImagesPerSecond), record.ImagesPerSecond, double.PositiveInfinity),
                         (nameof(EpochRecord.Seconds), record.Seconds, double.PositiveInfinity),
                     })
                if (!(value >= 0 && value <= upper))
                    throw Invalid($"history[{epoch}].{field} is {value.ToString(CultureInfo.InvariantCulture)}, " +
                                  $"outside 0–{upper.ToString(CultureInfo.InvariantCulture)}");
        }

        var progress = metadata.ContainsKey("epoch_progress")
            ? Json<EpochProgress>("epoch_progress")
            : EpochProgress.None;
        long steps = iteration == TotalIterations ? 0 : iteration - (long)completed * batches;
        long seen = steps * _options.BatchSize; // only an epoch's last batch can be short, and it ends the epoch
        if (progress.Seen != seen)
            throw Invalid($"epoch_progress.Seen is {progress.Seen}, but iteration {iteration} is {steps} steps of " +
                          $"{_options.BatchSize} images into epoch {completed}");
        if (progress.Correct < 0 || progress.Correct > seen)
            throw Invalid($"epoch_progress.Correct is {progress.Correct}, outside 0–{seen}");
        if (!(progress.LossSum >= 0 && double.IsFinite(progress.LossSum)) || (seen == 0 && progress.LossSum != 0))
            throw Invalid($"epoch_progress.LossSum is {progress.LossSum.ToString(CultureInfo.InvariantCulture)}");
        if (!(progress.Seconds >= 0 && double.IsFinite(progress.Seconds)))
            throw Invalid($"epoch_progress.Seconds is {progress.Seconds.ToString(CultureInfo.InvariantCulture)}");
        return (iteration, history, progress);
    }

    /// <summary>A metadata value as quoted in a message: its first 60 characters.</summary>
    private static string Shorten(string text) => text.Length <= 60 ? text : text[..60] + "…";

    /// <summary>Writes the checkpoint atomically.</summary>
    /// <exception cref="InvalidOperationException">A parameter or buffer is not finite (nothing is written).</exception>
    public void Save(string checkpointPath)
    {
        if (NonFiniteTensors() is [_, ..] broken)
            throw Diverged("the weights are no longer finite, so no checkpoint was written", broken);
        var metadata = Identity().ToDictionary(entry => entry.Key, entry => entry.Value);
        metadata["iteration"] = _iteration.ToString(CultureInfo.InvariantCulture);
        metadata["history"] = JsonSerializer.Serialize(_history, HistoryJson);
        metadata["epoch_progress"] = JsonSerializer.Serialize(_epochProgress);
        metadata["world_size"] = _communicator.Size.ToString(CultureInfo.InvariantCulture);
        foreach (var (key, value) in Prediction.ModelInput.Describe(_train, _normalization)) metadata[key] = value;
        SafeTensors.Save(Model.StateDict().Concat(_optimizer.State(_parameterNames)), checkpointPath, metadata);
    }

    /// <summary>What a checkpoint must match to be resumed: the options, the resolved length of the run (the
    /// schedule depends on it) and the data.</summary>
    private IEnumerable<(string Key, string Value)> Identity() =>
    [
        ("options", JsonSerializer.Serialize(_options)),
        ("total_iterations", TotalIterations.ToString(CultureInfo.InvariantCulture)),
        ("data", _dataFingerprint),
    ];

    /// <summary>The option fields that differ (or the whole entry when it is not an options object). An option
    /// missing from the checkpoint (written before the option existed) matches its default value.</summary>
    private static IEnumerable<string> Differences(string key, string saved, string now)
    {
        if (key != "options") return [$"{key} {saved} → {now}"];
        try
        {
            using var before = JsonDocument.Parse(saved);
            using var after = JsonDocument.Parse(now);
            using var defaults = JsonDocument.Parse(JsonSerializer.Serialize(new TrainOptions { Model = "" }));
            string Saved(JsonProperty p) =>
                before.RootElement.TryGetProperty(p.Name, out var old) ? old.GetRawText()
                : defaults.RootElement.TryGetProperty(p.Name, out var byDefault) && p.Name != nameof(TrainOptions.Model)
                    ? byDefault.GetRawText() : "(missing)";
            return after.RootElement.EnumerateObject()
                .Where(p => Saved(p) != p.Value.GetRawText())
                .Select(p => $"{p.Name} {Saved(p)} → {p.Value.GetRawText()}")
                .ToList();
        }
        catch (JsonException)
        {
            return ["options unreadable"];
        }
    }

    /// <summary>Identifies the data: sizes, sources and a 64-bit FNV-1a hash of every label and pixel.</summary>
    private static string DataFingerprint(ImageDataset train, ImageDataset test)
    {
        ulong hash = 14695981039346656037;
        foreach (var data in new[] { train, test })
        {
            foreach (int label in data.Labels) hash = (hash ^ (uint)label) * 1099511628211;
            foreach (byte pixel in data.Pixels) hash = (hash ^ pixel) * 1099511628211;
        }
        return $"{train.Count}+{test.Count} images, hash {hash:x16}";
    }

    /// <summary>Trains one epoch (or what remains of it and of the iteration budget), evaluates, and returns its
    /// record.</summary>
    /// <param name="progress">Told after every step.</param>
    /// <param name="cancellationToken">Checked before every step: once it is cancelled, the step under way
    /// finishes and the method throws <see cref="OperationCanceledException"/>, leaving the trainer between two
    /// steps, ready to <see cref="Save"/> (a mid-epoch checkpoint) or to continue with another call. An epoch whose
    /// steps are all done is still evaluated and recorded. In a data-parallel job each rank's cancellation is
    /// gathered with the step's loss, and every rank stops after the step in which any rank was cancelled (so
    /// all stop at the same step).</param>
    public EpochRecord RunEpoch(IProgress<TrainProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        if (Finished) throw new InvalidOperationException("Training is already complete.");
        int epoch = _history.Count;
        var device = Model.Conv1.Weight.Device;
        Model.Train();
        var (lossSum, correct, seen, secondsBefore) = _epochProgress;
        var clock = Stopwatch.StartNew();
        // A resumed epoch skips the batches it has trained on (each batch depends only on the seed and the epoch).
        foreach (var batch in _trainLoader.Epoch(epoch).Skip(_iteration - epoch * _trainLoader.BatchesPerEpoch))
        {
            if (Finished) break;
            if (_communicator.Size == 1) cancellationToken.ThrowIfCancellationRequested();
            bool stop;
            _optimizer.LearningRate = _schedule.RateAt(_iteration);
            using (TensorScope.Begin())
            {
                var x = Tensor.FromArray(batch.Images, [batch.Count, _train.Channels, _train.Height, _train.Width], device);
                var logits = Model.Forward(x);
                var loss = logits.CrossEntropy(batch.Labels);
                loss.Backward();
                if (_communicator.Size > 1)
                {
                    _gradients.Average();
                    _allReduceSeconds.Add(_gradients.LastSeconds);
                    _allReduceHiddenSeconds.Add(_gradients.LastHiddenSeconds);
                }
                // Every rank's loss (NaN when its state is not finite), correct count and batch: a rank that
                // diverges stops every rank at the same step.
                var ranks = Gather.ToAll<double>(_communicator,
                    [LossIfStateFinite(loss), logits.TopKCorrect(batch.Labels, 1), batch.Count,
                        cancellationToken.IsCancellationRequested ? 1 : 0], device);
                stop = _communicator.Size > 1 && ranks.Any(rank => rank[3] != 0);
                if (ranks.FirstOrDefault(rank => !double.IsFinite(rank[0])) is { } diverged)
                    throw Diverged(_communicator.Size == 1 ? $"the loss is {loss.Item()}"
                        : $"the loss of rank {Array.IndexOf(ranks, diverged)} is {diverged[0]}");
                _optimizer.Step();
                _optimizer.ZeroGrad();
                foreach (var rank in ranks)
                {
                    lossSum += (float)rank[0] * (int)rank[2];
                    correct += (long)rank[1];
                    seen += (long)rank[2];
                }
            }
            _iteration++;
            _epochProgress = new EpochProgress(lossSum, correct, seen, secondsBefore + clock.Elapsed.TotalSeconds);
            progress?.Report(new TrainProgress(epoch, _iteration, TotalIterations, lossSum / seen,
                (double)correct / seen, seen / (secondsBefore + clock.Elapsed.TotalSeconds)));
            // (After an epoch's last step the epoch is still evaluated and recorded; the next call stops.)
            if (stop && !Finished && _iteration % _trainLoader.BatchesPerEpoch != 0)
                throw new OperationCanceledException("A rank of the data-parallel job was cancelled.");
        }
        double seconds = secondsBefore + clock.Elapsed.TotalSeconds;
        if (_communicator.Size > 1 && !_options.SyncBatchNorm)
            using (GradMode.NoGrad())
                foreach (var (_, buffer) in Model.NamedBuffers())
                    _communicator.Broadcast(buffer);
        var (testLoss, testError) = Evaluate(_test);
        var record = new EpochRecord(epoch, _iteration, _schedule.RateAt(Math.Max(0, _iteration - 1)),
            lossSum / seen, 1 - (double)correct / seen, testLoss, testError, seen / seconds, seconds);
        _history.Add(record);
        _epochProgress = EpochProgress.None;
        return record;
    }

    /// <summary>The loss plus 0 × the sum of every gradient, parameter and buffer: exactly the loss while all of
    /// them are finite, NaN as soon as one element is not (0 × ±∞ and 0 × NaN are NaN). One scalar read per step
    /// checks the whole training state on the device; nothing else is copied to the host.</summary>
    private float LossIfStateFinite(Tensor<float> loss)
    {
        using (GradMode.NoGrad())
        {
            var probe = loss;
            foreach (var (_, tensor) in TrainingState())
                probe += tensor.Sum().Scale(0);
            return probe.Item();
        }
    }

    /// <summary>Parameters and buffers, then the parameters' gradients (".grad"), by name: a message names the
    /// weights first, since one non-finite weight spreads into every gradient.</summary>
    private IEnumerable<(string Name, Tensor<float> Tensor)> TrainingState() =>
        Model.StateDict().Concat(Model.NamedParameters()
            .Where(parameter => parameter.Tensor.Grad is not null)
            .Select(parameter => (parameter.Name + ".grad", parameter.Tensor.Grad!)));

    /// <summary>The state tensors holding NaN or ±∞, with how many (read back to the host: a failure path, or once
    /// per checkpoint).</summary>
    private List<(string Name, int Count)> NonFiniteTensors() =>
        TrainingState()
            .Select(entry => (entry.Name, Count: entry.Tensor.ToArray().Count(v => !float.IsFinite(v))))
            .Where(entry => entry.Count > 0).ToList();

    /// <summary>The divergence error, naming the state tensors that hold non-finite values.</summary>
    private InvalidOperationException Diverged(string what, List<(string Name, int Count)>? broken = null)
    {
        broken ??= NonFiniteTensors();
        string where = broken.Count == 0 ? "" :
            "; non-finite values in " + string.Join(", ", broken.Take(5).Select(b => $"{b.Name} ({b.Count})")) +
            (broken.Count > 5 ? $" and {broken.Count - 5} more tensors" : "");
        return new InvalidOperationException(
            $"Training diverged at iteration {_iteration}: {what}{where}; try a lower learning rate.");
    }

    /// <summary>Mean cross-entropy and top-1 error of the model in eval mode. In a data-parallel job every rank
    /// evaluates its slice of each batch and the sums are gathered (every rank calls it together).</summary>
    public (double Loss, double Error) Evaluate(ImageDataset data)
    {
        var device = Model.Conv1.Weight.Device;
        int batchSize = Math.Min(_options.EvaluationBatchSize, data.Count);
        int shards = Math.Min(_communicator.Size, batchSize); // fewer images than ranks: the last ranks have none
        bool evaluates = _communicator.Rank < shards;
        using var loader = new BatchLoader(data, batchSize, shuffle: false, _options.Seed, _normalization,
            Augmentation.None, shardIndex: evaluates ? _communicator.Rank : 0, shardCount: shards);
        Model.Eval();
        double lossSum = 0;
        long correct = 0;
        using (GradMode.NoGrad())
            foreach (var batch in loader.Epoch(0))
            {
                if (!evaluates || batch.Count == 0) continue;
                using (TensorScope.Begin())
                {
                    var x = Tensor.FromArray(batch.Images, [batch.Count, data.Channels, data.Height, data.Width], device);
                    var logits = Model.Forward(x);
                    lossSum += logits.CrossEntropy(batch.Labels).Item() * batch.Count;
                    correct += logits.TopKCorrect(batch.Labels, 1);
                }
            }
        Model.Train();
        if (_communicator.Size > 1)
        {
            var ranks = Gather.ToAll<double>(_communicator, [lossSum, correct], device);
            lossSum = ranks.Sum(rank => rank[0]);
            correct = (long)ranks.Sum(rank => rank[1]);
        }
        return (lossSum / data.Count, 1 - (double)correct / data.Count);
    }

    /// <summary>Releases the model, the optimizer's state, the loader and the gradient buckets (their hooks and
    /// communication thread).</summary>
    public void Dispose()
    {
        _gradients.Dispose();
        _trainLoader.Dispose();
        _optimizer.Dispose();
        Model.Dispose();
    }
}
