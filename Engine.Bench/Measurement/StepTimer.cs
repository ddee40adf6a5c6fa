// Times inference (forward under no-grad, eval mode) and training steps (forward, cross-entropy, backward, SGD
// with momentum) of any module on random inputs: warm-up iterations first (a count, and optionally a time: the JIT
// replaces a method's quick first code with optimised code only after about 30 calls and a delay, so a count of two
// leaves part of the timed iterations on the quick code), then the median of the timed ones. Every iteration runs
// in its own TensorScope and ends with a device synchronisation.
using System.Diagnostics;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Core.Optim;

namespace Engine.Bench.Measurement;

public enum StepMode
{
    Infer,
    Train,
}

public sealed record StepTiming(double MedianMs, double MinMs, double MaxMs, int Iterations)
{
    public static StepTiming From(IReadOnlyList<double> samples)
    {
        var sorted = samples.Order().ToArray();
        double median = sorted.Length % 2 == 1
            ? sorted[sorted.Length / 2]
            : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        return new StepTiming(median, sorted[0], sorted[^1], sorted.Length);
    }
}

public static class StepTimer
{
    /// <summary>Times <paramref name="mode"/> steps of <paramref name="model"/> on inputs of
    /// <paramref name="inputShape"/>, after at least <paramref name="warmup"/> untimed iterations that last at least
    /// <paramref name="warmupTime"/>; <paramref name="onIteration"/> after every iteration, <paramref name="onTimed"/>
    /// before the first timed one. Training uses labels in [0, classes) when the output is [N, classes], and a sum
    /// of the output otherwise (a block on its own).</summary>
    public static StepTiming Time(Module<float> model, Shape inputShape, StepMode mode, int warmup, int iterations,
        Action? onIteration = null, TimeSpan warmupTime = default, Action? onTimed = null)
    {
        var device = model.Parameters().First().Device;
        using var input = Tensor.RandomNormal<float>(inputShape, seed: 1, device: device);
        var random = new Random(2);
        using var sgd = new Sgd<float>(model.Parameters(), learningRate: 0.01, momentum: 0.9, weightDecay: 1e-4);
        model.Train(mode == StepMode.Train);
        var samples = new List<double>();
        var warming = Stopwatch.StartNew();
        for (int untimed = 0; untimed < warmup || warming.Elapsed < warmupTime; untimed++)
        {
            Step();
            onIteration?.Invoke();
        }
        onTimed?.Invoke();
        for (int i = 0; i < iterations; i++)
        {
            var clock = Stopwatch.StartNew();
            Step();
            samples.Add(clock.Elapsed.TotalMilliseconds);
            onIteration?.Invoke();
        }
        return StepTiming.From(samples);

        void Step()
        {
            using (TensorScope.Begin())
            {
                if (mode == StepMode.Infer)
                {
                    using (GradMode.NoGrad()) model.Forward(input);
                }
                else
                {
                    var output = model.Forward(input);
                    var loss = output.Rank == 2
                        ? output.CrossEntropy(Enumerable.Range(0, output.Shape[0])
                            .Select(_ => random.Next(output.Shape[1])).ToArray())
                        : output.Mean();
                    loss.Backward();
                    sgd.Step();
                    sgd.ZeroGrad();
                }
                device.Synchronize();
            }
        }
    }
}
