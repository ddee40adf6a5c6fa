// The gradient average of data-parallel training, in buckets as PyTorch's DistributedDataParallel: the parameters,
// in reverse order (the order in which backward finishes their gradients), are grouped into buckets of at most
// BucketBytes (25 MiB by default, DDP's bucket_cap_mb), and each bucket is averaged with one collective on one host
// array holding its gradients one after another.
//
// Overlap with backward: a gradient-ready hook on every parameter (Tensor.RegisterGradReadyHook) counts the
// bucket's gradients as backward finishes them; once a bucket's are all final, and every bucket before it has been
// launched (buckets go out strictly in order, the same on every rank), the main thread copies them into the
// bucket's host array and hands it to a communication thread, which averages it on a duplicate of the communicator
// (ICommunicator.Duplicate: its own MPI communicator, so that synchronised batch-norm's collectives on the main
// thread keep their own order) while backward goes on. Average, after backward, launches what is left, waits for
// every bucket and copies the averages back into the gradients; the optimizer steps after it. The main thread alone
// touches the tensors (device buffers are never used from two threads); the communication thread touches only host
// arrays. Each bucket's sum is the same collective on the same array as without overlap, so the gradients are the
// same bits either way. Where the communicator cannot be duplicated (NCCL; MPI without MPI_THREAD_MULTIPLE) every
// bucket is averaged inside Average, and OverlapUnavailableReason says why.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;

namespace Engine.Core.Distributed;

