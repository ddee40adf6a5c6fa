// `step --model NAME --batch N --mode train|infer [--device D] [--iters K] [--warmup W]`: times forward
// (infer) or a full training step (forward, loss, backward, SGD) and prints the median as its last line,
// `median_ms=<number>`.
using System.CommandLine;
using System.Globalization;
using Engine.Bench.Measurement;
using Engine.Core;
using Engine.Models;

namespace Engine.Bench.Commands;

internal static class StepCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model name, e.g. resnet20-a.", Required = true };
        var batch = new Option<int>("--batch") { Description = "Batch size.", DefaultValueFactory = _ => 128 };
        var mode = new Option<StepMode>("--mode") { Description = "infer or train.", DefaultValueFactory = _ => StepMode.Train };
        var iterations = new Option<int>("--iters") { Description = "Timed iterations.", DefaultValueFactory = _ => 10 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed iterations first.", DefaultValueFactory = _ => 2 };
        var profile = new Option<bool>("--profile") { Description = "Also print the time per op family (synchronising after each op)." };
        var device = CommonOptions.Device();
        var command = new Command("step", "Times inference or one training step of a model.")
            { model, batch, mode, iterations, warmup, profile, device };
        command.SetAction(result => Run(result.GetValue(model)!, result.GetValue(batch), result.GetValue(mode),
            result.GetValue(iterations), result.GetValue(warmup), result.GetValue(profile), result.GetValue(device)));
        return command;
    }

    private static int Run(string modelName, int batch, StepMode mode, int iterations, int warmup, bool profile,
        string? deviceName)
    {
        if (batch < 1 || iterations < 1 || warmup < 0)
            throw new ArgumentException($"--batch and --iters must be at least 1 and --warmup at least 0 " +
                                        $"(got {batch}, {iterations}, {warmup}).");
        var spec = ModelRegistry.Parse(modelName);
        using var opened = CommonOptions.OpenDevice(deviceName);
        var profiler = profile ? new OpProfiler(opened.Backend) : null;
        var device = opened;
        using var model = ModelRegistry.Create<float>(modelName, device);
        var timing = StepTimer.Time(model, [batch, 3, spec.InputSize, spec.InputSize], mode, warmup, iterations,
            () => { if (profiler is not null && --warmup == 0) profiler.Reset(); });
        if (profiler is not null) PrintProfile(profiler, iterations);
        Console.WriteLine($"{spec.Name} {mode.ToString().ToLowerInvariant()} batch {batch}: median " +
                          $"{timing.MedianMs:F1} ms (min {timing.MinMs:F1}, max {timing.MaxMs:F1}, " +
                          $"{timing.Iterations} iterations), {batch * 1000 / timing.MedianMs:F1} images/s");
        Console.WriteLine($"median_ms={timing.MedianMs.ToString("F3", CultureInfo.InvariantCulture)}");
        return 0;
    }

    private static void PrintProfile(OpProfiler profiler, int iterations)
    {
        double total = profiler.Times.Values.Sum(t => t.Milliseconds);
        Console.WriteLine($"per iteration, by op (synchronised after each op; {iterations} iterations):");
        foreach (var (op, (ms, calls)) in profiler.Times.OrderByDescending(t => t.Value.Milliseconds))
            Console.WriteLine($"  {op,-28} {ms / iterations,9:F2} ms  {100 * ms / total,5:F1}%  {calls / iterations,5} calls");
        Console.WriteLine($"  {"total",-28} {total / iterations,9:F2} ms");
    }
}
