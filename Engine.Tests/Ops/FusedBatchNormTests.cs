// The fused tail of a residual block, y = relu(bn(x) + residual), on every backend: float32 forward and gradients
// against a float64 reference (the unfused composition: batch-norm, add, ReLU as separate ops), float64 gradient
// checks, the arguments the contract refuses, NaN handling, and on ILGPU the launches each way. Shapes cover
// planes whose size is a multiple of 4 (the ILGPU kernels move float4 quads) and planes that are not, and
// channels long enough for the ILGPU reductions to split each channel over several groups.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Kernels.Ilgpu;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class FusedBatchNormTests(string kind) : DeviceFixture(kind)
{
    private (Tensor<T> Gamma, Tensor<T> Beta, Tensor<T> Mean, Tensor<T> Var) Parameters<T>(int c, int seed)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        (Tensor.RandomUniform<T>([c], seed, 0.5, 1.5, Device), Tensor.RandomNormal<T>([c], seed + 1, device: Device),
            Tensor.RandomNormal<T>([c], seed + 2, device: Device), Tensor.RandomUniform<T>([c], seed + 3, 0.5, 2, Device));

    private Tensor<double> ToDevice64(Tensor<float> t, bool requiresGrad)
    {
        var copy = Tensor.FromArray(Reference.ToDouble(t.ToArray()), t.Shape, Device);
        copy.RequiresGrad = requiresGrad;
        return copy;
    }

    private Tensor<float> Leaf(Shape shape, int seed)
    {
        var t = Normal<float>(shape, seed);
        t.RequiresGrad = true;
        return t;
    }

    [TestCase(2, 3, 4, 4, true)]   // quads, a few ranges per channel on ILGPU
    [TestCase(3, 2, 5, 5, true)]   // scalars
    [TestCase(4, 3, 8, 8, true)]   // quads, many ranges
    [TestCase(2, 3, 4, 4, false)]
    [TestCase(3, 2, 5, 5, false)]
    public void Float32FusedTailMatchesTheFloat64UnfusedComposition(int n, int c, int h, int w, bool training)
    {
        var x = Leaf([n, c, h, w], 1);
        var residual = Leaf([n, c, h, w], 2);
        var (gamma, beta, runMean, runVar) = Parameters<float>(c, 3);
        gamma.RequiresGrad = beta.RequiresGrad = true;
        var y = x.BatchNorm(gamma, beta, runMean.Clone(), runVar.Clone(), training, relu: true, residual: residual);
        var weights = Normal<float>(y.Shape, 4);
        y.Backward(weights);

        var x64 = ToDevice64(x, true);
        var r64 = ToDevice64(residual, true);
        var g64 = ToDevice64(gamma, true);
        var b64 = ToDevice64(beta, true);
        var y64 = (x64.BatchNorm(g64, b64, ToDevice64(runMean, false), ToDevice64(runVar, false), training) + r64)
            .Relu();
        y64.Backward(ToDevice64(weights, false));

        Reference.AssertClose(y64.ToArray(), Reference.ToDouble(y.ToArray()), 1e-5, 1e-4, "y");
        Assert.That(y.ToArray(), Has.Some.EqualTo(0f).And.Some.GreaterThan(0f), "the ReLU clamps some and keeps others");
        Reference.AssertClose(x64.Grad!.ToArray(), Reference.ToDouble(x.Grad!.ToArray()), 1e-4, 1e-3, "dx");
        Reference.AssertClose(r64.Grad!.ToArray(), Reference.ToDouble(residual.Grad!.ToArray()), 1e-6, 1e-5,
            "d(residual)");
        Reference.AssertClose(g64.Grad!.ToArray(), Reference.ToDouble(gamma.Grad!.ToArray()), 1e-4, 1e-3, "dgamma");
        Reference.AssertClose(b64.Grad!.ToArray(), Reference.ToDouble(beta.Grad!.ToArray()), 1e-4, 1e-3, "dbeta");
    }

    [TestCase(true, 4)]
    [TestCase(true, 3)]
    [TestCase(false, 4)]
    [TestCase(false, 3)]
    public void FusedTailPassesGradientCheck(bool training, int size)
    {
        var x = Variable([2, 3, size, size], 11);
        var residual = Variable([2, 3, size, size], 12);
        var gamma = Variable([3], 13);
        var beta = Variable([3], 14);
        var (_, _, runMean, runVar) = Parameters<double>(3, 15);
        GradCheck.Run(() => x.BatchNorm(gamma, beta, runMean, runVar, training, relu: true, residual: residual),
            [x, gamma, beta, residual],
            new GradCheckOptions { InputNames = ["x", "gamma", "beta", "residual"] }).EnsurePassed();
    }

    [Test]
    public void ResidualWithoutReluPassesGradientCheck()
    {
        var x = Variable([2, 2, 4, 4], 21);
        var residual = Variable([2, 2, 4, 4], 22);
        var gamma = Variable([2], 23);
        var beta = Variable([2], 24);
        var (_, _, runMean, runVar) = Parameters<double>(2, 25);
        GradCheck.Run(() => x.BatchNorm(gamma, beta, runMean, runVar, training: true, residual: residual),
            [x, gamma, beta, residual],
            new GradCheckOptions { InputNames = ["x", "gamma", "beta", "residual"] }).EnsurePassed();
    }

    [Test]
    public void FusedTailPropagatesNaNAndMasksItsGradient()
    {
        var x = Tensor.FromArray([1f, -2f, 0.5f, 3f, -1f, 2f, 0.25f, -0.5f], [2, 1, 2, 2], Device);
        var residual = Tensor.FromArray([0f, float.NaN, 0f, -10f, 0f, 0f, 0f, 0f], [2, 1, 2, 2], Device);
        residual.RequiresGrad = true;
        var (gamma, beta, mean, variance) = (Tensor.Ones<float>([1], Device), Tensor.Zeros<float>([1], Device),
            Tensor.Zeros<float>([1], Device), Tensor.Ones<float>([1], Device));
        var y = x.BatchNorm(gamma, beta, mean, variance, training: false, relu: true, residual: residual);
        var values = y.ToArray();
        Assert.That(float.IsNaN(values[1]), "a NaN residual makes its output NaN");
        Assert.That(values[3], Is.EqualTo(0f), "bn(x) + residual < 0 is clamped");
        y.Backward(Tensor.Ones<float>(y.Shape, Device));
        var grad = residual.Grad!.ToArray();
        Assert.That(grad[1], Is.EqualTo(0f), "no gradient through a NaN output");
        Assert.That(grad[3], Is.EqualTo(0f), "no gradient through a clamped output");
        Assert.That(grad[0], Is.EqualTo(1f), "the gradient passes where the output is positive");
    }

    [Test]
    public void AResidualOfAnotherShapeIsRejected()
    {
        var x = Normal<float>([2, 3, 4, 4], 31);
        var residual = Normal<float>([2, 3, 4, 5], 32);
        var (gamma, beta, mean, variance) = Parameters<float>(3, 33);
        var error = Assert.Throws<ArgumentException>(() =>
            x.BatchNorm(gamma, beta, mean, variance, training: true, relu: true, residual: residual));
        Assert.That(error!.Message, Does.Contain("batch-norm").And.Contain("residual"));
    }

    [Test]
    public void TheBackendRejectsAResidualOrItsGradientOfAnotherLength()
    {
        var backend = Device.Backend;
        using var x = backend.Allocate<float>(2 * 3 * 4);
        using var y = backend.Allocate<float>(2 * 3 * 4);
        using var shortResidual = backend.Allocate<float>(2 * 3 * 4 - 1);
        using var vector = backend.Allocate<float>(3);
        backend.Fill(x, 1f);
        backend.Fill(vector, 1f);
        var forward = Assert.Throws<ArgumentException>(() => backend.BatchNormForwardTraining(2, 3, 4, x, vector,
            vector, vector, vector, 0.1, 1e-5, y, vector, vector, relu: true, residual: shortResidual));
        Assert.That(forward!.Message, Does.Contain("batch-norm forward (training)").And.Contain("residual"));
        var inference = Assert.Throws<ArgumentException>(() => backend.BatchNormForwardInference(2, 3, 4, x, vector,
            vector, vector, vector, 1e-5, y, relu: true, residual: shortResidual));
        Assert.That(inference!.Message, Does.Contain("batch-norm forward (inference)").And.Contain("residual"));
        var backward = Assert.Throws<ArgumentException>(() => backend.BatchNormBackward(2, 3, 4, x, x, vector,
            vector, vector, batchStatistics: true, y, vector, vector, reluOutput: y, residualGradient: shortResidual));
        Assert.That(backward!.Message, Does.Contain("batch-norm backward").And.Contain("residualGradient"));
    }

    [Test]
    public void OnIlgpuTheFusedTailIsOnePassEachWay()
    {
        if (Device.Backend is not IlgpuBackend backend)
        {
            Assert.Ignore("Launches are counted by the ILGPU backends.");
            return;
        }
        const int n = 2, c = 3, hw = 16;
        using var x = backend.Allocate<float>(n * c * hw);
        using var residual = backend.Allocate<float>(n * c * hw);
        using var y = backend.Allocate<float>(n * c * hw);
        using var dx = backend.Allocate<float>(n * c * hw);
        using var dresidual = backend.Allocate<float>(n * c * hw);
        using var vector = backend.Allocate<float>(c);
        using var mean = backend.Allocate<float>(c);
        using var invStd = backend.Allocate<float>(c);
        using var dgamma = backend.Allocate<float>(c);
        using var dbeta = backend.Allocate<float>(c);
        x.CopyFromHost(Enumerable.Range(0, n * c * hw).Select(i => MathF.Sin(i)).ToArray());
        residual.CopyFromHost(Enumerable.Range(0, n * c * hw).Select(i => MathF.Cos(i)).ToArray());
        backend.Fill(vector, 1f);

        long before = backend.LaunchCount;
        backend.BatchNormForwardTraining(n, c, hw, x, vector, vector, vector, vector, 0.1, 1e-5, y, mean, invStd,
            relu: true, residual: residual);
        Assert.That(backend.LaunchCount - before, Is.EqualTo(2), "training forward: statistics, then one pass");
        before = backend.LaunchCount;
        backend.BatchNormForwardInference(n, c, hw, x, vector, vector, vector, vector, 1e-5, y, relu: true,
            residual: residual);
        Assert.That(backend.LaunchCount - before, Is.EqualTo(1), "eval forward: one pass");
        before = backend.LaunchCount;
        backend.BatchNormBackward(n, c, hw, x, x, vector, mean, invStd, batchStatistics: true, dx, dgamma, dbeta, y,
            dresidual);
        Assert.That(backend.LaunchCount - before, Is.EqualTo(2), "backward: parameter sums, then one pass");
    }
}
