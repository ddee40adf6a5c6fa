// Host↔device traffic of one ResNet-20 training step, counted by an observer of the backend: every Synchronize
// through the Backend contract and every CopyToHost / CopyFromHost of one of its buffers. On the ILGPU backends
// each copy also synchronises the device, so these counts bound the step's host synchronisations. The observer
// sees what Engine.Core asks of the backend, not copies a backend might make of its own buffers internally; the
// loss and top-k ops of every backend make none (their labels are checked on the host before upload).
using Engine.Core;
using Engine.Core.Optim;
using Engine.Kernels;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class SynchronizationCountTests(string kind) : DeviceFixture(kind)
{
    [Test]
    public void TrainingStepCopiesOnlyTheLabelsToTheDeviceAndNeverWaits()
    {
        var counts = new TrafficCounts();
        using var device = Device.Create(Kind);
        device.Backend.Observer = counts;
        using var model = ModelRegistry.Create<float>("resnet20-a", device, seed: 7);
        using var sgd = new Sgd<float>(model.Parameters(), learningRate: 0.01, momentum: 0.9);
        using var scope = TensorScope.Begin(); // this test's tensors go before its device
        var x = Tensor.RandomNormal<float>([2, 3, 32, 32], seed: 8, device: device);
        int[] labels = [3, 9];

        counts.Reset();
        var logits = model.Forward(x);
        logits.CrossEntropy(labels).Backward();
        Assert.That(counts.ToString(), Is.EqualTo(new TrafficCounts { CopiesFromHost = 1 }.ToString()),
            "forward to end of backward: the labels' upload is the only transfer, and nothing waits for the device");

        counts.Reset();
        sgd.Step();
        sgd.ZeroGrad();
        Assert.That(counts.ToString(), Is.EqualTo(new TrafficCounts().ToString()), "the SGD step");

        counts.Reset();
        int correct = logits.TopKCorrect(labels, 1);
        Assert.That(correct, Is.InRange(0, 2));
        Assert.That(counts.ToString(), Is.EqualTo(new TrafficCounts { CopiesFromHost = 1, CopiesToHost = 1 }.ToString()),
            "top-k: the labels up, the per-sample flags down (its result is a host integer)");
    }

    /// <summary>Counts of host↔device traffic, kept by a backend observer: every Synchronize through the backend's
    /// contract and every CopyToHost / CopyFromHost of one of its buffers.</summary>
    internal sealed class TrafficCounts : IBackendObserver
    {
        public int Synchronizations, CopiesToHost, CopiesFromHost;

        public void Reset() => Synchronizations = CopiesToHost = CopiesFromHost = 0;

        public void OnSynchronize() => Synchronizations++;

        public void OnCopyToHost(long elements) => CopiesToHost++;

        public void OnCopyFromHost(long elements) => CopiesFromHost++;

        public override string ToString() =>
            $"Synchronize {Synchronizations}, CopyToHost {CopiesToHost}, CopyFromHost {CopiesFromHost}";
    }
}
