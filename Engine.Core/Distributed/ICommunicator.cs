// The collective-communication interface of data-parallel training: every process ("rank") of a job holds one
// communicator, and all of them call the same collectives in the same order with tensors of the same shape.
//
// Implementations: SingleProcessCommunicator (a job of one: the ordinary case), MpiCommunicator (OpenMPI through
// P/Invoke, copying through host memory, so tensors may live on any device), NcclCommunicator (one rank per CUDA
// device, reducing device buffers in place, bootstrapped over MPI).
using System.Numerics;

namespace Engine.Core.Distributed;

/// <summary>The collectives one rank of a data-parallel job calls: all-reduce (sum or average), broadcast from a
/// root, and a barrier. Every rank must call the same collectives in the same order with tensors of the same shape
/// and element type; a collective returns once every rank has contributed. Use a communicator from one thread at a
/// time (a <see cref="Duplicate"/> may be used from another). Implementations: <see cref="SingleProcessCommunicator"/>, <see cref="MpiCommunicator"/>,
/// <see cref="NcclCommunicator"/>.</summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's index in the job, 0 ≤ Rank &lt; <see cref="Size"/>; rank 0 is the one that writes
    /// files and shows progress.</summary>
    int Rank { get; }

    /// <summary>Number of processes in the job (the world size).</summary>
    int Size { get; }

    /// <summary>Short name of the implementation: <c>single</c>, <c>mpi</c>, <c>nccl</c>.</summary>
    string Kind { get; }

    /// <summary>Replaces <paramref name="tensor"/>, on every rank, by the element-wise sum of every rank's tensor. An
    /// in-place write: refused, as every in-place write, on a tensor of a graph while grad mode is on.</summary>
    void AllReduceSum<T>(Tensor<T> tensor) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Replaces <paramref name="tensor"/>, on every rank, by the element-wise mean of every rank's tensor:
    /// the sum of <see cref="AllReduceSum{T}(Tensor{T})"/> divided by <see cref="Size"/>.</summary>
    void AllReduceAverage<T>(Tensor<T> tensor) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Replaces every tensor of <paramref name="bucket"/>, on every rank, by its element-wise mean over the
    /// ranks, as one message (a bucket of gradients: one collective instead of one per tensor). Every rank passes
    /// tensors of the same shapes in the same order.</summary>
    void AllReduceAverage<T>(IReadOnlyList<Tensor<T>> bucket) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Replaces <paramref name="data"/> (host memory), on every rank, by its element-wise mean over the
    /// ranks; the same sums, bit for bit, as <see cref="AllReduceAverage{T}(IReadOnlyList{Tensor{T}})"/> on tensors
    /// holding the same values one after another.</summary>
    void AllReduceAverage<T>(Span<T> data) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Overwrites <paramref name="tensor"/> on every rank with its values on rank <paramref name="root"/>
    /// (parameters at the start of training).</summary>
    void Broadcast<T>(Tensor<T> tensor, int root = 0) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>A new communicator over the same ranks whose collectives are independent of this one's (MPI_Comm_dup):
    /// one thread may run collectives on it while another runs this one's, each communicator keeping its own order
    /// (data-parallel training reduces gradient buckets on a communication thread while synchronised batch-norm
    /// reduces statistics on the main one). Every rank calls it at the same point; the caller disposes it before
    /// this one.</summary>
    /// <exception cref="NotSupportedException">The implementation cannot run collectives from two threads at once
    /// (the message says why).</exception>
    ICommunicator Duplicate();
}
