// Gradient-ready hooks (Tensor.RegisterGradReadyHook): called once per backward pass on each leaf that the pass
// gives a gradient, after its last contribution (a leaf used several times sees the sum, as its final Grad), before
// the walk reaches the leaves further down (the last layer's weight is ready while the first layer's has no
// gradient yet), with the earlier passes' gradient accumulated; not called on a leaf the pass does not reach;
// removable; refused on a tensor that is not a leaf requiring grad.
using Engine.Core;
using NUnit.Framework;

namespace Engine.Tests.Core;

public sealed class GradReadyHookTests(string kind) : DeviceFixture(kind)
{
    [Test]
    public void LeafUsedSeveralTimesIsCalledOnceWithItsFinalGradient()
    {
        // z = Σ relu(x ⊙ w) ⊙ w + Σ w ⊙ w: w reaches z through three uses on two paths.
        var x = Variable([12], 1);
        var w = Variable([12], 2);
        var seen = new List<double[]>();
        using var hook = w.RegisterGradReadyHook(leaf => seen.Add(leaf.Grad!.ToArray()));
        (((x * w).Relu() * w).Sum() + (w * w).Sum()).Backward();
        Assert.That(seen, Has.Count.EqualTo(1), "one call per pass");
        double[] xs = x.ToArray(), ws = w.ToArray();
        // d/dw [relu(x w) w] = relu(x w) + w · x · [x w > 0]; d/dw [w²] = 2w.
        var expected = xs.Select((xi, i) => xi * ws[i] > 0 ? 2 * xi * ws[i] + 2 * ws[i] : 2 * ws[i]).ToArray();
        Reference.AssertClose(expected, seen[0], 1e-12, 1e-12, "the gradient the hook saw");
        Assert.That(seen[0], Is.EqualTo(w.Grad!.ToArray()), "the hook saw the final Grad, bit for bit");
    }

    [Test]
    public void HooksFireFromTheLastLayerDownBeforeTheWalkReachesTheFirst()
    {
        var x = Variable([6], 3);
        var w1 = Variable([6], 4);
        var w2 = Variable([6], 5);
        var w3 = Variable([6], 6);
        var order = new List<string>();
        bool firstHadGradient = true;
        using var h1 = w1.RegisterGradReadyHook(_ => order.Add("w1"));
        using var h2 = w2.RegisterGradReadyHook(_ => order.Add("w2"));
        using var h3 = w3.RegisterGradReadyHook(_ =>
        {
            order.Add("w3");
            firstHadGradient = w1.Grad is not null;
        });
        (((x * w1).Relu() * w2).Relu() * w3).Sum().Backward();
        Assert.That(order, Is.EqualTo(new[] { "w3", "w2", "w1" }));
        Assert.That(firstHadGradient, Is.False, "w3's hook ran before the walk reached w1");
    }

    [Test]
    public void SecondPassSeesTheAccumulatedGradientAndUnreachedLeavesAreNotCalled()
    {
        var x = Variable([5], 7);
        var unused = Variable([5], 8);
        var calls = new List<double[]>();
        int unusedCalls = 0;
        using var hook = x.RegisterGradReadyHook(leaf => calls.Add(leaf.Grad!.ToArray()));
        using var other = unused.RegisterGradReadyHook(_ => unusedCalls++);
        (x * 3.0).Sum().Backward();
        (x * 3.0).Sum().Backward();
        Assert.That(calls.Select(grad => grad.Distinct().Single()), Is.EqualTo(new[] { 3.0, 6.0 }));
        Assert.That(unusedCalls, Is.Zero, "a leaf outside the graph gets no gradient and no call");
    }

    [Test]
    public void DisposedHookIsNotCalledAndOnlyLeavesRequiringGradTakeOne()
    {
        var x = Variable([4], 9);
        int calls = 0;
        var hook = x.RegisterGradReadyHook(_ => calls++);
        (x * 2.0).Sum().Backward();
        hook.Dispose();
        hook.Dispose(); // a second Dispose does nothing
        (x * 2.0).Sum().Backward();
        Assert.That(calls, Is.EqualTo(1));

        var intermediate = x * 2.0;
        Assert.That(() => intermediate.RegisterGradReadyHook(_ => { }),
            Throws.InvalidOperationException.With.Message.Contains("was produced by 'scale'"));
        var constant = Tensor.Zeros<double>([4], Device);
        Assert.That(() => constant.RegisterGradReadyHook(_ => { }),
            Throws.InvalidOperationException.With.Message.Contains("does not require grad"));
    }
}
