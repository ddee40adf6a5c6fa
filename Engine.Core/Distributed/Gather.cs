// Every rank's few values, on every rank, from the interface's one reduction: rank r writes its values into row r
// of a zero matrix and the matrix is summed over the ranks. Adding zeros is exact, so each row arrives with its
// rank's bits; the ranks then combine the rows themselves, in rank order and in float64, all in the same way (the
// statistics of synchronised batch-norm, a step's loss and accuracy, the start-of-run consistency check).
using System.Numerics;
using Engine.Core.Autograd;

namespace Engine.Core.Distributed;

/// <summary>Gathers small per-rank vectors to every rank through <see cref="ICommunicator.AllReduceSum{T}"/>.</summary>
public static class Gather
{
    /// <summary>Returns a Size × <paramref name="own"/>.Length array whose row r holds rank r's
    /// <paramref name="own"/>, bit for bit, on every rank. Every rank passes the same length.</summary>
    /// <param name="communicator">The job.</param>
    /// <param name="own">This rank's values.</param>
    /// <param name="device">Where the one tensor of the reduction lives (the model's device).</param>
    public static T[][] ToAll<T>(ICommunicator communicator, ReadOnlySpan<T> own, Device device)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(communicator);
        int size = communicator.Size, length = own.Length;
        if (size == 1) return [own.ToArray()];
        var matrix = new T[size * length];
        own.CopyTo(matrix.AsSpan(communicator.Rank * length, length));
        using (GradMode.NoGrad())
        using (var tensor = Tensor.FromArray(matrix, [matrix.Length], device))
        {
            communicator.AllReduceSum(tensor);
            matrix = tensor.ToArray();
        }
        return Enumerable.Range(0, size).Select(rank => matrix.AsSpan(rank * length, length).ToArray()).ToArray();
    }
}
