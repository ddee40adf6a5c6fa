// Adam and AdamW on every backend: several steps in float64 against plain-loop float64 references written here
// (PyTorch's single-tensor formulas), float32 against float64, per-parameter step counts (a parameter without a
// gradient is untouched and starts its own bias correction later), the checkpoint state continuing bit-identically,
// and bad hyper-parameters and buffers rejected on the host.
using Engine.Core;
using Engine.Core.Optim;
using Engine.Core.Serialization;
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests.Optim;

public sealed class AdamTests(string kind) : DeviceFixture(kind)
{
    private const int Length = 37; // not a multiple of any vector width: vector body and scalar tail

    /// <summary>Hyper-parameters of one reference run.</summary>
    public sealed record Hyper(double Lr, double Beta1, double Beta2, double Eps, double Wd, bool Amsgrad,
        bool Decoupled);

    /// <summary>Targets of the loss Σ(w − target)², shrinking so that gradients (and the second moment) fall and
    /// AMSGrad's maximum differs from the moment.</summary>
    private double[][] Targets(int steps, int seed) =>
        Enumerable.Range(0, steps)
            .Select(s => Normal<double>([Length], seed + s).ToArray().Select(v => v * 4 / (1 + 3 * s)).ToArray())
            .ToArray();

    /// <summary>torch.optim.Adam/AdamW step by step, plain loops in float64; also reports whether AMSGrad's maximum
    /// ever exceeded the current second moment (so that the case really exercises it).</summary>
    private static (double[] W, bool MaxMattered) ReferenceAdam(double[] w0, double[][] targets, Hyper h)
    {
        double[] w = (double[])w0.Clone(), m = new double[w.Length], v = new double[w.Length],
            vMax = new double[w.Length];
        bool maxMattered = false;
        for (int t = 1; t <= targets.Length; t++)
        {
            double bias1 = 1 - Math.Pow(h.Beta1, t), bias2Sqrt = Math.Sqrt(1 - Math.Pow(h.Beta2, t));
            for (int i = 0; i < w.Length; i++)
            {
                double g = 2 * (w[i] - targets[t - 1][i]);
                if (h.Decoupled) w[i] *= 1 - h.Lr * h.Wd;
                else g += h.Wd * w[i];
                m[i] = h.Beta1 * m[i] + (1 - h.Beta1) * g;
                v[i] = h.Beta2 * v[i] + (1 - h.Beta2) * g * g;
                double second = v[i];
                if (h.Amsgrad)
                {
                    maxMattered |= vMax[i] > v[i];
                    vMax[i] = Math.Max(vMax[i], v[i]);
                    second = vMax[i];
                }
                w[i] -= h.Lr / bias1 * m[i] / (Math.Sqrt(second) / bias2Sqrt + h.Eps);
            }
        }
        return (w, maxMattered);
    }

    private static Adam<T> Create<T>(Tensor<T> w, Hyper h) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        h.Decoupled
            ? new AdamW<T>([w], h.Lr, h.Beta1, h.Beta2, h.Eps, h.Wd, h.Amsgrad)
            : new Adam<T>([w], h.Lr, h.Beta1, h.Beta2, h.Eps, h.Wd, h.Amsgrad);

