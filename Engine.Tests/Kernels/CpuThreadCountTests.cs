// The CPU backend with any number of worker threads: one worker (a 1-core machine, where the pool has no helper
// threads) must start, run and shut down cleanly, and every thread count must give bit-identical results.
using Engine.Core;
using Engine.Kernels;
using Engine.Kernels.Cpu;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class CpuThreadCountTests
{
    [Test]
    public void EveryThreadCountGivesTheSameBitsAndDisposesCleanly()
    {
        var reference = TrainingStepResults(threads: Environment.ProcessorCount);
        foreach (int threads in new[] { 1, 3 })
        {
            var results = TrainingStepResults(threads);
            Assert.That(results.Logits, Is.EqualTo(reference.Logits), $"logits with {threads} thread(s)");
            Assert.That(results.Conv1Gradient, Is.EqualTo(reference.Conv1Gradient), $"gradient with {threads} thread(s)");
        }
    }

    /// <summary>601 planes, one task each: with 2 and 3 threads the pool hands out runs of consecutive tasks
    /// (601 / (16 · threads) a claim, the last run shorter); every plane must be pooled exactly once.</summary>
    [Test]
    public void ManySmallTasksRunOnceEachInRunsOfConsecutiveTasks()
    {
        var g = PoolGeometry.Square(1, 601, 8, 8, kernel: 2, stride: 2, padding: 0);
        var random = new Random(5);
        var input = new float[g.InputLength];
        for (int i = 0; i < input.Length; i++) input[i] = (float)random.NextDouble() - 0.5f;
        var expected = new float[g.OutputLength];
        for (int o = 0; o < expected.Length; o++)
        {
            int plane = o / 16, oh = o % 16 / 4, ow = o % 4;
            expected[o] = float.NegativeInfinity;
            for (int r = 0; r < 2; r++)
            for (int c = 0; c < 2; c++)
                expected[o] = Math.Max(expected[o], input[plane * 64 + (2 * oh + r) * 8 + 2 * ow + c]);
        }
        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var backend = new CpuBackend(threads);
            using var x = backend.Allocate<float>(g.InputLength);
            using var y = backend.Allocate<float>(g.OutputLength);
            using var argmax = backend.Allocate<int>(g.OutputLength);
            x.CopyFromHost(input);
            backend.MaxPoolForward(g, x, y, argmax);
            var output = new float[g.OutputLength];
            y.CopyToHost(output);
            Assert.That(output, Is.EqualTo(expected), $"{threads} thread(s)");
        }
    }

    [Test]
    public void ThreadCountBelowOneIsRejected() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuBackend(threads: 0));

    /// <summary>A ResNet-20 forward and backward on a fresh backend of <paramref name="threads"/> workers, which is
    /// disposed before returning (the one-worker pool used to throw there).</summary>
    private static (float[] Logits, float[] Conv1Gradient) TrainingStepResults(int threads)
    {
        using var device = Device.FromBackend(new CpuBackend(threads));
        using var model = ModelRegistry.Create<float>("resnet20-a", device, seed: 7);
        using (TensorScope.Begin())
        {
            var x = Tensor.RandomNormal<float>([4, 3, 32, 32], seed: 8, device: device);
            var logits = model.Forward(x);
            logits.CrossEntropy([1, 3, 5, 7]).Backward();
            return (logits.ToArray(), model.Conv1.Weight.Grad!.ToArray());
        }
    }
}
