// Batch-norm (train and eval), max-pool, global average pool, cross-entropy, top-k accuracy, the option-A
// shortcut and SGD: float32 against float64 references, gradient checks in float64.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Optim;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class LayerTests(string kind) : DeviceFixture(kind)
{
    private (Tensor<T> Gamma, Tensor<T> Beta, Tensor<T> Mean, Tensor<T> Var) BatchNormParameters<T>(int c, int seed)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        (Tensor.RandomUniform<T>([c], seed, 0.5, 1.5, Device), Tensor.RandomNormal<T>([c], seed + 1, device: Device),
            Tensor.RandomNormal<T>([c], seed + 2, device: Device), Tensor.RandomUniform<T>([c], seed + 3, 0.5, 2, Device));

    [TestCase(2, 3, 5, 5)]
    [TestCase(1, 5, 7, 7)]
    [TestCase(3, 4, 1, 1)]
    public void Float32BatchNormTrainingMatchesReference(int n, int c, int h, int w)
    {
        var x = Tensor.RandomNormal<float>([n, c, h, w], 1, mean: 3, std: 2, device: Device);
        var (gamma, beta, runMean, runVar) = BatchNormParameters<float>(c, 2);
        double[] oldMean = Reference.ToDouble(runMean.ToArray()), oldVar = Reference.ToDouble(runVar.ToArray());
        var (expected, mean, variance) = ReferenceLayers.BatchNormTrain(n, c, h * w, Reference.ToDouble(x.ToArray()),
            Reference.ToDouble(gamma.ToArray()), Reference.ToDouble(beta.ToArray()), 1e-5);
        var y = x.BatchNorm(gamma, beta, runMean, runVar, training: true);
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-4, 1e-4, "bn train y");
        int m = n * h * w;
        Reference.AssertClose(oldMean.Select((v, i) => 0.9 * v + 0.1 * mean[i]).ToArray(),
            Reference.ToDouble(runMean.ToArray()), 1e-5, 1e-5, "running mean");
        Reference.AssertClose(oldVar.Select((v, i) => 0.9 * v + 0.1 * variance[i] * m / (m - 1)).ToArray(),
            Reference.ToDouble(runVar.ToArray()), 1e-5, 1e-5, "running variance (unbiased)");
    }

    [Test]
    public void Float32BatchNormEvalUsesRunningStatistics()
    {
        var x = Normal<float>([2, 3, 4, 4], 3);
        var (gamma, beta, runMean, runVar) = BatchNormParameters<float>(3, 4);
        double[] xs = Reference.ToDouble(x.ToArray()), g = Reference.ToDouble(gamma.ToArray()),
            b = Reference.ToDouble(beta.ToArray()), rm = Reference.ToDouble(runMean.ToArray()),
            rv = Reference.ToDouble(runVar.ToArray());
        var expected = xs.Select((v, i) => (v - rm[i / 16 % 3]) / Math.Sqrt(rv[i / 16 % 3] + 1e-5) * g[i / 16 % 3] +
                                           b[i / 16 % 3]).ToArray();
        var y = x.BatchNorm(gamma, beta, runMean, runVar, training: false);
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-5, 1e-4, "bn eval");
        Assert.That(runMean.ToArray(), Is.EqualTo(Reference.ToFloat(rm)), "eval leaves the running mean alone");
    }

    [Test]
    public void BatchNormIsStableForLargeMeans()
    {
        // E[x²] − E[x]² loses most digits here in float32 (x² ≈ 1e6, ulp 0.06); two passes keep the variance.
        var x = Tensor.RandomNormal<float>([4, 2, 8, 8], 5, mean: 1000, std: 1, device: Device);
        var (gamma, beta, runMean, runVar) = BatchNormParameters<float>(2, 6);
        var (expected, _, _) = ReferenceLayers.BatchNormTrain(4, 2, 64, Reference.ToDouble(x.ToArray()),
            Reference.ToDouble(gamma.ToArray()), Reference.ToDouble(beta.ToArray()), 1e-5);
        var y = x.BatchNorm(gamma, beta, runMean, runVar, training: true);
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-3, 1e-3, "bn with mean 1000");
    }

    [TestCase(true)]
    [TestCase(false)]
    public void BatchNormBackwardPassesGradientCheck(bool training)
    {
        var x = Variable([3, 4, 3, 3], 7);
        var gamma = Variable([4], 8);
        var beta = Variable([4], 9);
        var (_, _, runMean, runVar) = BatchNormParameters<double>(4, 10);
        GradCheck.Run(() => x.BatchNorm(gamma, beta, runMean, runVar, training), [x, gamma, beta],
            new GradCheckOptions { InputNames = ["x", "gamma", "beta"] }).EnsurePassed();
    }

    [TestCase(true)]
    [TestCase(false)]
    public void FusedBatchNormReluMatchesReferenceAndPassesGradientCheck(bool training)
    {
        var x = Normal<float>([2, 3, 5, 5], 40);
        var (gamma, beta, runMean, runVar) = BatchNormParameters<float>(3, 41);
        var unfused = x.BatchNorm(gamma, beta, runMean.Clone(), runVar.Clone(), training).ToArray()
            .Select(v => Math.Max(v, 0f)).ToArray();
        var fused = x.BatchNorm(gamma, beta, runMean, runVar, training, relu: true).ToArray();
        Reference.AssertClose(Reference.ToDouble(unfused), Reference.ToDouble(fused), 1e-6, 1e-5, "bn+relu");
        Assert.That(fused, Has.Some.EqualTo(0f).And.Some.GreaterThan(0f), "the ReLU clamps some and keeps others");

        var xd = Variable([3, 4, 3, 3], 42);
        var g = Variable([4], 43);
        var b = Variable([4], 44);
        var (_, _, rm, rv) = BatchNormParameters<double>(4, 45);
        GradCheck.Run(() => xd.BatchNorm(g, b, rm, rv, training, relu: true), [xd, g, b],
            new GradCheckOptions { InputNames = ["x", "gamma", "beta"] }).EnsurePassed();
    }

    [TestCase(2, 3, 5, 5, 3, 2, 1)]
    [TestCase(1, 2, 7, 7, 3, 2, 1)]
    [TestCase(2, 2, 6, 5, 2, 2, 0)]
    public void MaxPoolMatchesReferenceAndPassesGradientCheck(int n, int c, int h, int w, int k, int s, int p)
    {
        var x = Normal<float>([n, c, h, w], 11);
        var (expected, argmax) = ReferenceLayers.MaxPool(n, c, h, w, k, s, p, Reference.ToDouble(x.ToArray()));
        x.RequiresGrad = true;
        var y = x.MaxPool2d(k, s, p);
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 0, 0, "max-pool");
        var dy = Normal<float>(y.Shape, 12);
        y.Backward(dy);
        var dx = new double[x.Length];
        var dys = dy.ToArray();
        for (int o = 0; o < argmax.Length; o++)
            dx[o / (y.Shape[2] * y.Shape[3]) * h * w + argmax[o]] += dys[o];
        Reference.AssertClose(dx, Reference.ToDouble(x.Grad!.ToArray()), 1e-6, 1e-6, "max-pool backward");

        var xd = Variable([n, c, h, w], 13);
        GradCheck.Run(() => xd.MaxPool2d(k, s, p), [xd]).EnsurePassed();
    }

    [Test]
    public void MaxPoolTiesGoToTheFirstElement()
    {
        var x = Tensor.Ones<float>([1, 1, 3, 3], Device);
        x.RequiresGrad = true;
        x.MaxPool2d(3, 2, 1).Sum().Backward();
        // Four overlapping 3x3 windows over padding, all ties: each picks its first valid element, (0,0), (0,1),
        // (1,0) and (1,1), although (1,1) lies in every window.
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(new float[] { 1, 1, 0, 1, 1, 0, 0, 0, 0 }));
    }

    [Test]
    public void GlobalAveragePoolMatchesReferenceAndPassesGradientCheck()
    {
        var x = Normal<float>([2, 3, 5, 7], 14);
        var xs = Reference.ToDouble(x.ToArray());
        var expected = Enumerable.Range(0, 6).Select(p => xs.Skip(p * 35).Take(35).Average()).ToArray();
        Reference.AssertClose(expected, Reference.ToDouble(x.GlobalAveragePool().ToArray()), 1e-6, 1e-5, "gap");
        var xd = Variable([2, 3, 3, 2], 15);
        GradCheck.Run(() => xd.GlobalAveragePool(), [xd]).EnsurePassed();
    }

    [Test]
    public void CrossEntropyMatchesReferenceAndIsStable()
    {
        int[] labels = [3, 0, 9, 9, 5];
        var logits = Tensor.RandomNormal<float>([5, 10], 16, std: 3, device: Device);
        var (loss, grad) = ReferenceLayers.CrossEntropy(5, 10, Reference.ToDouble(logits.ToArray()), labels);
        logits.RequiresGrad = true;
        var l = logits.CrossEntropy(labels);
        Assert.That(l.Shape, Is.EqualTo(Shape.Scalar));
        Assert.That((double)l.Item(), Is.EqualTo(loss).Within(1e-5 * Math.Abs(loss) + 1e-6));
        l.Backward();
        Reference.AssertClose(grad, Reference.ToDouble(logits.Grad!.ToArray()), 1e-6, 1e-4, "cross-entropy grad");

        var huge = Tensor.FromArray(new float[] { 1000, -1000, 0, 1000 }, [2, 2], Device);
        float stable = huge.CrossEntropy([1, 0]).Item();
        Assert.That(stable, Is.EqualTo((2000 + 1000) / 2f).Within(1e-3), "no overflow at logits ±1000");
    }

    [Test]
    public void CrossEntropyPassesGradientCheckAndRejectsBadLabels()
    {
        var logits = Variable([4, 7], 17);
        GradCheck.Run(() => logits.CrossEntropy([1, 6, 0, 3]), [logits]).EnsurePassed();
        var error = Assert.Throws<ArgumentException>(() => logits.CrossEntropy([1, 7, 0, 3]))!;
        Assert.That(error.Message, Does.Contain("label 7").And.Contain("[4, 7]"));
        Assert.Throws<ArgumentException>(() => logits.CrossEntropy([1, 2]));
    }

    [Test]
    public void BackendNeverIndexesWithOutOfRangeLabelsAndRejectsNegativeExtents()
    {
        // Label values are checked once on the host (Tensor.CrossEntropy, TopKCorrect); a backend called directly
        // with bad values must still read nothing with them: NaN loss and gradient row, "not correct".
        var logits = Normal<float>([3, 3], 50);
        var labels = Device.Backend.Allocate<int>(3);
        var correct = Device.Backend.Allocate<int>(3);
        try
        {
            labels.CopyFromHost([1, 1_000_000, -1]);
            var losses = Normal<float>([3], 51);
            var probabilities = Normal<float>([3, 3], 52);
            var lossGrad = Tensor.Full<float>([1], 1f, Device);
            var dlogits = Normal<float>([3, 3], 53);
            Device.Backend.SoftmaxCrossEntropyForward(3, 3, logits.Buffer, labels, probabilities.Buffer,
                losses.Buffer);
            Device.Backend.SoftmaxCrossEntropyBackward(3, 3, probabilities.Buffer, labels, lossGrad.Buffer, 1f,
                dlogits.Buffer);
            Device.Backend.TopKCorrect(3, 3, 3, logits.Buffer, labels, correct);
            var loss = losses.ToArray();
            Assert.That(float.IsFinite(loss[0]), Is.True, "sample 0 has a valid label");
            Assert.That(loss[1..], Is.All.NaN, "labels 1000000 and -1 give NaN");
            var grad = dlogits.ToArray();
            Assert.That(grad[..3].All(float.IsFinite), Is.True);
            Assert.That(grad[3..], Is.All.NaN);
            var flags = new int[3];
            correct.CopyToHost(flags);
            Assert.That(flags, Is.EqualTo(new[] { 1, 0, 0 }), "k = classes: only a valid label can be correct");
            Assert.Throws<ArgumentException>(() => Device.Backend.TopKCorrect(2, 3, 1, logits.Buffer, labels,
                correct), "the labels' length is still checked");
        }
        finally
        {
            labels.Dispose();
            correct.Dispose();
        }
        var x = Normal<float>([24], 54);
        var sums = Normal<float>([3], 55);
        Assert.Throws<ArgumentException>(() => Device.Backend.SumPerChannel(-2, 3, -4, x.Buffer, sums.Buffer));
        Assert.Throws<ArgumentException>(() => Device.Backend.AddPerChannel(-2, 3, -4, sums.Buffer, x.Buffer));
    }

    [Test]
    public void TopKCountsLabelsAmongTheLargestLogits()
    {
        var logits = Tensor.FromArray(new float[]
        {
            0.1f, 0.9f, 0.5f, 0.3f,   // ranking 1, 2, 3, 0
            2f, 2f, 1f, 0f,           // tie between 0 and 1: 0 ranks first
            0f, 0f, 0f, 5f,
        }, [3, 4], Device);
        Assert.That(logits.TopKCorrect([1, 0, 3], 1), Is.EqualTo(3));
        Assert.That(logits.TopKCorrect([2, 1, 0], 1), Is.EqualTo(0));
        Assert.That(logits.TopKCorrect([2, 1, 0], 2), Is.EqualTo(3));
        Assert.That(logits.TopKCorrect([3, 2, 1], 2), Is.EqualTo(0));
        Assert.That(logits.TopKCorrect([3, 2, 1], 3), Is.EqualTo(3));
    }

    /// <summary>The forward against the reference, the float32 backward against its adjoint (dy placed at the
    /// subsampled positions, zeros elsewhere: rows 33 and 34 wide hold whole vectors of 8 outputs and a rest; rows
    /// 16 wide give outputs 8 wide, two rows a vector, with an odd last row at 13 rows; rows 24 wide a rest of 12),
    /// and a float64 gradient check.</summary>
    [TestCase(2, 3, 5, 5, 8, 2)]
    [TestCase(1, 16, 7, 7, 32, 2)]
    [TestCase(2, 4, 4, 4, 4, 1)]
    [TestCase(2, 4, 5, 34, 8, 2)]
    [TestCase(1, 3, 3, 33, 5, 2)]
    [TestCase(2, 4, 16, 16, 8, 2)]
    [TestCase(1, 4, 13, 16, 8, 2)]
    [TestCase(2, 2, 6, 24, 4, 2)]
    public void ShortcutMatchesReferenceAndPassesGradientCheck(int n, int c, int h, int w, int k, int stride)
    {
        var x = Normal<float>([n, c, h, w], 18);
        int padFront = (k - c) / 2;
        var expected = ReferenceLayers.Shortcut(n, c, h, w, k, stride, padFront, Reference.ToDouble(x.ToArray()));
        x.RequiresGrad = true;
        var y = x.ZeroPadShortcut(k, stride);
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 0, 0, "shortcut");
        var dy = Normal<float>(y.Shape, 20);
        y.Backward(dy);
        var dys = dy.ToArray();
        int oh = y.Shape[2], ow = y.Shape[3];
        var dx = new double[x.Length];
        for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
        for (int a = 0; a < oh; a++)
        for (int b = 0; b < ow; b++)
            dx[((i * c + ch) * h + a * stride) * w + b * stride] = dys[((i * k + ch + padFront) * oh + a) * ow + b];
        Reference.AssertClose(dx, Reference.ToDouble(x.Grad!.ToArray()), 0, 0, "shortcut backward");
        var xd = Variable([n, c, h, w], 19);
        GradCheck.Run(() => xd.ZeroPadShortcut(k, stride), [xd]).EnsurePassed();
    }

    [TestCase(0.0, 0.0, 0.0, false)]
    [TestCase(0.9, 0.0, 1e-4, false)]
    [TestCase(0.9, 0.0, 1e-4, true)]
    [TestCase(0.5, 0.3, 0.01, false)]
    public void SgdFollowsPyTorchSemantics(double momentum, double dampening, double weightDecay, bool nesterov)
    {
        const double lr = 0.1;
        var w = Variable([6], 20);
        var expected = w.ToArray();
        var buffer = new double[6];
        using var sgd = new Sgd<double>([w], lr, momentum, dampening, weightDecay, nesterov);
        for (int step = 0; step < 3; step++)
        {
            var target = Normal<double>([6], 21 + step);
            ((w - target) * (w - target)).Sum().Backward();
            for (int i = 0; i < 6; i++)
            {
                double g = 2 * (expected[i] - target.ToArray()[i]) + weightDecay * expected[i];
                if (momentum != 0)
                {
                    buffer[i] = step == 0 ? g : momentum * buffer[i] + (1 - dampening) * g;
                    g = nesterov ? g + momentum * buffer[i] : buffer[i];
                }
                expected[i] -= lr * g;
            }
            sgd.Step();
            sgd.ZeroGrad();
        }
        Reference.AssertClose(expected, w.ToArray(), 1e-12, 1e-12, "sgd");
    }

    [TestCase(0.1, false)]
    [TestCase(0.0, true)]
    public void SgdGivesEveryElementTheSameArithmetic(double dampening, bool nesterov)
    {
        // 37 equal elements: vector lanes and the scalar tail must agree to the bit.
        var w = Tensor.FromArray(Enumerable.Repeat(0.3f, 37).ToArray(), [37], Device);
        var slope = Tensor.FromArray(Enumerable.Repeat(-1.7f, 37).ToArray(), [37], Device);
        w.RequiresGrad = true;
        using var sgd = new Sgd<float>([w], 0.05, 0.9, dampening, weightDecay: 1e-4, nesterov: nesterov);
        for (int step = 0; step < 3; step++)
        {
            (w * w * slope).Sum().Backward();
            sgd.Step();
            sgd.ZeroGrad();
        }
        float[] result = w.ToArray();
        Assert.That(result, Is.All.EqualTo(result[0]));
        Assert.That(result[0], Is.Not.EqualTo(0.3f), "the steps moved the parameter");
    }

    [Test]
    public void SgdInFloat32MatchesFloat64()
    {
        var w32 = Tensor.RandomNormal<float>([100], 30, device: Device);
        var w64 = Tensor.FromArray(Reference.ToDouble(w32.ToArray()), [100], Device);
        w32.RequiresGrad = w64.RequiresGrad = true;
        using var sgd32 = new Sgd<float>([w32], 0.05, 0.9, weightDecay: 1e-4, nesterov: true);
        using var sgd64 = new Sgd<double>([w64], 0.05, 0.9, weightDecay: 1e-4, nesterov: true);
        for (int step = 0; step < 4; step++)
        {
            (w32 * w32).Sum().Backward();
            (w64 * w64).Sum().Backward();
            sgd32.Step();
            sgd64.Step();
            sgd32.ZeroGrad();
            sgd64.ZeroGrad();
        }
        Reference.AssertClose(w64.ToArray(), Reference.ToDouble(w32.ToArray()), 1e-6, 1e-5, "sgd float32");
    }
}