/// <summary>Averages the gradients of a fixed list of parameters over the ranks of a job, in buckets, overlapping
/// the collectives with backward where the communicator allows. Call <see cref="Average"/> after each backward, before
/// the optimizer step; dispose it to remove its hooks and stop its communication thread.</summary>
public sealed class GradientBuckets<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>PyTorch DDP's default bucket size: 25 MiB.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    private readonly ICommunicator _communicator;
    private readonly Bucket[] _buckets;
    private readonly List<IDisposable> _hooks = [];
    private readonly ICommunicator? _channel; // the duplicate the communication thread reduces on
    private readonly Thread? _thread;
    private readonly BlockingCollection<Bucket> _queue = new();
    private int _launched; // buckets launched in this step (always a prefix of _buckets)
    private long _averageStarted; // Stopwatch timestamp of this step's Average call
    private bool _disposed;

    /// <summary>One bucket: its parameters, their host copy, and the state of the step under way.</summary>
    private sealed class Bucket(int index, (string Name, Tensor<T> Tensor)[] parameters, long length)
    {
        public int Index { get; } = index;
        public (string Name, Tensor<T> Tensor)[] Parameters { get; } = parameters;
        public T[] Host { get; } = new T[length];
        public int Pending; // gradients not yet final in this step
        public readonly ManualResetEventSlim Done = new(false);
        public long Started, Finished; // Stopwatch timestamps of the collective
        public Exception? Error;
    }

    /// <summary>Groups <paramref name="parameters"/> (in the model's order) into buckets, last parameter first, and,
    /// when <paramref name="overlap"/> and the job has several ranks, duplicates the communicator for a communication
    /// thread and hooks every parameter.</summary>
    /// <param name="communicator">The job.</param>
    /// <param name="parameters">Every trained parameter, by name, in the same order on every rank: leaves that
    /// require grad.</param>
    /// <param name="bucketBytes">Most bytes of one bucket (a larger parameter has a bucket of its own).</param>
    /// <param name="overlap">Start each bucket's collective during backward, as soon as its gradients are final;
    /// false: all of them in <see cref="Average"/>. Every rank passes the same.</param>
    /// <exception cref="InvalidOperationException">With overlap, a parameter is not a leaf that requires grad.</exception>
    public GradientBuckets(ICommunicator communicator, IEnumerable<(string Name, Tensor<T> Tensor)> parameters,
        long bucketBytes = DefaultBucketBytes, bool overlap = true)
    {
        ArgumentNullException.ThrowIfNull(communicator);
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketBytes, 1);
        _communicator = communicator;
        int elementBytes = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        var buckets = new List<Bucket>();
        var current = new List<(string, Tensor<T>)>();
        long bytes = 0;
        foreach (var parameter in parameters.Reverse())
        {
            long size = parameter.Tensor.Length * elementBytes;
            if (current.Count > 0 && bytes + size > bucketBytes) Close();
            current.Add(parameter);
            bytes += size;
            BytesPerStep += size;
        }
        if (current.Count > 0) Close();
        _buckets = [.. buckets];

        if (communicator.Size == 1) OverlapUnavailableReason = "a job of one process reduces nothing.";
        else if (!overlap) OverlapUnavailableReason = "overlap was turned off.";
        else
        {
            try
            {
                _channel = communicator.Duplicate();
            }
            catch (NotSupportedException error)
            {
                OverlapUnavailableReason = error.Message;
            }
        }
        ResetStep();
        if (_channel is null) return;
        try
        {
            foreach (var bucket in _buckets)
                foreach (var (_, tensor) in bucket.Parameters)
                    _hooks.Add(tensor.RegisterGradReadyHook(_ => GradientReady(bucket)));
        }
        catch
        {
            foreach (var hook in _hooks) hook.Dispose();
            _channel.Dispose();
            throw;
        }
        _thread = new Thread(Communicate) { IsBackground = true, Name = "gradient all-reduce" };
        _thread.Start();

        void Close()
        {
            buckets.Add(new Bucket(buckets.Count, [.. current], bytes / elementBytes));
            current = [];
            bytes = 0;
        }
    }

    /// <summary>How many buckets (collectives per step).</summary>
    public int Count => _buckets.Length;

    /// <summary>Bytes of gradient each rank contributes per step (the reduced message length).</summary>
    public long BytesPerStep { get; }

    /// <summary>True when the collectives run during backward on a communication thread.</summary>
    public bool Overlaps => _thread is not null;

    /// <summary>Why the collectives do not overlap backward (null when they do).</summary>
    public string? OverlapUnavailableReason { get; }

    /// <summary>Wall time of the last <see cref="Average"/>, in seconds: the part of the gradient average that the
    /// step waits for (exposed).</summary>
    public double LastSeconds { get; private set; }

    /// <summary>Time the last step's collectives ran before <see cref="Average"/> was called, in seconds: hidden
    /// behind backward (0 without overlap).</summary>
    public double LastHiddenSeconds { get; private set; }

    /// <summary>Time the last step's collectives ran in all, in seconds (hidden and exposed).</summary>
    public double LastCollectiveSeconds { get; private set; }

    /// <summary>Replaces every parameter's gradient by its mean over the ranks: launches the buckets backward has
    /// not launched, waits for all of them and copies the means into the gradients.</summary>
    /// <exception cref="InvalidOperationException">A parameter has no gradient (every rank must reduce the same
    /// tensors).</exception>
    public void Average()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _averageStarted = Stopwatch.GetTimestamp();
        if (_communicator.Size == 1)
        {
            LastSeconds = LastHiddenSeconds = LastCollectiveSeconds = 0;
            return;
        }
        try
        {
            while (_launched < _buckets.Length) Launch(_buckets[_launched]);
            double hidden = 0, total = 0;
            foreach (var bucket in _buckets)
            {
                bucket.Done.Wait();
                if (bucket.Error is { } error)
                    throw new InvalidOperationException($"The all-reduce of gradient bucket {bucket.Index} failed: {error.Message}", error);
                long offset = 0;
                foreach (var (_, tensor) in bucket.Parameters)
                {
                    tensor.Grad!.Buffer.CopyFromHost(bucket.Host.AsSpan((int)offset, (int)tensor.Length));
                    offset += tensor.Length;
                }
                total += Stopwatch.GetElapsedTime(bucket.Started, bucket.Finished).TotalSeconds;
                hidden += Stopwatch.GetElapsedTime(bucket.Started, Math.Max(bucket.Started, Math.Min(bucket.Finished, _averageStarted))).TotalSeconds;
            }
            LastHiddenSeconds = hidden;
            LastCollectiveSeconds = total;
        }
        finally
        {
            ResetStep();
            LastSeconds = Stopwatch.GetElapsedTime(_averageStarted).TotalSeconds;
        }
    }

    /// <summary>The hook of every parameter of <paramref name="bucket"/>: counts the gradient, and launches every
    /// bucket from the next one in order whose gradients are all final.</summary>
    private void GradientReady(Bucket bucket)
    {
        if (--bucket.Pending < 0)
            throw new InvalidOperationException(
                "A gradient of a data-parallel bucket was finished twice before GradientBuckets.Average: with overlap, " +
                "call Average after every backward (gradients accumulated over several backward passes would be " +
                "reduced before they are complete).");
        while (_launched < _buckets.Length && _buckets[_launched].Pending == 0) Launch(_buckets[_launched]);
    }

    /// <summary>Copies the bucket's gradients into its host array, then averages it: on the communication thread
    /// when overlapping, here otherwise.</summary>
    private void Launch(Bucket bucket)
    {
        long offset = 0;
        foreach (var (name, tensor) in bucket.Parameters)
        {
            var grad = tensor.Grad ?? throw new InvalidOperationException(
                $"Parameter '{name}' has no gradient after backward; data-parallel training reduces every parameter's " +
                "gradient.");
            grad.Buffer.CopyToHost(bucket.Host.AsSpan((int)offset, (int)tensor.Length));
            offset += tensor.Length;
        }
        _launched++;
        if (_thread is not null)
        {
            _queue.Add(bucket);
            return;
        }
        Reduce(bucket, _communicator);
    }

    /// <summary>The communication thread: averages the launched buckets in order, until disposal.</summary>
    private void Communicate()
    {
        foreach (var bucket in _queue.GetConsumingEnumerable())
            Reduce(bucket, _channel!);
    }

    private static void Reduce(Bucket bucket, ICommunicator communicator)
    {
        bucket.Started = Stopwatch.GetTimestamp();
        try
        {
            communicator.AllReduceAverage(bucket.Host.AsSpan());
        }
        catch (Exception error)
        {
            bucket.Error = error;
        }
        bucket.Finished = Stopwatch.GetTimestamp();
        bucket.Done.Set();
    }

    /// <summary>Ready for the next step's backward: no bucket launched, every gradient pending.</summary>
    private void ResetStep()
    {
        _launched = 0;
        foreach (var bucket in _buckets)
        {
            bucket.Pending = bucket.Parameters.Length;
            bucket.Error = null;
            bucket.Done.Reset();
        }
    }

    /// <summary>Removes the hooks, stops the communication thread (after the buckets it was given) and frees the
    /// duplicated communicator.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var hook in _hooks) hook.Dispose();
        _queue.CompleteAdding();
        _thread?.Join();
        _channel?.Dispose();
        _queue.Dispose();
        foreach (var bucket in _buckets) bucket.Done.Dispose();
    }
}
