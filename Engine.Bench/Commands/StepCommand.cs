// `step --model NAME --batch N --mode train|infer [--device D] [--iters K] [--warmup W] [--warmup-time T]
// [--image-size S] [--profile] [--count-launches] [--no-fold]`: times forward (infer) or a full training step
// (forward, loss, backward, SGD), after at least W untimed iterations lasting at least T seconds (2 and 2: the JIT
// has optimised the hot code by then), and prints the median as its last line, `median_ms=<number>`. Infer times
// the model folded for inference (ResNet.FuseForInference: batch-norms folded into the convolutions, ReLUs and
// residual adds in their epilogues); --no-fold times the unfolded eval-mode model instead. --count-launches (ILGPU
// devices) also prints the kernel launches and host synchronisations per step, counted by the backend after the
// warm-up.
using System.CommandLine;
using System.Globalization;
using Engine.Bench.Measurement;
using Engine.Core;
using Engine.Kernels.Cpu;
using Engine.Kernels.Ilgpu;
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
        var warmup = new Option<int>("--warmup")
        {
            Description = "Untimed iterations first, at least.", DefaultValueFactory = _ => 2,
        };
        var warmupTime = new Option<double>("--warmup-time")
        {
            Description = "Seconds of untimed iterations first, at least (the JIT optimises hot code after about 30 " +
                          "calls and a delay).",
            DefaultValueFactory = _ => 2,
        };
        var profile = new Option<bool>("--profile") { Description = "Also print the time per op family (synchronising after each op)." };
        var countLaunches = new Option<bool>("--count-launches")
        {
            Description = "Also print the kernel launches and host synchronisations per step (ILGPU devices).",
        };
        var imageSize = new Option<int?>("--image-size")
        {
            Description = "Input height and width instead of the model's own (e.g. a small ResNet-50 input to count " +
                          "launches on a slow device).",
        };
        var noFold = new Option<bool>("--no-fold")
        {
            Description = "Infer with the unfolded eval-mode model (batch-norm as its own op) instead of the folded one.",
        };
        var device = CommonOptions.Device();
        var command = new Command("step", "Times inference or one training step of a model.")
            { model, batch, mode, iterations, warmup, warmupTime, profile, countLaunches, imageSize, noFold, device };
        command.SetAction(result => Run(result.GetValue(model)!, result.GetValue(batch), result.GetValue(mode),
            result.GetValue(iterations), result.GetValue(warmup), result.GetValue(warmupTime), result.GetValue(profile),
            result.GetValue(countLaunches), result.GetValue(imageSize), result.GetValue(noFold),
            result.GetValue(device)));
        return command;
    }

    private static int Run(string modelName, int batch, StepMode mode, int iterations, int warmup, double warmupTime,
        bool profile, bool countLaunches, int? imageSize, bool noFold, string? deviceName)
    {
        if (noFold && mode != StepMode.Infer)
            throw new ArgumentException("--no-fold applies to --mode infer only (training needs the batch-norms).");
        if (batch < 1 || iterations < 1 || warmup < 0 || !(warmupTime >= 0))
            throw new ArgumentException($"--batch and --iters must be at least 1, --warmup and --warmup-time at " +
                                        $"least 0 (got {batch}, {iterations}, {warmup}, {warmupTime}).");
        if (imageSize is < 1)
            throw new ArgumentException($"--image-size must be at least 1 (got {imageSize}).");
        var spec = ModelRegistry.Parse(modelName);
        using var opened = CommonOptions.OpenDevice(deviceName);
        var counted = opened.Backend as IlgpuBackend;
        if (countLaunches && counted is null)
        {
            Console.Error.WriteLine($"step: --count-launches counts ILGPU kernels; device '{opened.Backend.Kind}' " +
                                    "is not an ILGPU device (use --device ilgpu-cpu, cuda or opencl).");
            return 2;
        }
        var profiler = profile ? new OpProfiler(opened.Backend) : null;
        var device = opened;
        using var model = ModelRegistry.Create<float>(modelName, device);
        bool fold = mode == StepMode.Infer && !noFold;
        using var folded = fold ? model.FuseForInference() : null;
        if (mode == StepMode.Infer)
            Console.WriteLine(fold
                ? "infer: folded model (batch-norm folded into the convolutions; ReLU and residual add in their " +
                  "epilogues); --no-fold times the unfolded one"
                : "infer: unfolded eval-mode model (--no-fold)");
        int size = imageSize ?? spec.InputSize;
        (long Launches, long Synchronizations) start = (0, 0);
        var timing = StepTimer.Time(folded ?? (Engine.Core.Modules.Module<float>)model, [batch, 3, size, size], mode,
            warmup, iterations, warmupTime: TimeSpan.FromSeconds(warmupTime), onTimed: () =>
            {
                profiler?.Reset();
                if (countLaunches) start = (counted!.LaunchCount, counted.SynchronizationCount);
            });
        if (profiler is not null) PrintProfile(profiler, iterations);
        if (countLaunches)
            Console.WriteLine($"per step: {(double)(counted!.LaunchCount - start.Launches) / iterations:F1} kernel " +
                              $"launches, {(double)(counted.SynchronizationCount - start.Synchronizations) / iterations:F1} " +
                              "host synchronisations");
        if (opened.Backend is CpuBackend cpu)
            Console.WriteLine($"packed convolution weights kept between calls: {cpu.KeptWeightPackBytes / 1e6:F1} MB");
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
