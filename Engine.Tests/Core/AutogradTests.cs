// Autograd: reused intermediates, accumulation into leaves, output gradients, no-grad, graph release, deep
// graphs, kernels loaded once, and memory that stays flat over thousands of training-like steps.
using Engine.Core;
using Engine.Core.Autograd;
using NUnit.Framework;

namespace Engine.Tests.Core;

public sealed class AutogradTests(string kind) : DeviceFixture(kind)
{
    [Test]
    public void IntermediateUsedTwiceReceivesBothGradients()
    {
        // z = y ⊙ y + y with y = x ⊙ w: dz/dx = (2y + 1) ⊙ w, dz/dw = (2y + 1) ⊙ x.
        var x = Variable([10], 1);
        var w = Variable([10], 2);
        var y = x * w;
        (y * y + y).Sum().Backward();
        double[] xs = x.ToArray(), ws = w.ToArray();
        var expectedDx = xs.Select((xi, i) => (2 * xi * ws[i] + 1) * ws[i]).ToArray();
        var expectedDw = xs.Select((xi, i) => (2 * xi * ws[i] + 1) * xi).ToArray();
        Reference.AssertClose(expectedDx, x.Grad!.ToArray(), 1e-12, 1e-12, "dz/dx");
        Reference.AssertClose(expectedDw, w.Grad!.ToArray(), 1e-12, 1e-12, "dz/dw");
        GradCheck.Run(() => { var t = x * w; return t * t + t; }, [x, w]).EnsurePassed();
    }

    [Test]
    public void LeafGradientsAccumulateAcrossBackwardCalls()
    {
        var x = Variable([5], 3);
        (x * 3.0).Sum().Backward();
        (x * 3.0).Sum().Backward();
        Assert.That(x.Grad!.ToArray(), Is.All.EqualTo(6.0));
        x.ZeroGrad();
        Assert.That(x.Grad, Is.Null);
    }

    [Test]
    public void TensorUsedTwiceInOneOpGetsBothContributions()
    {
        var x = Variable([4], 4);
        (x + x).Sum().Backward();
        Assert.That(x.Grad!.ToArray(), Is.All.EqualTo(2.0));
    }

    [Test]
    public void BackwardWithAGivenOutputGradient()
    {
        var x = Variable([2, 3], 5);
        var g = Normal<double>([2, 3], 6);
        x.Scale(-2.0).Backward(g);
        Reference.AssertClose(g.ToArray().Select(v => -2 * v).ToArray(), x.Grad!.ToArray(), 0, 0, "dx");
    }

    [Test]
    public void BackwardFromANonScalarWithoutGradientIsRejected()
    {
        var x = Variable([2, 3], 7);
        var error = Assert.Throws<InvalidOperationException>(() => x.Relu().Backward())!;
        Assert.That(error.Message, Does.Contain("[2, 3]"));
        var badGrad = Normal<double>([3, 2], 8);
        Assert.Throws<ArgumentException>(() => x.Relu().Backward(badGrad));
    }

    [Test]
    public void SecondBackwardThroughAReleasedGraphIsRejected()
    {
        var x = Variable([3], 9);
        var loss = (x * x).Sum();
        loss.Backward();
        var error = Assert.Throws<InvalidOperationException>(() => loss.Backward())!;
        Assert.That(error.Message, Does.Contain("second time"));
    }

    [Test]
    public void NoGradRecordsNothing()
    {
        var x = Variable([3], 10);
        using (GradMode.NoGrad())
        {
            var y = (x * x).Sum();
            Assert.That(y.RequiresGrad, Is.False);
            Assert.That(y.IsLeaf, Is.True);
        }
        Assert.That((x * x).RequiresGrad, Is.True);
    }

    [Test]
    public void LeavesThatDoNotRequireGradGetNoGradient()
    {
        var x = Variable([3], 11);
        var constant = Normal<double>([3], 12);
        (x * constant).Sum().Backward();
        Assert.That(constant.Grad, Is.Null);
        Reference.AssertClose(constant.ToArray(), x.Grad!.ToArray(), 0, 0, "dx");
    }

    [Test]
    public void DeepChainBackpropagatesWithoutRecursion()
    {
        var x = Variable([2], 13);
        var y = x;
        for (int i = 0; i < 3000; i++) y = y.Clone();
        y.Sum().Backward();
        Assert.That(x.Grad!.ToArray(), Is.All.EqualTo(1.0));
    }

    [Test]
    public void KernelsAreLoadedOnceAndMemoryStaysFlatOverThousandsOfSteps()
    {
        var w = Variable([4, 8], 14);
        var x = Normal<double>([4, 8], 15);
        void Step()
        {
            using var scope = TensorScope.Begin();
            var loss = ((x * w).Relu() + w).Mean();
            loss.Backward();
            using (GradMode.NoGrad()) w.CopyFrom(w - w.Grad! * 0.01);
            w.ZeroGrad();
        }

        Step();
        int kernels = Device.Backend.LoadedKernelCount;
        long live = Device.LiveBuffers, pooled = Device.PooledBuffers;
        for (int i = 0; i < 2000; i++) Step();
        Assert.That(Device.Backend.LoadedKernelCount, Is.EqualTo(kernels), "kernels loaded after the first step");
        Assert.That(Device.LiveBuffers, Is.EqualTo(live), "live buffers");
        Assert.That(Device.PooledBuffers, Is.EqualTo(pooled), "pooled buffers");
    }

    [Test]
    public void InPlaceWriteToASavedTensorIsCaughtAtBackward()
    {
        var x = Normal<double>([3], 20);
        var w = Variable([3], 21);
        var y = x * w;                      // multiply saves x for dw
        x.Fill(100);                        // a constant, so the write itself is allowed
        var error = Assert.Throws<InvalidOperationException>(() => y.Sum().Backward())!;
        Assert.That(error.Message, Does.Contain("modified in place").And.Contain("multiply"));
    }

    [Test]
    public void IntermediateDisposedBeforeBackwardIsReported()
    {
        var x = Variable([3], 22);
        var a = x.Scale(2.0);
        var b = a + x;
        a.Dispose();
        var error = Assert.Throws<InvalidOperationException>(() => b.Sum().Backward())!;
        Assert.That(error.Message, Does.Contain("disposed before Backward"));
    }

    [Test]
    public void ScopeDisposesWhatItCreatedExceptKeptTensors()
    {
        long before = Device.LiveBuffers;
        Tensor<float> kept, dropped;
        using (var scope = TensorScope.Begin())
        {
            kept = scope.Keep(Normal<float>([16], 1));
            dropped = Normal<float>([16], 2);
        }
        Assert.That(dropped.IsDisposed, Is.True);
        Assert.That(kept.IsDisposed, Is.False);
        Assert.That(Device.LiveBuffers, Is.EqualTo(before + 1));
        Assert.Throws<ObjectDisposedException>(() => dropped.ToArray());
    }
}
