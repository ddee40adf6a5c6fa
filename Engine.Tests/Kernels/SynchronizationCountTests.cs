// Host↔device traffic of one ResNet-20 training step, counted by a decorator around the backend: every
// Synchronize through IBackend and every CopyToHost / CopyFromHost on a buffer it allocated. On the ILGPU backends
// each copy also synchronises the device, so these counts bound the step's host synchronisations. The decorator
// sees what Engine.Core asks of the backend, not copies a backend might make of its own buffers internally; the
// loss and top-k ops of every backend make none (their labels are checked on the host before upload).
using System.Reflection;
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
        using var device = Device.FromBackend(CountingBackend.Wrap(Backends.Create(Kind), counts));
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

    /// <summary>Counts of host↔device traffic through a <see cref="CountingBackend"/>.</summary>
    internal sealed class TrafficCounts
    {
        public int Synchronizations, CopiesToHost, CopiesFromHost;

        public void Reset() => Synchronizations = CopiesToHost = CopiesFromHost = 0;

        public override string ToString() =>
            $"Synchronize {Synchronizations}, CopyToHost {CopiesToHost}, CopyFromHost {CopiesFromHost}";
    }

    /// <summary>The inner buffer behind a <see cref="CountingBuffer{T}"/>, whatever its element type.</summary>
    private interface IWrappedBuffer
    {
        object Inner { get; }
    }

    /// <summary>A buffer of the inner backend, presented as the counting backend's, counting host copies.</summary>
    private sealed class CountingBuffer<T>(DeviceBuffer<T> inner, IBackend owner, TrafficCounts counts)
        : DeviceBuffer<T>, IWrappedBuffer where T : unmanaged
    {
        public object Inner => inner;
        public override long Length => inner.Length;
        public override IBackend Backend => owner;
        public override bool IsDisposed => inner.IsDisposed;

        public override void CopyFromHost(ReadOnlySpan<T> source)
        {
            counts.CopiesFromHost++;
            inner.CopyFromHost(source);
        }

        public override void CopyToHost(Span<T> destination)
        {
            counts.CopiesToHost++;
            inner.CopyToHost(destination);
        }

        public override void Dispose() => inner.Dispose();
    }

    /// <summary>An <see cref="IBackend"/> that forwards every op to an inner backend (unwrapping its buffers) and
    /// counts Synchronize calls; Allocate hands out <see cref="CountingBuffer{T}"/>s.</summary>
    internal class CountingBackend : DispatchProxy
    {
        private IBackend _inner = null!;
        private TrafficCounts _counts = null!;

        internal static IBackend Wrap(IBackend inner, TrafficCounts counts)
        {
            var proxy = Create<IBackend, CountingBackend>();
            var self = (CountingBackend)(object)proxy;
            self._inner = inner;
            self._counts = counts;
            return proxy;
        }

        /// <summary>Forwards <paramref name="method"/> to the inner backend.</summary>
        protected override object? Invoke(MethodInfo? method, object?[]? args)
        {
            ArgumentNullException.ThrowIfNull(method);
            args ??= [];
            if (method.Name == nameof(IBackend.Synchronize)) _counts.Synchronizations++;
            var unwrapped = args.Select(arg => arg is IWrappedBuffer wrapped ? wrapped.Inner : arg).ToArray();
            object? result;
            try
            {
                result = method.Invoke(_inner, unwrapped);
            }
            catch (TargetInvocationException error) when (error.InnerException is not null)
            {
                throw error.InnerException;
            }
            if (method.Name != nameof(IBackend.Allocate)) return result;
            var bufferType = typeof(CountingBuffer<>).MakeGenericType(method.GetGenericArguments());
            return Activator.CreateInstance(bufferType, result, this, _counts);
        }
    }
}
