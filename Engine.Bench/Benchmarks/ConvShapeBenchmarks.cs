// Per-shape convolution timing: every distinct convolution of a model (from its cost report), each pass timed on
// its own — forward, backward data, backward weight — at a chosen batch, with GFLOP/s per shape and the total
// weighted by how many layers share the shape. The Stopwatch median of a few calls after warm-up rounds over every
// shape (the shapes are large enough that BenchmarkDotNet's statistics add nothing but minutes); every call ends with
// Synchronize. With --training the weights are written before every call, untimed, as an optimizer step writes them
// between a training step's passes, so each forward and data gradient packs or transforms them again (as training
// does; without it the backend may keep them packed from the call before, as inference does).
//
// On the CPU backend the table ends with the float32 FMA peak of its threads, measured before and after it
// (FmaPeak), and the passes below 60 % of that peak; the data gradient of the layer that takes the network's input,
// which no training step computes (the input needs no gradient), is timed and named apart. Beside the peak, a cache
// line's round trip between two threads (CoreRoundTrip), which tells on which placement of the cores the table ran.
//
//   dotnet Engine.Bench.dll kernels --device cpu --conv-shapes resnet50 --batch 1 [--iters 5] [--training]
using System.Diagnostics;
using System.Globalization;
using Engine.Core;
using Engine.Kernels;
using Engine.Kernels.Cpu;
using Engine.Kernels.Ilgpu;
using Engine.Models;

namespace Engine.Bench.Benchmarks;

/// <summary>One distinct convolution shape of a model: its geometry at the timed batch and how many layers have
/// it.</summary>
/// <param name="Geometry">The convolution at the timed batch.</param>
/// <param name="Layers">The model's layers with this shape.</param>
/// <param name="Kind">The cost report's description (conv 3x3/1 64→64).</param>
/// <param name="TakesTheInput">Whether the shape's one layer is the model's first, which takes the network's input:
/// its data gradient is a pass no training step runs.</param>
public sealed record ConvShape(ConvGeometry Geometry, int Layers, string Kind, bool TakesTheInput = false)
{
    /// <summary>Floating-point operations of one pass (each pass does the forward's multiply-accumulates).</summary>
    public double Flops => 2.0 * Geometry.Macs;

    /// <summary>The distinct convolution shapes of <paramref name="report"/> in forward order, at
    /// <paramref name="batch"/> images.</summary>
    public static IReadOnlyList<ConvShape> Of(CostReport report, int batch)
    {
        var convs = report.Rows.Where(row => row.Conv is not null).ToList();
        return convs
            .GroupBy(row => row.Conv!.Value)
            .Select(group => new ConvShape(group.Key with { Batch = batch }, group.Count(), group.First().Kind,
                group.Count() == 1 && group.First() == convs[0]))
            .ToList();
    }
}

/// <summary>Median milliseconds of the three passes of one shape.</summary>
/// <param name="Forward">y = conv(x, w).</param>
/// <param name="BackwardData">dx from dy and w.</param>
/// <param name="BackwardWeight">dw from x and dy.</param>
public readonly record struct ConvPassTimes(double Forward, double BackwardData, double BackwardWeight);

/// <summary>Times the passes of each shape on one backend and prints the table.</summary>
public static class ConvShapeBenchmarks
{
    /// <summary>Median milliseconds of each pass of <paramref name="shape"/> over <paramref name="iterations"/>
    /// calls after one warm-up, on random non-zero float inputs; with <paramref name="training"/> the weights
    /// written (the same values) before every call, untimed.</summary>
    public static ConvPassTimes Time(Backend backend, ConvShape shape, int iterations, bool training = false)
    {
        var g = shape.Geometry;
        DeviceBuffer<float> Filled(long length)
        {
            var buffer = backend.Allocate<float>(length);
            buffer.CopyFromHost(RandomValues(length));
            return buffer;
        }

        using var x = Filled(g.InputLength);
        using var w = Filled(g.WeightLength);
        using var dy = Filled(g.OutputLength);
        using var y = backend.Allocate<float>(g.OutputLength);
        using var dx = backend.Allocate<float>(g.InputLength);
        using var dw = backend.Allocate<float>(g.WeightLength);
        Action? step = training ? () => w.CopyFromHost(RandomValues(g.WeightLength)) : null;
        return new ConvPassTimes(
            Median(backend, iterations, () => backend.Conv2dForward(g, x, w, null, y), step),
            Median(backend, iterations, () => backend.Conv2dBackwardData(g, dy, w, dx), step),
            Median(backend, iterations, () => backend.Conv2dBackwardWeight(g, x, dy, dw), step));
    }

