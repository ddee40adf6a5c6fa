// Reductions as ILGPU kernels: the sum of a whole buffer (sum and mean of a tensor, and their backward through
// BroadcastScalar in Elementwise.cs).
//
// Deterministic by construction: no atomics (ILGPU.Algorithms' Reduce ends in Atomic.Add, whose float results
// change from run to run) and no group barriers (which crawl on the CPU accelerator). Each pass has `partials`
// threads; thread t sums x[t], x[t + partials], … in a fixed order (coalesced on a GPU) and writes one partial.
// Every pass divides the length by at least FanIn, so 1M elements take 4 launches; the last pass scales by alpha.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

public static class ReductionKernels
{
    /// <summary>partial[t] = alpha * sum over i ≡ t (mod partial.Length) of x[i].</summary>
    public static void StridedSum<T>(Index1D thread, ArrayView<T> x, ArrayView<T> partial, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        long stride = partial.Length;
        T sum = T.Zero;
        for (long i = thread; i < x.Length; i += stride)
            sum += x[i];
        partial[thread] = alpha * sum;
    }
}

public sealed partial class IlgpuBackend
{
    /// <summary>Each pass sums at least this many elements per thread.</summary>
    private const int FanIn = 32;

    public void Sum<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Validate.Owned(this, "sum", nameof(x), x);
        Validate.Buffer(this, "sum", nameof(result), result, 1);
        if (x.Length == 0)
        {
            Fill(result, T.Zero);
            return;
        }

        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, T>>(
            nameof(ReductionKernels.StridedSum),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, T>(ReductionKernels.StridedSum));

        ArrayView<T> input = View(x);
        var scratch = Scratch<T>(PartialCount(x.Length));
        bool intoFirst = true;
        while (input.Length > 1)
        {
            long partials = PartialCount(input.Length);
            bool last = partials == 1;
            ArrayView<T> output = last ? View(result) : scratch[intoFirst ? 0 : 1].View.SubView(0, partials);
            kernel(_accelerator.DefaultStream, (int)partials, input, output, last ? alpha : T.One);
            input = output;
            intoFirst = !intoFirst;
        }

        if (x.Length == 1) Scale(x, alpha, result);
    }

    private long PartialCount(long n) => n <= FanIn ? 1 : Math.Min((n + FanIn - 1) / FanIn, _maxThreads);

    private readonly Dictionary<Type, object> _scratch = new();

    /// <summary>Two ping-pong buffers of at least <paramref name="length"/> elements, kept for reuse.</summary>
    private MemoryBuffer1D<T, Stride1D.Dense>[] Scratch<T>(long length) where T : unmanaged, IFloatingPointIeee754<T>
    {
        length = Math.Max(length, 1);
        if (_scratch.TryGetValue(typeof(T), out var found) &&
            found is MemoryBuffer1D<T, Stride1D.Dense>[] buffers && buffers[0].Length >= length)
            return buffers;
        if (found is MemoryBuffer1D<T, Stride1D.Dense>[] old)
            foreach (var buffer in old) buffer.Dispose();
        var fresh = new[] { _accelerator.Allocate1D<T>(length), _accelerator.Allocate1D<T>(length) };
        _scratch[typeof(T)] = fresh;
        return fresh;
    }
}
