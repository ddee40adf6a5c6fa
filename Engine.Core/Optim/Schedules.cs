// Learning-rate schedules, as functions of the iteration (0-based):
//   MultiStep  base · gamma^(milestones passed) — the paper: 0.1, ÷10 at 32k and 48k, stop at 64k
//   Cosine     base · (1 + cos(π·t/T)) / 2
//   Constant   base
// each with an optional warm-up: a lower rate for the first iterations (the paper's ResNet-110: 0.01 until
// training error falls below 80%, about 400 iterations, then 0.1).
namespace Engine.Core.Optim;

/// <summary>A learning rate as a function of the iteration (0-based), with an optional warm-up — the role of
/// torch.optim.lr_scheduler, evaluated per iteration rather than stepped.</summary>
/// <param name="BaseRate">The rate the schedule starts from after the warm-up.</param>
/// <param name="WarmupIterations">Iterations run at <paramref name="WarmupRate"/> first (0: no warm-up).</param>
/// <param name="WarmupRate">The rate during the warm-up.</param>
public abstract record LearningRateSchedule(double BaseRate, int WarmupIterations = 0, double WarmupRate = 0)
{
    /// <summary>The rate for <paramref name="iteration"/>: the warm-up rate during the warm-up, else the schedule's.</summary>
    public double RateAt(int iteration) =>
        iteration < WarmupIterations ? WarmupRate : ScheduledRate(iteration);

    /// <summary>The schedule's rate at <paramref name="iteration"/>, ignoring the warm-up.</summary>
    protected abstract double ScheduledRate(int iteration);

    /// <summary>Parses "multistep", "cosine" or "constant".</summary>
    public static LearningRateSchedule Create(string kind, double baseRate, int totalIterations,
        IReadOnlyList<int>? milestones = null, int warmupIterations = 0, double warmupRate = 0) =>
        kind.Trim().ToLowerInvariant() switch
        {
            "multistep" => new MultiStepSchedule(baseRate,
                milestones ?? [totalIterations / 2, totalIterations * 3 / 4], 0.1, warmupIterations, warmupRate),
            "cosine" => new CosineSchedule(baseRate, totalIterations, warmupIterations, warmupRate),
            "constant" => new ConstantSchedule(baseRate, warmupIterations, warmupRate),
            _ => throw new ArgumentException($"Unknown schedule '{kind}'. Schedules: multistep, cosine, constant."),
        };
}

/// <summary>The base rate times <paramref name="Gamma"/> for every milestone passed, as torch's MultiStepLR.</summary>
/// <param name="BaseRate">The rate before the first milestone.</param>
/// <param name="Milestones">Iterations at which the rate is multiplied by <paramref name="Gamma"/>.</param>
/// <param name="Gamma">The factor per milestone.</param>
/// <param name="WarmupIterations">Iterations run at <paramref name="WarmupRate"/> first.</param>
/// <param name="WarmupRate">The rate during the warm-up.</param>
public sealed record MultiStepSchedule(double BaseRate, IReadOnlyList<int> Milestones, double Gamma = 0.1,
    int WarmupIterations = 0, double WarmupRate = 0) : LearningRateSchedule(BaseRate, WarmupIterations, WarmupRate)
{
    /// <inheritdoc/>
    protected override double ScheduledRate(int iteration) =>
        BaseRate * Math.Pow(Gamma, Milestones.Count(m => iteration >= m));
}

/// <summary>base · (1 + cos(π·t/T)) / 2, as torch's CosineAnnealingLR with eta_min 0 over one half-period.</summary>
/// <param name="BaseRate">The rate at iteration 0.</param>
/// <param name="TotalIterations">T: the iteration at which the rate reaches 0 (and stays).</param>
/// <param name="WarmupIterations">Iterations run at <paramref name="WarmupRate"/> first.</param>
/// <param name="WarmupRate">The rate during the warm-up.</param>
public sealed record CosineSchedule(double BaseRate, int TotalIterations, int WarmupIterations = 0,
    double WarmupRate = 0) : LearningRateSchedule(BaseRate, WarmupIterations, WarmupRate)
{
    /// <inheritdoc/>
    protected override double ScheduledRate(int iteration) =>
        BaseRate * (1 + Math.Cos(Math.PI * Math.Min(iteration, TotalIterations) / Math.Max(1, TotalIterations))) / 2;
}

/// <summary>The base rate throughout (after the warm-up).</summary>
/// <param name="BaseRate">The rate.</param>
/// <param name="WarmupIterations">Iterations run at <paramref name="WarmupRate"/> first.</param>
/// <param name="WarmupRate">The rate during the warm-up.</param>
public sealed record ConstantSchedule(double BaseRate, int WarmupIterations = 0, double WarmupRate = 0)
    : LearningRateSchedule(BaseRate, WarmupIterations, WarmupRate)
{
    /// <inheritdoc/>
    protected override double ScheduledRate(int iteration) => BaseRate;
}
