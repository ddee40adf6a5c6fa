// The base of communicators that work on host memory (MPI): tensors are copied to a reused host staging array,
// reduced there, and copied back, so they may live on any device. The span overloads are the collectives proper;
// the tensor overloads validate, stage and call them. A job of one moves no data at all.
using System.Numerics;

namespace Engine.Core.Distributed;

/// <summary>A communicator whose collectives run on host memory; tensors on any device are copied through the
/// host. Derived classes implement the span collectives.</summary>
public abstract class HostCommunicator : ICommunicator
{
    private readonly Dictionary<Type, Array> _staging = [];

    /// <inheritdoc/>
    public abstract int Rank { get; }

    /// <inheritdoc/>
    public abstract int Size { get; }

    /// <inheritdoc/>
    public abstract string Kind { get; }

    /// <summary>Replaces <paramref name="data"/>, on every rank, by the element-wise sum over the ranks.</summary>
    public abstract void AllReduceSum<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Overwrites <paramref name="data"/> on every rank with its values on rank <paramref name="root"/>.</summary>
    public abstract void Broadcast<T>(Span<T> data, int root = 0) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <inheritdoc/>
    public abstract void Barrier();

    /// <inheritdoc/>
    public abstract ICommunicator Duplicate();

    /// <summary>Replaces <paramref name="data"/>, on every rank, by the element-wise mean over the ranks: the sum,
    /// then each element divided by <see cref="Size"/> (the same division on every rank, so every rank holds the
    /// same bits).</summary>
    public void AllReduceAverage<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T>
    {
        AllReduceSum(data);
        if (Size == 1) return;
        var size = T.CreateChecked(Size);
        foreach (ref var value in data) value /= size;
    }

    /// <inheritdoc/>
    public void AllReduceSum<T>(Tensor<T> tensor) where T : unmanaged, IFloatingPointIeee754<T> =>
        Staged(tensor, "AllReduceSum", AllReduceSum);

    /// <inheritdoc/>
    public void AllReduceAverage<T>(Tensor<T> tensor) where T : unmanaged, IFloatingPointIeee754<T> =>
        Staged(tensor, "AllReduceAverage", AllReduceAverage);

    /// <summary>Copies the tensors one after another into one host array, averages it with one collective and copies
    /// each part back.</summary>
    public void AllReduceAverage<T>(IReadOnlyList<Tensor<T>> bucket) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(bucket);
        long total = 0;
        foreach (var tensor in bucket)
        {
            ArgumentNullException.ThrowIfNull(tensor, nameof(bucket));
            _ = tensor.Buffer; // throws ObjectDisposedException on a disposed tensor
            tensor.CheckInPlace("AllReduceAverage");
            total += tensor.Length;
        }
        if (Size == 1 || total == 0) return;
        if (total > Array.MaxLength)
            throw new ArgumentException($"A bucket of {total:N0} elements is too long for one host array.", nameof(bucket));
        var host = Staging<T>(new Shape((int)total));
        int offset = 0;
        foreach (var tensor in bucket)
        {
            tensor.Buffer.CopyToHost(host.Slice(offset, (int)tensor.Length));
            offset += (int)tensor.Length;
        }
        AllReduceAverage(host);
        offset = 0;
        foreach (var tensor in bucket)
        {
            tensor.Buffer.CopyFromHost(host.Slice(offset, (int)tensor.Length));
            offset += (int)tensor.Length;
        }
    }

    /// <inheritdoc/>
    public void Broadcast<T>(Tensor<T> tensor, int root = 0) where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckRoot(root);
        Staged(tensor, "Broadcast", data => Broadcast(data, root));
    }

    /// <summary>Releases what the implementation holds (the MPI library's state).</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>Throws ArgumentOutOfRangeException unless <paramref name="root"/> is a rank of this job.</summary>
    protected void CheckRoot(int root)
    {
        if (root < 0 || root >= Size)
            throw new ArgumentOutOfRangeException(nameof(root), root,
                $"The root of a broadcast must be a rank of this job, 0 to {Size - 1}.");
    }

    private delegate void SpanCollective<T>(Span<T> data);

    private void Staged<T>(Tensor<T> tensor, string op, SpanCollective<T> collective)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var buffer = tensor.Buffer; // throws ObjectDisposedException on a disposed tensor
        tensor.CheckInPlace(op);
        if (Size == 1) return;
        var host = Staging<T>(tensor.Shape);
        buffer.CopyToHost(host);
        collective(host);
        buffer.CopyFromHost(host);
    }

    /// <summary>A host span of the tensor's length, from an array kept per element type between calls (gradients
    /// are reduced every step: no new array each time).</summary>
    private Span<T> Staging<T>(Shape shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!_staging.TryGetValue(typeof(T), out var array) || array.Length < shape.Length)
            _staging[typeof(T)] = array = Tensor.HostArray<T>(shape);
        return ((T[])array).AsSpan(0, (int)shape.Length);
    }
}
