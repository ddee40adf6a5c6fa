// The CPU backend with any number of worker threads: one worker (a 1-core machine, where the pool has no helper
// threads) must start, run and shut down cleanly, every thread count must give bit-identical results, and the
// worker pool must run every task exactly once.
using System.Diagnostics;
using Engine.Core;
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

    /// <summary>The worker pool runs every task exactly once, whatever the threads and the task count: one task a
    /// claim, and runs of consecutive tasks (taskCount / (64 · threads) a claim) with a shorter last run.</summary>
    [Test]
    public void WorkerPoolRunsEveryTaskOnce()
    {
        foreach (int threads in new[] { 1, 2, 3, 4 })
        {
            using var pool = new WorkerPool(threads);
            foreach (int tasks in new[] { 1, 2, 3, 5, 127 * threads, 128 * threads, 128 * threads + 1, 1000, 8199 })
            {
                var job = new CountingJob { Runs = new int[tasks] };
                pool.Run(tasks, ref job);
                Assert.That(job.Runs, Is.All.EqualTo(1), $"{tasks} tasks on {threads} thread(s)");
            }
        }
    }

    /// <summary>Runs started while the helpers spin for their next one, at about the time they stop spinning, and
    /// after they sleep (WorkerPool.HelperSpinTicks, 0.2 ms; none where the threads outnumber the cores) run every task
    /// once and end: a helper that sleeps, or reads its start count as it goes to sleep, misses no run.</summary>
    [Test]
    public void WorkerPoolRunsWhetherItsHelpersSpinOrSleep()
    {
        var runs = Task.Run(() =>
        {
            foreach (int threads in new[] { 2, 3 })
            {
                using var pool = new WorkerPool(threads);
                var random = new Random(threads);
                for (int run = 0; run < 300; run++)
                {
                    switch (random.Next(3))
                    {
                        case 1:
                            var gap = Stopwatch.StartNew();
                            double microseconds = 100 + 200 * random.NextDouble();
                            while (gap.Elapsed.TotalMicroseconds < microseconds) Thread.SpinWait(1);
                            break;
                        case 2:
                            Thread.Sleep(1);
                            break;
                    }
                    var job = new CountingJob { Runs = new int[threads] };
                    pool.Run(threads, ref job);
                    if (job.Runs.Any(count => count != 1))
                        return $"run {run} on {threads} threads: {string.Join(", ", job.Runs)}";
                }
            }
            return null;
        });
        Assert.That(runs.Wait(TimeSpan.FromSeconds(60)), Is.True, "a run never ended: a helper missed its start");
        Assert.That(runs.Result, Is.Null);
    }

    private struct CountingJob : IParallelJob
    {
        public int[] Runs;

        public void Execute(int task, int worker) => Interlocked.Increment(ref Runs[task]);
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
