// The BenchmarkDotNet job the engine's suites share.
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Engine.Bench.Benchmarks;

internal static class BenchmarkJobs
{
    /// <summary>A short job, in process (no rebuild, and the statics that carry the device are shared): 2 warm-up
    /// and 5 measured iterations of ~250 ms each, one call per invocation (no unrolling: calls are long).</summary>
    public static Job Short() => Job.Default
        .WithToolchain(InProcessEmitToolchain.Instance)
        .WithLaunchCount(1)
        .WithWarmupCount(2)
        .WithIterationCount(5)
        .WithIterationTime(TimeInterval.FromMilliseconds(250))
        .WithUnrollFactor(1)
        .WithId("Short");
}
