// Batch-norm's running-variance update in both conventions — PyTorch's unbiased batch variance (the default) and
// ONNX's biased one — against a plain float64 computation, through the op, the BatchNorm2d module and the backend
// call, in float32 and float64; the normalised output and the running mean do not depend on the choice.
using Engine.Core;
using Engine.Core.Modules;
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class RunningVarianceTests(string kind) : DeviceFixture(kind)
{
    /// <summary>Per channel of x [N, C, HW]: (1 − momentum)·old + momentum·Σ(x − mean)² / (M − 1 or M),
    /// M = N·HW.</summary>
    private static double[] ExpectedRunningVariance(double[] x, int n, int c, int hw, double[] old, double momentum,
        bool unbiased)
    {
        var result = new double[c];
        int m = n * hw;
        for (int ch = 0; ch < c; ch++)
        {
            double sum = 0, squares = 0;
            for (int i = 0; i < n; i++) for (int p = 0; p < hw; p++) sum += x[(i * c + ch) * hw + p];
            double mean = sum / m;
            for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++)
            {
                double d = x[(i * c + ch) * hw + p] - mean;
                squares += d * d;
            }
            result[ch] = (1 - momentum) * old[ch] + momentum * squares / (unbiased ? m - 1 : m);
        }
        return result;
    }

    [TestCase(RunningVarianceUpdate.Unbiased, 2, 3, 4, 5)]
    [TestCase(RunningVarianceUpdate.Biased, 2, 3, 4, 5)]
    [TestCase(RunningVarianceUpdate.Biased, 3, 2, 1, 1)]
    public void Float32RunningVarianceFollowsTheChosenConvention(RunningVarianceUpdate update, int n, int c, int h,
        int w)
    {
        var x = Tensor.RandomNormal<float>([n, c, h, w], 1, mean: 2, std: 3, device: Device);
        var gamma = Tensor.RandomUniform<float>([c], 2, 0.5, 1.5, Device);
        var beta = Tensor.RandomNormal<float>([c], 3, device: Device);
        var runMean = Tensor.Zeros<float>([c], Device);
        var runVar = Tensor.RandomUniform<float>([c], 4, 0.5, 2, Device);
        double[] xs = Reference.ToDouble(x.ToArray()), oldVar = Reference.ToDouble(runVar.ToArray());
        var y = x.BatchNorm(gamma, beta, runMean, runVar, training: true, momentum: 0.3, varianceUpdate: update);
        Reference.AssertClose(ExpectedRunningVariance(xs, n, c, h * w, oldVar, 0.3, update == RunningVarianceUpdate.Unbiased),
            Reference.ToDouble(runVar.ToArray()), 1e-5, 1e-5, $"running variance ({update})");
        var (expected, _, _) = ReferenceLayers.BatchNormTrain(n, c, h * w, xs, Reference.ToDouble(gamma.ToArray()),
            Reference.ToDouble(beta.ToArray()), 1e-5);
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-4, 1e-4, "y");
    }

    [Test]
    public void TheConventionsDifferByTheBesselFactorInFloat64()
    {
        // One batch through two modules that differ only in the option: the outputs and running means agree bit for
        // bit, and the running variances (momentum 1: replaced) are the biased and the unbiased batch variance.
        const int n = 2, c = 3, hw = 6;
        var x = Tensor.RandomNormal<double>([n, c, 2, 3], 7, device: Device);
        using var pytorch = new BatchNorm2d<double>(Device, c, momentum: 1);
        using var onnx = new BatchNorm2d<double>(Device, c, momentum: 1, varianceUpdate: RunningVarianceUpdate.Biased);
        Assert.That(pytorch.VarianceUpdate, Is.EqualTo(RunningVarianceUpdate.Unbiased));
        Assert.That(onnx.VarianceUpdate, Is.EqualTo(RunningVarianceUpdate.Biased));
        var yPytorch = pytorch.Forward(x).ToArray();
        var yOnnx = onnx.Forward(x).ToArray();
        Assert.That(yOnnx, Is.EqualTo(yPytorch), "the output does not depend on the running-variance convention");
        Assert.That(onnx.RunningMean.ToArray(), Is.EqualTo(pytorch.RunningMean.ToArray()));
        var xs = x.ToArray();
        var ones = Enumerable.Repeat(1.0, c).ToArray();
        Reference.AssertClose(ExpectedRunningVariance(xs, n, c, hw, ones, 1, unbiased: false),
            onnx.RunningVar.ToArray(), 1e-12, 1e-12, "biased");
        Reference.AssertClose(ExpectedRunningVariance(xs, n, c, hw, ones, 1, unbiased: true),
            pytorch.RunningVar.ToArray(), 1e-12, 1e-12, "unbiased");
    }

    [Test]
    public void AnUndefinedConventionIsRejectedBeforeAnyUpdate()
    {
        var x = Normal<float>([2, 2, 3, 3], 1);
        var gamma = Tensor.Ones<float>([2], Device);
        var beta = Tensor.Zeros<float>([2], Device);
        var runVar = Tensor.Ones<float>([2], Device);
        var error = Assert.Throws<ArgumentException>(() => x.BatchNorm(gamma, beta, beta, runVar, training: true,
            varianceUpdate: (RunningVarianceUpdate)7))!;
        Assert.That(error.Message, Does.StartWith("batch-norm forward (training)").And.Contain("running-variance"));
        Assert.That(runVar.ToArray(), Is.All.EqualTo(1f));
    }
}
