// The single-process communicator on every device: its collectives leave random non-zero data as it is, and
// refuse what a multi-process communicator refuses (a root other than 0, a disposed tensor, an in-place write to a
// leaf that requires grad while grad mode is on).
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Distributed;
using NUnit.Framework;

namespace Engine.Tests.Distributed;

public sealed class SingleProcessCommunicatorTests(string kind) : DeviceFixture(kind)
{
    [Test]
    public void CollectivesOfOneRankKeepTheData()
    {
        using var communicator = new SingleProcessCommunicator();
        Assert.That((communicator.Rank, communicator.Size, communicator.Kind), Is.EqualTo((0, 1, "single")));
        var x = Normal<float>([3, 5], seed: 1);
        var y = Normal<double>([7], seed: 2);
        var (xValues, yValues) = (x.ToArray(), y.ToArray());
        Assert.That(xValues, Has.None.EqualTo(0f));
        communicator.AllReduceSum(x);
        communicator.AllReduceAverage(x);
        communicator.Broadcast(x);
        communicator.AllReduceAverage(y);
        communicator.Barrier();
        var span = (double[])yValues.Clone();
        communicator.AllReduceAverage(span.AsSpan());
        Assert.That(x.ToArray(), Is.EqualTo(xValues));
        Assert.That(y.ToArray(), Is.EqualTo(yValues));
        Assert.That(span, Is.EqualTo(yValues));
    }

    [Test]
    public void InvalidCallsAreRefusedAsInAJobOfSeveral()
    {
        using var communicator = new SingleProcessCommunicator();
        var x = Normal<float>([4], seed: 3);
        var root = Assert.Throws<ArgumentOutOfRangeException>(() => communicator.Broadcast(x, root: 1))!;
        Assert.That(root.Message, Does.Contain("0 to 0"));

        var leaf = Normal<float>([4], seed: 4);
        leaf.RequiresGrad = true;
        var inPlace = Assert.Throws<InvalidOperationException>(() => communicator.AllReduceSum(leaf))!;
        Assert.That(inPlace.Message, Does.Contain("AllReduceSum").And.Contain("requires grad"));
        using (GradMode.NoGrad())
            communicator.AllReduceSum(leaf); // the usual way to write a parameter in place

        x.Dispose();
        Assert.Throws<ObjectDisposedException>(() => communicator.AllReduceAverage(x));
    }
}
