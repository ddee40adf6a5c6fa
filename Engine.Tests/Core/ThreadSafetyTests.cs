// One device, several threads: the backend serialises its ops (Backend's lock), so threads that share a device and
// even a model (evaluating it: logits and loss) get exactly the bits one thread gets, and threads that train their own models get
// exactly the weights each gets alone. Inputs are tiny (ResNet-20 on 8x8 images; on ILGPU's slow CPU accelerator,
// whose ~70 launches per forward cost milliseconds each, 4x4 images and fewer runs): the point is interleaving, not
// arithmetic.
using System.Collections.Concurrent;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Core.Optim;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Core;

public sealed class ThreadSafetyTests(string kind) : DeviceFixture(kind)
{
    private bool Slow => Kind == "ilgpu-cpu";

    private int ImageSize => Slow ? 4 : 8;

    [Test]
    public void FourThreadsEvaluatingOneModelGetTheResultsOfOneThread()
    {
        const int threads = 4;
        int runs = Slow ? 5 : 200;
        using var model = ModelRegistry.Create<float>("resnet20-a", Device, seed: 3);
        model.Eval();
        float[][] inputs = Enumerable.Range(0, threads)
            .Select(t => Tensor.RandomNormal<float>([2, 3, ImageSize, ImageSize], seed: 10 + t, device: Device).ToArray())
            .ToArray();
        float[][] expected = Enumerable.Range(0, threads).Select(t => Evaluate(model, inputs[t], t)).ToArray();

        var failures = RunConcurrently(threads, t =>
        {
            for (int run = 0; run < runs; run++)
            {
                float[] result = Evaluate(model, inputs[t], t);
                if (!result.SequenceEqual(expected[t]))
                    return $"thread {t}, run {run}: [{string.Join(", ", result)}] instead of " +
                           $"[{string.Join(", ", expected[t])}]";
            }
            return null;
        });
        Assert.That(failures, Is.Empty);
    }

    [Test]
    public void TwoThreadsTrainingTheirOwnModelsGetTheWeightsEachGetsAlone()
    {
        const int threads = 2;
        float[][] alone = Enumerable.Range(0, threads).Select(Train).ToArray();
        var together = new float[threads][];
        var failures = RunConcurrently(threads, t =>
        {
            together[t] = Train(t);
            return null;
        });
        Assert.That(failures, Is.Empty);
        for (int t = 0; t < threads; t++)
            Assert.That(together[t], Is.EqualTo(alone[t]), $"model {t}: weights trained beside another thread");
    }

    /// <summary>What evaluating a batch of two images gives, without recording gradients: the logits, then the mean
    /// cross-entropy for labels (<paramref name="label"/>, 7).</summary>
    private float[] Evaluate(Module<float> model, float[] images, int label)
    {
        using var scope = TensorScope.Begin();
        using var noGrad = GradMode.NoGrad();
        var logits = model.Forward(Tensor.FromArray(images, [2, 3, ImageSize, ImageSize], Device));
        return [.. logits.ToArray(), .. logits.CrossEntropy([label, 7]).ToArray()];
    }

    /// <summary>Every weight of ResNet-20 (seed <paramref name="seed"/>) after two SGD steps with momentum on a
    /// batch of two random images.</summary>
    private float[] Train(int seed)
    {
        using var scope = TensorScope.Begin();
        using var model = ModelRegistry.Create<float>("resnet20-a", Device, seed: 20 + seed);
        using var sgd = new Sgd<float>(model.Parameters(), learningRate: 0.05, momentum: 0.9);
        var x = Tensor.RandomNormal<float>([2, 3, ImageSize, ImageSize], seed: 30 + seed, device: Device);
        int[] labels = [seed, 7];
        for (int step = 0; step < 2; step++)
        {
            model.Forward(x).CrossEntropy(labels).Backward();
            sgd.Step();
            sgd.ZeroGrad();
        }
        return model.Parameters().SelectMany(p => p.ToArray()).ToArray();
    }

    /// <summary>Runs <paramref name="body"/>(t) on threads t = 0 … <paramref name="threads"/> − 1 started together;
    /// returns what went wrong (a body's message or exception), empty when nothing did.</summary>
    private static List<string> RunConcurrently(int threads, Func<int, string?> body)
    {
        var failures = new ConcurrentQueue<string>();
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                if (body(t) is { } failure) failures.Enqueue(failure);
            }
            catch (Exception error)
            {
                failures.Enqueue($"thread {t}: {error.GetType().Name}: {error.Message}");
            }
        })).ToList();
        workers.ForEach(worker => worker.Start());
        workers.ForEach(worker => worker.Join());
        return [.. failures];
    }
}
