// Adam and AdamW on every backend: several steps in float64 against plain-loop float64 references written here
// (PyTorch's single-tensor formulas), float32 against float64, per-parameter step counts (a parameter without a
// gradient is untouched and starts its own bias correction later), the checkpoint state continuing bit-identically,
// and bad hyper-parameters and buffers rejected on the host. The multi-tensor AdamSteps gives the bits of one
// AdamStep per tensor (float32 and float64, lengths around the vector width and the CPU chunk, an empty tensor,
// each tensor at its own step), Engine.Core's optimizer takes it once per step, and its list checks name the
// argument. AMSGrad's maximum propagates a NaN (in the gradient or already in the maximum) as torch.maximum does.
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

    private static IEnumerable<TestCaseData> ListCases()
    {
        foreach (bool float64 in new[] { false, true })
        {
            string type = float64 ? "float64" : "float32";
            yield return new TestCaseData(new AdamParameters(0.05, 0.9, 0.99, 1e-8, 0.05), float64)
                .SetArgDisplayNames($"adam wd {type}");
            yield return new TestCaseData(new AdamParameters(0.05, 0.9, 0.99, 1e-8, 0.05, DecoupledWeightDecay: true),
                float64).SetArgDisplayNames($"adamw {type}");
            yield return new TestCaseData(new AdamParameters(0.05, 0.9, 0.99, 1e-8, 0, Amsgrad: true), float64)
                .SetArgDisplayNames($"amsgrad {type}");
            yield return new TestCaseData(new AdamParameters(0.05, 0, 0.5, 1e-3, 0.1, true, true), float64)
                .SetArgDisplayNames($"adamw amsgrad beta1=0 {type}");
        }
    }

    [TestCaseSource(nameof(ListCases))]
    public void AdamStepsGiveTheBitsOfOneStepPerTensor(AdamParameters p, bool float64)
    {
        if (float64) AdamStepsMatchOneStepPerTensor<double>(p);
        else AdamStepsMatchOneStepPerTensor<float>(p);
    }

    private void AdamStepsMatchOneStepPerTensor<T>(AdamParameters p)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var backend = Device.Backend;
        // Lengths around the vector widths and the CPU backend's chunk (2^15), and an empty one (skipped).
        int[] lengths = [1, 7, 33, 40000, 0, 70001, 5];
        var owned = new List<DeviceBuffer<T>>();
        DeviceBuffer<T> Upload(int length, int seed, bool positive = false)
        {
            var random = new Random(seed);
            var host = Enumerable.Range(0, length)
                .Select(_ => T.CreateChecked(positive ? random.NextDouble() : random.NextDouble() * 2 - 1)).ToArray();
            var buffer = backend.Allocate<T>(length);
            buffer.CopyFromHost(host);
            owned.Add(buffer);
            return buffer;
        }
        T[] Download(DeviceBuffer<T>? buffer)
        {
            if (buffer is null) return [];
            var host = new T[buffer.Length];
            buffer.CopyToHost(host);
            return host;
        }
        // Two copies of every state: one stepped as a list, one tensor by tensor; the moments start non-zero.
        DeviceBuffer<T>[] State(int seed, bool positive = false) =>
            lengths.Select((n, i) => Upload(n, seed + i, positive)).ToArray();
        try
        {
            var grads = State(100);
            var (together, alone) = (State(200), State(200));
            var (mTogether, mAlone) = (State(300), State(300));
            var (vTogether, vAlone) = (State(400, true), State(400, true));
            var (maxTogether, maxAlone) = p.Amsgrad ? (State(500, true), State(500, true)) : (null, null);
            var initial = together.Select(Download).ToArray();
            int[] steps = lengths.Select((_, i) => 1 + 3 * i).ToArray(); // each tensor at its own step
            for (int round = 0; round < 2; round++)
            {
                backend.AdamSteps(p, steps, together, grads, mTogether, vTogether, maxTogether);
                for (int i = 0; i < lengths.Length; i++)
                    backend.AdamStep(p, steps[i], alone[i], grads[i], mAlone[i], vAlone[i], maxAlone?[i]);
                steps = steps.Select(s => s + 1).ToArray();
            }
            for (int i = 0; i < lengths.Length; i++)
            {
                Assert.That(Download(together[i]), Is.EqualTo(Download(alone[i])), $"parameter {i}");
                Assert.That(Download(mTogether[i]), Is.EqualTo(Download(mAlone[i])), $"exp_avg {i}");
                Assert.That(Download(vTogether[i]), Is.EqualTo(Download(vAlone[i])), $"exp_avg_sq {i}");
                Assert.That(Download(maxTogether?[i]), Is.EqualTo(Download(maxAlone?[i])), $"max_exp_avg_sq {i}");
                if (lengths[i] > 0)
                    Assert.That(Download(together[i]), Is.Not.EqualTo(initial[i]), $"parameter {i} was updated");
            }
        }
        finally
        {
            foreach (var buffer in owned) buffer.Dispose();
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void AmsgradMaximumPropagatesNaNAsTorchMaximum(bool float64)
    {
        if (float64) AmsgradPropagatesNaN<double>();
        else AmsgradPropagatesNaN<float>();
    }

    /// <summary>torch.maximum semantics for AMSGrad's vmax = max(vmax, v): a NaN gradient (so v is NaN) in the vector
    /// body and in the tail, and a NaN already in vmax with a finite v, give NaN in vmax and the parameter; every
    /// other element has the bits of a run without the NaNs.</summary>
    private void AmsgradPropagatesNaN<T>() where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var backend = Device.Backend;
        var p = new AdamParameters(0.05, 0.9, 0.99, 1e-8, 0.01, Amsgrad: true);
        int[] nanGrad = [2, Length - 1], nanMax = [9, 34];
        T[] Values(int seed, bool positive)
        {
            var random = new Random(seed);
            return Enumerable.Range(0, Length)
                .Select(_ => T.CreateChecked(positive ? random.NextDouble() : random.NextDouble() * 2 - 1)).ToArray();
        }
        T[] WithNaN(T[] values, int[] at)
        {
            var copy = (T[])values.Clone();
            foreach (int i in at) copy[i] = T.NaN;
            return copy;
        }
        (T[] Param, T[] ExpAvgSq, T[] Max) Step(T[] grad, T[] max)
        {
            var buffers = new[] { Values(1, false), grad, Values(3, false), Values(4, true), max }.Select(host =>
            {
                var buffer = backend.Allocate<T>(Length);
                buffer.CopyFromHost(host);
                return buffer;
            }).ToArray();
            try
            {
                backend.AdamSteps(p, [3], [buffers[0]], [buffers[1]], [buffers[2]], [buffers[3]], [buffers[4]]);
                T[] Read(DeviceBuffer<T> buffer)
                {
                    var host = new T[Length];
                    buffer.CopyToHost(host);
                    return host;
                }
                return (Read(buffers[0]), Read(buffers[3]), Read(buffers[4]));
            }
            finally
            {
                foreach (var buffer in buffers) buffer.Dispose();
            }
        }

        var (grads, maxima) = (Values(2, false), Values(5, true));
        var clean = Step(grads, maxima);
        var withNaN = Step(WithNaN(grads, nanGrad), WithNaN(maxima, nanMax));
        for (int i = 0; i < Length; i++)
        {
            bool nan = nanGrad.Contains(i) || nanMax.Contains(i);
            Assert.That(T.IsNaN(withNaN.Max[i]), Is.EqualTo(nan), $"max_exp_avg_sq[{i}]");
            Assert.That(T.IsNaN(withNaN.Param[i]), Is.EqualTo(nan), $"param[{i}]");
            Assert.That(T.IsNaN(withNaN.ExpAvgSq[i]), Is.EqualTo(nanGrad.Contains(i)), $"exp_avg_sq[{i}]");
            if (nan) continue;
            Assert.That(withNaN.Param[i], Is.EqualTo(clean.Param[i]), $"param[{i}] is unaffected");
            Assert.That(withNaN.Max[i], Is.EqualTo(clean.Max[i]), $"max_exp_avg_sq[{i}] is unaffected");
        }
    }

    [Test]
    public void AdamStepsRejectsMismatchedListsAndRepeatedBuffers()
    {
        var backend = Device.Backend;
        var p = new AdamParameters(0.1);
        var amsgrad = p with { Amsgrad = true };
        var owned = new List<DeviceBuffer<float>>();
        DeviceBuffer<float> Buffer(int length)
        {
            var buffer = backend.Allocate<float>(length);
            buffer.CopyFromHost(Enumerable.Range(1, length).Select(v => (float)v).ToArray());
            owned.Add(buffer);
            return buffer;
        }
        var (a, b, ga, gb, ma, mb, va, vb, xa, xb) = (Buffer(3), Buffer(3), Buffer(3), Buffer(3), Buffer(3),
            Buffer(3), Buffer(3), Buffer(3), Buffer(3), Buffer(3));
        var shortBuffer = Buffer(2);
        try
        {
            ArgumentException Refused(Action step) => Assert.Catch<ArgumentException>(() => step())!;
            var cases = new (ArgumentException Error, string Name, string Message)[]
            {
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, b], [ga], [ma, mb], [va, vb], null)), "grads",
                    "every list needs one entry per parameter"),
                (Refused(() => backend.AdamSteps(p, [1], [a, b], [ga, gb], [ma, mb], [va, vb], null)), "steps",
                    "every list needs one entry per parameter"),
                (Refused(() => backend.AdamSteps(amsgrad, [1, 1], [a, b], [ga, gb], [ma, mb], [va, vb], [xa])),
                    "maxExpAvgSqs", "every list needs one entry per parameter"),
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, a], [ga, gb], [ma, mb], [va, vb], null)), "parameters",
                    "parameters[1] is a buffer already written"),
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, b], [ga, gb], [ma, va], [va, vb], null)), "expAvgs",
                    "expAvgs[1] is a buffer already written"),
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, b], [ga, gb], [ma, mb], [va, ma], null)), "expAvgSqs",
                    "expAvgSqs[1] is a buffer already written"),
                (Refused(() => backend.AdamSteps(amsgrad, [1, 1], [a, b], [ga, gb], [ma, mb], [va, vb], [xa, xa])),
                    "maxExpAvgSqs", "maxExpAvgSqs[1] is a buffer already written"),
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, b], [ga, a], [ma, mb], [va, vb], null)), "grads",
                    "grads[1] is a buffer this step writes"),
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, b], [ga, gb], [ma, mb], [va, vb], [null, xb])),
                    "maxExpAvgSqs", "given for parameter 1 but AMSGrad is off"),
                (Refused(() => backend.AdamSteps(amsgrad, [1, 1], [a, b], [ga, gb], [ma, mb], [va, vb], null)),
                    "maxExpAvgSqs", "AMSGrad needs a buffer for the maximum of the second moment of parameter 0"),
                (Refused(() => backend.AdamSteps(amsgrad, [1, 1], [a, b], [ga, gb], [ma, mb], [va, vb], [xa, null])),
                    "maxExpAvgSqs", "AMSGrad needs a buffer for the maximum of the second moment of parameter 1"),
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, b], [ga, shortBuffer], [ma, mb], [va, vb], null)),
                    "grads[1]", "2 elements"),
                (Refused(() => backend.AdamSteps(p, [1, 1], [a, b], [ga, gb], [ma, mb], [va, b], null)), "parameters",
                    "of parameter 1 must be distinct"),
            };
            foreach (var (error, name, message) in cases)
            {
                Assert.That(error, Is.TypeOf<ArgumentException>(), message);
                Assert.That(error.ParamName, Is.EqualTo(name), message);
                Assert.That(error.Message, Does.StartWith("Adam steps:").And.Contain(message));
            }
            var badStep = Assert.Throws<ArgumentOutOfRangeException>(() =>
                backend.AdamSteps(p, [1, 0], [a, b], [ga, gb], [ma, mb], [va, vb], null))!;
            Assert.That(badStep.ParamName, Is.EqualTo("steps"));
            Assert.That(badStep.Message, Does.Contain("got 0 for parameter 1"));
            foreach (var buffer in new[] { a, b, ma, mb, va, vb, xa, xb })
            {
                var host = new float[3];
                buffer.CopyToHost(host);
                Assert.That(host, Is.EqualTo(new[] { 1f, 2, 3 }), "nothing was updated");
            }
        }
        finally
        {
            foreach (var buffer in owned) buffer.Dispose();
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void AdamOptimizerStepsLikeOneAdamStepPerParameter(bool amsgrad)
    {
        // Engine.Core's Adam takes every parameter with a gradient in one AdamSteps op, each at its own step count;
        // the bits are those of one AdamStep per parameter.
        var weights = Variable([9, 5], 60);
        var bias = Variable([9], 61);
        double[] w0 = weights.ToArray(), b0 = bias.ToArray();
        var hyper = new AdamParameters(0.01, WeightDecay: 1e-2, Amsgrad: amsgrad, DecoupledWeightDecay: true);
        using var adam = new AdamW<double>([weights, bias], 0.01, weightDecay: 1e-2, amsgrad: amsgrad);
        var backend = Device.Backend;
        var state = new List<DeviceBuffer<double>>();
        DeviceBuffer<double> Upload(double[] values)
        {
            var buffer = backend.Allocate<double>(values.Length);
            buffer.CopyFromHost(values);
            state.Add(buffer);
            return buffer;
        }
        try
        {
            var (expectedW, expectedB) = (Upload(w0), Upload(b0));
            var (mW, mB, vW, vB) = (Upload(new double[w0.Length]), Upload(new double[b0.Length]),
                Upload(new double[w0.Length]), Upload(new double[b0.Length]));
            var (maxW, maxB) = amsgrad ? (Upload(new double[w0.Length]), Upload(new double[b0.Length])) : (null, null);
            var x = Normal<double>([3, 5], 62);
            for (int step = 1; step <= 3; step++)
            {
                adam.ZeroGrad();
                // The bias has no gradient on the first step: it skips it and then runs one step behind.
                var y = step == 1 ? x.Linear(weights) : x.Linear(weights, bias);
                (y * y).Sum().Backward();
                backend.AdamStep(hyper, step, expectedW, weights.Grad!.Buffer, mW, vW, maxW);
                if (step > 1) backend.AdamStep(hyper, step - 1, expectedB, bias.Grad!.Buffer, mB, vB, maxB);
                adam.Step();
                Assert.That(weights.ToArray(), Is.EqualTo(Download(expectedW)), $"weights after step {step}");
                Assert.That(bias.ToArray(), Is.EqualTo(Download(expectedB)), $"bias after step {step}");
                Assert.That((adam.StepCount(0), adam.StepCount(1)), Is.EqualTo((step, step - 1)));
            }
        }
        finally
        {
            foreach (var buffer in state) buffer.Dispose();
        }

        static double[] Download(DeviceBuffer<double> buffer)
        {
            var host = new double[buffer.Length];
            buffer.CopyToHost(host);
            return host;
        }
    }
}