    /// <summary>Random non-zero values in [-1, 1) that every input is copied from, made once and extended when a
    /// longer input needs more: drawing fresh values (and fresh host arrays) for every call took most of the run —
    /// longer than a GPU's passes over ResNet-50 at batch 32. x, w and dy thus start with the same values (the
    /// timings do not care); the set lives as long as the process (one thread times the shapes).</summary>
    private static float[] _randomValues = [];

    private static ReadOnlySpan<float> RandomValues(long length)
    {
        if (length > _randomValues.Length)
        {
            var random = new Random(_randomValues.Length + 1);
            var grown = new float[checked((int)length)];
            _randomValues.CopyTo(grown, 0);
            for (int i = _randomValues.Length; i < grown.Length; i++) grown[i] = (float)(random.NextDouble() * 2 - 1);
            _randomValues = grown;
        }
        return _randomValues.AsSpan(0, (int)length);
    }

    private static double Median(Backend backend, int iterations, Action pass, Action? beforeEach)
    {
        pass();
        backend.Synchronize();
        var times = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            beforeEach?.Invoke();
            backend.Synchronize();
            long start = Stopwatch.GetTimestamp();
            pass();
            backend.Synchronize();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return iterations % 2 == 1 ? times[iterations / 2] : (times[iterations / 2 - 1] + times[iterations / 2]) / 2;
    }

