// The gradient check itself: it must fail on a deliberately wrong backward (full and fast mode), pass on correct
// ones in fast mode, and reject inputs it cannot check.
using Engine.Core;
using Engine.Core.Autograd;
using NUnit.Framework;

namespace Engine.Tests.Core;

public sealed class GradCheckTests(string kind) : DeviceFixture(kind)
{
    /// <summary>x² whose backward wrongly returns dy ⊙ x instead of 2·dy ⊙ x.</summary>
    private static Tensor<double> SquareWithWrongBackward(Tensor<double> x)
    {
        Tensor<double> y;
        using (GradMode.NoGrad()) y = x * x;
        return Graph.Record(y, "wrong square", [x], dy => [dy * x]);
    }

    [TestCase(GradCheckMode.Full)]
    [TestCase(GradCheckMode.Fast)]
    public void DeliberatelyWrongBackwardIsCaught(GradCheckMode mode)
    {
        var x = Variable([3, 4], 1);
        var result = GradCheck.Run(() => SquareWithWrongBackward(x), [x],
            new GradCheckOptions { Mode = mode, InputNames = ["x"] });
        Assert.That(result.Passed, Is.False, result.ToString());
        Assert.That(result.MaxRelativeError, Is.GreaterThan(0.3));
        Assert.That(result.WorstLocation, Does.Contain(mode == GradCheckMode.Full ? "x element" : "direction"));
        var error = Assert.Throws<GradCheckException>(() => result.EnsurePassed())!;
        Assert.That(error.Message, Does.Contain("FAILED"));
    }

    [Test]
    public void CorrectBackwardPassesInFastMode()
    {
        var x = Variable([2, 3, 4, 4], 2);
        var w = Variable([2, 3, 4, 4], 3);
        var result = GradCheck.Run(() => ((x * w).Relu() + x).Scale(0.5), [x, w],
            new GradCheckOptions { Mode = GradCheckMode.Fast, Directions = 6 });
        Assert.That(result.Passed, Is.True, result.ToString());
        Assert.That(result.Comparisons, Is.EqualTo(6));
    }

    [Test]
    public void InputsLeftUnchanged()
    {
        var x = Variable([5], 4);
        var before = x.ToArray();
        GradCheck.Run(() => x * x, [x]).EnsurePassed();
        Assert.That(x.ToArray(), Is.EqualTo(before));
        GradCheck.Run(() => x * x, [x], new GradCheckOptions { Mode = GradCheckMode.Fast }).EnsurePassed();
        Assert.That(x.ToArray(), Is.EqualTo(before));
    }

    [Test]
    public void InputsThatAreNotLeavesRequiringGradAreRejected()
    {
        var x = Variable([3], 5);
        var constant = Normal<double>([3], 6);
        Assert.Throws<ArgumentException>(() => GradCheck.Run(() => x * constant, [constant]));
        Assert.Throws<ArgumentException>(() => GradCheck.Run(() => x * x, [x * x]));
    }
}