    /// <summary>Runs the engine's optimizer on Σ(w − target)² for every target.</summary>
    private static void Train<T>(Tensor<T> w, Optimizer<T> optimizer, IEnumerable<double[]> targets)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        foreach (var target in targets)
        {
            var t = Tensor.FromArray(target.Select(T.CreateChecked).ToArray(), [target.Length], w.Device);
            ((w - t) * (w - t)).Sum().Backward();
            optimizer.Step();
            optimizer.ZeroGrad();
        }
    }

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (bool decoupled in new[] { false, true })
            foreach (double wd in new[] { 0.0, 0.05 })
                foreach (bool amsgrad in new[] { false, true })
                    yield return new TestCaseData(new Hyper(0.05, 0.9, 0.99, 1e-8, wd, amsgrad, decoupled))
                        .SetArgDisplayNames($"{(decoupled ? "adamw" : "adam")} wd={wd} amsgrad={amsgrad}");
        yield return new TestCaseData(new Hyper(0.01, 0, 0.5, 1e-3, 0.1, true, false)).SetArgDisplayNames("adam beta1=0");
    }

    [TestCaseSource(nameof(Cases))]
    public void Float64MatchesPlainLoops(Hyper h)
    {
        var w = Variable([Length], 1);
        var targets = Targets(6, 10);
        var (expected, maxMattered) = ReferenceAdam(w.ToArray(), targets, h);
        if (h.Amsgrad) Assert.That(maxMattered, Is.True, "the maximum of the second moment differs from the moment");
        using var adam = Create(w, h);
        Train(w, adam, targets);
        Reference.AssertClose(expected, w.ToArray(), 1e-12, 1e-12, "adam float64");
        Assert.That(adam.StepCount(0), Is.EqualTo(6));
    }

    [TestCaseSource(nameof(Cases))]
    public void Float32MatchesFloat64Reference(Hyper h)
    {
        var w = Tensor.RandomNormal<float>([Length], 2, device: Device);
        w.RequiresGrad = true;
        var targets = Targets(6, 20);
        var (expected, _) = ReferenceAdam(Reference.ToDouble(w.ToArray()), targets, h);
        using var adam = Create(w, h);
        Train(w, adam, targets);
        Reference.AssertClose(expected, Reference.ToDouble(w.ToArray()), 1e-5, 1e-4, "adam float32");
    }

    [Test]
    public void ParameterWithoutGradientIsUntouchedAndCountsItsOwnSteps()
    {
        var used = Variable([Length], 3);
        var idle = Variable([Length], 4);
        var idleBefore = idle.ToArray();
        var h = new Hyper(0.02, 0.9, 0.999, 1e-8, 0.1, true, true);
        using var adam = new AdamW<double>([used, idle], h.Lr, h.Beta1, h.Beta2, h.Eps, h.Wd, h.Amsgrad);
        Train(used, adam, Targets(3, 30));
        Assert.That(idle.Grad, Is.Null);
        Assert.That(idle.ToArray(), Is.EqualTo(idleBefore), "no gradient, no step: not even the weight decay");
        Assert.That((adam.StepCount(0), adam.StepCount(1)), Is.EqualTo((3, 0)));

        // Its first step is a first step (bias correction of step 1), whatever the other parameter has done.
        var target = Targets(1, 40);
        var (expected, _) = ReferenceAdam(idleBefore, target, h);
        Train(idle, adam, target);
        Reference.AssertClose(expected, idle.ToArray(), 1e-12, 1e-12, "first step of the idle parameter");
        Assert.That((adam.StepCount(0), adam.StepCount(1)), Is.EqualTo((3, 1)));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void CheckpointedStateContinuesBitIdentically(bool amsgrad)
    {
        var targets = Targets(5, 50);
        var straight = Variable([Length], 5);
        string path = Path.Combine(Path.GetTempPath(), $"engine-adam-{Guid.NewGuid():N}.safetensors");
        try
        {
            double[] weightsAtCheckpoint;
            using (var first = new Adam<double>([straight], 0.03, weightDecay: 0.01, amsgrad: amsgrad))
            {
                Train(straight, first, targets.Take(3));
                SafeTensors.Save(first.State(["w"]), path);
                weightsAtCheckpoint = straight.ToArray();
                Train(straight, first, targets.Skip(3));
            }
            var names = SafeTensors.ReadHeader(path).Tensors.Select(t => t.Name).Order().ToArray();
            Assert.That(names, Is.EqualTo(amsgrad
                ? new[] { "exp_avg.w", "exp_avg_sq.w", "max_exp_avg_sq.w", "step.w" }
                : ["exp_avg.w", "exp_avg_sq.w", "step.w"]));

            var resumed = Tensor.FromArray(weightsAtCheckpoint, [Length], Device);
            resumed.RequiresGrad = true;
            using var second = new Adam<double>([resumed], 0.03, weightDecay: 0.01, amsgrad: amsgrad);
            SafeTensors.Load(second.State(["w"]), path);
            Assert.That(second.StepCount(0), Is.EqualTo(3));
            Train(resumed, second, targets.Skip(3));
            Assert.That(resumed.ToArray(), Is.EqualTo(straight.ToArray()));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestCase("learningRate", -0.1, 0.9, 0.999, 1e-8, 0.0)]
    [TestCase("learningRate", double.PositiveInfinity, 0.9, 0.999, 1e-8, 0.0)]
    [TestCase("learningRate", double.NaN, 0.9, 0.999, 1e-8, 0.0)]
    [TestCase("beta1", 1e-3, 1.0, 0.999, 1e-8, 0.0)]
    [TestCase("beta1", 1e-3, -0.1, 0.999, 1e-8, 0.0)]
    [TestCase("beta2", 1e-3, 0.9, 1.0, 1e-8, 0.0)]
    [TestCase("beta2", 1e-3, 0.9, double.NaN, 1e-8, 0.0)]
    [TestCase("epsilon", 1e-3, 0.9, 0.999, 0.0, 0.0)]
    [TestCase("epsilon", 1e-3, 0.9, 0.999, double.PositiveInfinity, 0.0)]
    [TestCase("weightDecay", 1e-3, 0.9, 0.999, 1e-8, -1e-4)]
    [TestCase("weightDecay", 1e-3, 0.9, 0.999, 1e-8, double.NaN)]
    public void BadHyperParametersAreRejected(string name, double lr, double beta1, double beta2, double eps, double wd)
    {
        var w = Variable([3], 6);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Adam<double>([w], lr, beta1, beta2, eps, wd))!;
        Assert.That(error.ParamName, Is.EqualTo(name));
        Assert.That(error.Message, Does.Contain(name == "learningRate" ? "learning rate" : name == "weightDecay" ? "weight decay" : name));
        error = Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW<double>([w], lr, beta1, beta2, eps, wd))!;
        Assert.That(error.Message, Does.StartWith("AdamW:"));

        using var adam = new Adam<double>([w]);
        Assert.Throws<ArgumentOutOfRangeException>(() => adam.LearningRate = -1);
        Assert.That(adam.LearningRate, Is.EqualTo(1e-3), "a rejected rate leaves the old one");
    }

    [Test]
    public void BadBuffersAreRejectedBeforeLaunch()
    {
        var backend = Device.Backend;
        using var param = backend.Allocate<float>(8);
        using var grad = backend.Allocate<float>(8);
        using var m = backend.Allocate<float>(8);
        using var v = backend.Allocate<float>(8);
        using var shortV = backend.Allocate<float>(7);
        var p = new AdamParameters(1e-3);
        var amsgrad = p with { Amsgrad = true };
        Assert.That(Assert.Throws<ArgumentException>(() => backend.AdamStep(p, 1, param, grad, m, shortV, null))!
            .Message, Does.Contain("expAvgSq").And.Contain("7 elements"));
        Assert.That(Assert.Throws<ArgumentException>(() => backend.AdamStep(amsgrad, 1, param, grad, m, v, null))!
            .Message, Does.Contain("AMSGrad"));
        Assert.That(Assert.Throws<ArgumentException>(() => backend.AdamStep(p, 1, param, grad, m, m, null))!
            .Message, Does.Contain("distinct"));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.AdamStep(p, 0, param, grad, m, v, null));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            backend.AdamStep(p with { Beta2 = 1 }, 1, param, grad, m, v, null));
    }
}