    /// <summary>Times every distinct convolution of <paramref name="model"/> at <paramref name="batch"/> on
    /// <paramref name="device"/> and prints a Markdown table: per shape the median time and GFLOP/s of each pass,
    /// then the totals over all the model's layers (each shape counted once per layer that has it); with
    /// <paramref name="training"/> the weights written before every call; 0.</summary>
    public static int Run(Device device, string model, int batch, int iterations, bool training = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1, "--batch");
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1, "--iters");
        CostReport report;
        using (var built = ModelRegistry.Create<float>(model, device)) report = CostCounter.Count(built);
        var shapes = ConvShape.Of(report, batch);
        // Every shape's passes first, until the JIT has tiered the kernels up: timed from a cold start, the first
        // shapes measured tier-0 code (ResNet-50's 7x7 stem forward: 14–16 ms warmed once, 3.2–3.6 ms fully compiled).
        long warmup = Stopwatch.GetTimestamp();
        for (int round = 0; round < WarmupRounds || Stopwatch.GetElapsedTime(warmup) < WarmupTime; round++)
            foreach (var shape in shapes) Time(device.Backend, shape, 1, training);
        double? peakBefore = CpuPeak(device.Backend);
        double? roundTripBefore = CpuRoundTrip(device.Backend);
        Console.WriteLine($"{report.Model}, batch {batch}, float32; median of {iterations} calls after every shape " +
                          $"ran {WarmupRounds}+ rounds ({WarmupTime.TotalSeconds:F0}+ s)" +
                          (training ? "; weights written before every call, as in training" : "") +
                          $"; {DateTime.UtcNow:yyyy-MM-dd}");
        Console.WriteLine();
        Console.WriteLine("| shape (C×H×W → K, R×S/stride) | layers | GFLOP/pass | forward ms | GFLOP/s | " +
                          "backward data ms | GFLOP/s | backward weight ms | GFLOP/s |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        double flops = 0, forward = 0, data = 0, weight = 0;
        var passes = new List<(string Pass, double Rate, bool Untrained)>();
        foreach (var shape in shapes)
        {
            var t = Time(device.Backend, shape, iterations, training);
            var g = shape.Geometry;
            string name = $"{g.InChannels}×{g.InHeight}×{g.InWidth} → {g.OutChannels}, " +
                          $"{g.KernelHeight}×{g.KernelWidth}/{g.StrideHeight}";
            passes.Add(($"{name} forward", shape.Flops / t.Forward / 1e6, false));
            passes.Add(($"{name} backward data", shape.Flops / t.BackwardData / 1e6, shape.TakesTheInput));
            passes.Add(($"{name} backward weight", shape.Flops / t.BackwardWeight / 1e6, false));
            Console.WriteLine($"| {name} | {shape.Layers} | " +
                              $"{Format(shape.Flops / 1e9, "F3")} | {Format(t.Forward, "F2")} | " +
                              $"{Rate(shape.Flops, t.Forward)} | {Format(t.BackwardData, "F2")} | " +
                              $"{Rate(shape.Flops, t.BackwardData)} | {Format(t.BackwardWeight, "F2")} | " +
                              $"{Rate(shape.Flops, t.BackwardWeight)} |");
            flops += shape.Layers * shape.Flops;
            forward += shape.Layers * t.Forward;
            data += shape.Layers * t.BackwardData;
            weight += shape.Layers * t.BackwardWeight;
        }
        int layers = report.Rows.Count(r => r.Conv is not null);
        Console.WriteLine($"| all {layers} layers | | {Format(flops / 1e9, "F3")} | " +
                          $"{Format(forward, "F1")} | {Rate(flops, forward)} | {Format(data, "F1")} | " +
                          $"{Rate(flops, data)} | {Format(weight, "F1")} | {Rate(flops, weight)} |");
        if (peakBefore is double before && CpuPeak(device.Backend) is double after)
            PrintShareOfPeak(before, after, passes);
        if (roundTripBefore is double first && CpuRoundTrip(device.Backend) is double last)
            Console.WriteLine($"A cache line's round trip between two threads, before and after the table: " +
                              $"{Format(first, "F0")} and {Format(last, "F0")} ns (several times longer where the " +
                              "two cores share no cache, which slows the passes whose threads read each other's " +
                              "writes).");
        if (device.Backend is IlgpuBackend { IlgpuKind: IlgpuKind.Cuda } cuda) PrintKernelResources(cuda);
        return 0;
    }

    /// <summary>The float32 FMA peak of the CPU backend's threads now (FmaPeak), in GFLOP/s; null on other backends
    /// and on a CPU without FMA.</summary>
    private static double? CpuPeak(Backend backend) =>
        backend is CpuBackend cpu && FmaPeak.IsSupported ? FmaPeak.Measure(cpu.ThreadCount) : null;

    /// <summary>A cache line's round trip between two threads now (CoreRoundTrip), in nanoseconds, where the CPU
    /// backend runs; null on other backends and on one core.</summary>
    private static double? CpuRoundTrip(Backend backend) => backend is CpuBackend ? CoreRoundTrip.Measure() : null;

    /// <summary>A pass's share of the peak that counts as near the machine's limit.</summary>
    private const double TargetShareOfPeak = 0.6;

    /// <summary>The FMA peak measured before and after the table, and the passes below TargetShareOfPeak of the
    /// lower one (the host's speed drifts: a share against a peak of the same minutes holds in any hour).</summary>
    private static void PrintShareOfPeak(double before, double after,
        List<(string Pass, double Rate, bool Untrained)> passes)
    {
        double peak = Math.Min(before, after), target = TargetShareOfPeak * peak;
        string Share(double rate) => $"{Format(rate, "F0")} ({Format(100 * rate / peak, "F0")} %)";
        var run = passes.Where(p => !p.Untrained).ToList();
        var below = run.Where(p => p.Rate < target).OrderBy(p => p.Rate).Select(p => $"{p.Pass} {Share(p.Rate)}")
            .ToList();
        var untrained = passes.Where(p => p.Untrained).Select(p => $"{p.Pass} {Share(p.Rate)}").ToList();
        Console.WriteLine();
        Console.WriteLine($"float32 FMA peak of the backend's threads, measured before and after the table: " +
                          $"{Format(before, "F0")} and {Format(after, "F0")} GFLOP/s; the slowest pass " +
                          $"{Format(100 * run.Min(p => p.Rate) / peak, "F0")} % of the lower. Passes below " +
                          $"{Format(100 * TargetShareOfPeak, "F0")} % of it ({Format(target, "F0")} GFLOP/s): " +
                          (below.Count == 0 ? "none." : string.Join("; ", below) + ".") +
                          (untrained.Count == 0 ? "" : " Apart, the data gradient of the layer that takes the " +
                              $"network's input, which no training step computes: {string.Join("; ", untrained)}."));
    }

    /// <summary>The loaded kernels' registers, spills and occupancy on a CUDA device (what ptxas made of them).
    /// </summary>
    private static void PrintKernelResources(IlgpuBackend backend)
    {
        Console.WriteLine();
        Console.WriteLine("| kernel | registers | local bytes | static shared bytes | groups of 256 per SM |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var k in backend.LoadedKernelResources())
            Console.WriteLine($"| {k.Kernel} | {k.Registers} | {k.LocalBytes} | {k.StaticSharedBytes} | " +
                              $"{k.GroupsOf256PerMultiprocessor} |");
    }

    /// <summary>Warm-up rounds over every shape before timing: at least this many, and at least WarmupTime.</summary>
    private const int WarmupRounds = 2;

    private static readonly TimeSpan WarmupTime = TimeSpan.FromSeconds(2);

    private static string Format(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string Rate(double flops, double milliseconds) => Format(flops / (milliseconds * 1e6), "F1");
}
