// The communicator of a job of one process: every collective is the identity, but validates its arguments as the
// multi-process ones do, so code that runs here runs unchanged under mpirun.
using System.Numerics;

namespace Engine.Core.Distributed;

/// <summary>A job of one process (rank 0 of 1): the collectives leave the data as it is, after the same checks as
/// in a multi-process job (a disposed tensor, an in-place write refused by grad mode, a root other than 0).</summary>
public sealed class SingleProcessCommunicator : HostCommunicator
{
    /// <summary>Always 0.</summary>
    public override int Rank => 0;

    /// <summary>Always 1.</summary>
    public override int Size => 1;

    /// <summary><c>single</c>.</summary>
    public override string Kind => "single";

    /// <summary>Leaves <paramref name="data"/> as it is: the sum over one rank.</summary>
    public override void AllReduceSum<T>(Span<T> data)
    {
    }

    /// <summary>Leaves <paramref name="data"/> as it is, after checking that <paramref name="root"/> is 0.</summary>
    public override void Broadcast<T>(Span<T> data, int root = 0) => CheckRoot(root);

    /// <summary>Returns at once.</summary>
    public override void Barrier()
    {
    }

    /// <summary>Another job of one.</summary>
    public override ICommunicator Duplicate() => new SingleProcessCommunicator();
}
