// Learning-rate schedules, as functions of the iteration (0-based):
//   MultiStep  base · gamma^(milestones passed) — the paper: 0.1, ÷10 at 32k and 48k, stop at 64k
//   Cosine     base · (1 + cos(π·t/T)) / 2
//   Constant   base
// each with an optional warm-up: a lower rate for the first iterations (the paper's ResNet-110: 0.01 until
// training error falls below 80%, about 400 iterations, then 0.1).
namespace Engine.Core.Optim;

public abstract record LearningRateSchedule(double BaseRate, int WarmupIterations = 0, double WarmupRate = 0)
{
    public double RateAt(int iteration) =>
        iteration < WarmupIterations ? WarmupRate : ScheduledRate(iteration);

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

public sealed record MultiStepSchedule(double BaseRate, IReadOnlyList<int> Milestones, double Gamma = 0.1,
    int WarmupIterations = 0, double WarmupRate = 0) : LearningRateSchedule(BaseRate, WarmupIterations, WarmupRate)
{
    protected override double ScheduledRate(int iteration) =>
        BaseRate * Math.Pow(Gamma, Milestones.Count(m => iteration >= m));
}

public sealed record CosineSchedule(double BaseRate, int TotalIterations, int WarmupIterations = 0,
    double WarmupRate = 0) : LearningRateSchedule(BaseRate, WarmupIterations, WarmupRate)
{
    protected override double ScheduledRate(int iteration) =>
        BaseRate * (1 + Math.Cos(Math.PI * Math.Min(iteration, TotalIterations) / Math.Max(1, TotalIterations))) / 2;
}

public sealed record ConstantSchedule(double BaseRate, int WarmupIterations = 0, double WarmupRate = 0)
    : LearningRateSchedule(BaseRate, WarmupIterations, WarmupRate)
{
    protected override double ScheduledRate(int iteration) => BaseRate;
}
