// The gradient average of data-parallel training, in buckets as PyTorch's DistributedDataParallel: the parameters,
// in reverse order (the order in which backward finishes their gradients), are grouped into buckets of at most
// BucketBytes (25 MiB by default, DDP's bucket_cap_mb), and each bucket is averaged with one collective.
//
// Overlap: the autograd walk (Tensor.Backward) has no per-leaf hook, so the buckets are reduced after backward
// returns, one after another; docs/distributed.md measures what this costs and what overlap could hide.
using System.Diagnostics;
using System.Numerics;

namespace Engine.Core.Distributed;

/// <summary>Averages the gradients of a fixed list of parameters over the ranks of a job, in buckets.</summary>
public sealed class GradientBuckets<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>PyTorch DDP's default bucket size: 25 MiB.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    private readonly ICommunicator _communicator;
    private readonly IReadOnlyList<(string Name, Tensor<T> Tensor)>[] _buckets;

    /// <summary>Groups <paramref name="parameters"/> (in the model's order) into buckets, last parameter first.</summary>
    /// <param name="communicator">The job.</param>
    /// <param name="parameters">Every trained parameter, by name, in the same order on every rank.</param>
    /// <param name="bucketBytes">Most bytes of one bucket (a larger parameter has a bucket of its own).</param>
    public GradientBuckets(ICommunicator communicator, IEnumerable<(string Name, Tensor<T> Tensor)> parameters,
        long bucketBytes = DefaultBucketBytes)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, 1);
        _communicator = communicator;
        int elementBytes = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        var buckets = new List<IReadOnlyList<(string, Tensor<T>)>>();
        var current = new List<(string, Tensor<T>)>();
        long bytes = 0;
        foreach (var parameter in parameters.Reverse())
        {
            long size = parameter.Tensor.Length * elementBytes;
            if (current.Count > 0 && bytes + size > bucketBytes)
            {
                buckets.Add(current);
                current = [];
                bytes = 0;
            }
            current.Add(parameter);
            bytes += size;
            BytesPerStep += size;
        }
        if (current.Count > 0) buckets.Add(current);
        _buckets = [.. buckets];
    }

    /// <summary>How many buckets (collectives per step).</summary>
    public int Count => _buckets.Length;

    /// <summary>Bytes of gradient each rank contributes per step (the reduced message length).</summary>
    public long BytesPerStep { get; }

    /// <summary>Wall time of the last <see cref="Average"/>, in seconds.</summary>
    public double LastSeconds { get; private set; }

    /// <summary>Replaces every parameter's gradient by its mean over the ranks, bucket by bucket.</summary>
    /// <exception cref="InvalidOperationException">A parameter has no gradient (every rank must reduce the same
    /// tensors).</exception>
    public void Average()
    {
        var clock = Stopwatch.StartNew();
        if (_communicator.Size > 1)
            foreach (var bucket in _buckets)
                _communicator.AllReduceAverage(bucket.Select(p => p.Tensor.Grad ?? throw new InvalidOperationException(
                    $"Parameter '{p.Name}' has no gradient after backward; data-parallel training reduces every " +
                    "parameter's gradient.")).ToList());
        LastSeconds = clock.Elapsed.TotalSeconds;
    }
}
