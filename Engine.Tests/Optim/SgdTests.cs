// SGD's host-side checks on every backend: hyper-parameters that mean nothing (negative, infinite, NaN) are
// rejected naming the one at fault, also when a schedule sets the learning rate; and a step refuses a disposed
// parameter instead of silently skipping it.
using Engine.Core.Optim;
using NUnit.Framework;

namespace Engine.Tests.Optim;

public sealed class SgdTests(string kind) : DeviceFixture(kind)
{
    [TestCase("learningRate", "learning rate", double.PositiveInfinity, 0.0, 0.0, 0.0)]
    [TestCase("learningRate", "learning rate", double.NaN, 0.0, 0.0, 0.0)]
    [TestCase("learningRate", "learning rate", -0.1, 0.0, 0.0, 0.0)]
    [TestCase("momentum", "momentum", 0.1, double.PositiveInfinity, 0.0, 0.0)]
    [TestCase("momentum", "momentum", 0.1, -0.9, 0.0, 0.0)]
    [TestCase("dampening", "dampening", 0.1, 0.9, double.NaN, 0.0)]
    [TestCase("dampening", "dampening", 0.1, 0.9, -1.0, 0.0)]
    [TestCase("weightDecay", "weight decay", 0.1, 0.9, 0.0, double.PositiveInfinity)]
    [TestCase("weightDecay", "weight decay", 0.1, 0.9, 0.0, -1e-4)]
    public void HyperParametersOutOfRangeAreRejected(string name, string words, double lr, double momentum,
        double dampening, double weightDecay)
    {
        var w = Variable([3], 1);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new Sgd<double>([w], lr, momentum, dampening, weightDecay))!;
        Assert.That(error.ParamName, Is.EqualTo(name));
        Assert.That(error.Message, Does.StartWith($"SGD: the {words} must be finite and ≥ 0"));
    }

    [TestCase(double.PositiveInfinity)]
    [TestCase(double.NaN)]
    [TestCase(-1.0)]
    public void ScheduleCannotSetAMeaninglessLearningRate(double lr)
    {
        var w = Variable([3], 2);
        using var sgd = new Sgd<double>([w], 0.1, momentum: 0.9);
        Assert.Throws<ArgumentOutOfRangeException>(() => sgd.LearningRate = lr);
        Assert.That(sgd.LearningRate, Is.EqualTo(0.1), "a rejected rate leaves the old one");
    }

    [Test]
    public void StepRefusesADisposedParameter()
    {
        var kept = Variable([3], 3);
        var disposed = Variable([2, 2], 4);
        using var sgd = new Sgd<double>([kept, disposed], 0.1);
        (kept * kept).Sum().Backward();
        double[] before = kept.ToArray();
        disposed.Dispose();
        var error = Assert.Throws<ObjectDisposedException>(() => sgd.Step())!;
        Assert.That(error.Message, Does.Contain("parameter 1 ([2, 2]) has been disposed"));
        Assert.That(kept.ToArray(), Is.EqualTo(before), "no parameter is updated by a refused step");
    }
}
