// The memory-bound passes on shapes that exercise their blocking: batch-norm over channels cut into several blocks
// (whole planes, and pieces of one long plane) against float64, forward and backward, plain and with the residual
// add and ReLU fused (and over 2 MiB, where the CPU writes y, dx and the residual's gradient past the caches);
// max-pooling over general
// geometries (dilation, uneven pads, ceil mode, stride above the window, ties) against a float64 row-major scan,
// in float32 and float64, and its backward against the float64 scatter and the bits of the float32 one in output
// order;
// and the multi-tensor SGD step, bit-identical to one SgdStep per tensor, its list checks (as AdamSteps': no
// gradient may be a buffer the step writes). On every backend.
using Engine.Core;
using Engine.Core.Optim;
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class MemoryBoundTests(string kind) : DeviceFixture(kind)
{
    private DeviceBuffer<float> Upload(float[] values)
    {
        var buffer = Device.Backend.Allocate<float>(values.Length);
        buffer.CopyFromHost(values);
        return buffer;
    }

    private static float[] Uniform(int length, int seed, double low, double high)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(low + (high - low) * random.NextDouble())).ToArray();
    }

    // 70 images of 30×30: several blocks of whole planes per channel; 2 images of 200×200: pieces of one plane;
    // 9 channels: one block (one task) per channel; 64 images of 9 channels of 32×32: 2.25 MiB, over the CPU's
    // CpuBackend.StreamedOutputBytes.
    [TestCase(70, 2, 900, false)]
    [TestCase(6, 9, 300, false)]
    [TestCase(2, 1, 40000, false)]
    [TestCase(5, 3, 7, false)]
    [TestCase(70, 2, 900, true)]
    [TestCase(64, 9, 1024, false)]
    [TestCase(64, 9, 1024, true)]
    public void Float32BatchNormOverManyBlocksMatchesReference(int n, int c, int spatial, bool fused)
    {
        var backend = Device.Backend;
        int length = n * c * spatial;
        float[] xs = Uniform(length, 1, 2, 6), dys = Uniform(length, 2, -1, 1), gammas = Uniform(c, 3, 0.5, 1.5),
            betas = Uniform(c, 4, -1, 1), residuals = Uniform(length, 5, -1.5, 1.5);
        using var x = Upload(xs);
        using var dy = Upload(dys);
        using var gamma = Upload(gammas);
        using var beta = Upload(betas);
        using var residual = Upload(residuals);
        using var runningMean = Upload(new float[c]);
        using var runningVar = Upload(Enumerable.Repeat(1f, c).ToArray());
        using var y = backend.Allocate<float>(length);
        using var mean = backend.Allocate<float>(c);
        using var invStd = backend.Allocate<float>(c);
        using var dx = backend.Allocate<float>(length);
        using var dgamma = backend.Allocate<float>(c);
        using var dbeta = backend.Allocate<float>(c);
        using var residualGradient = backend.Allocate<float>(length);
        backend.BatchNormForwardTraining(n, c, spatial, x, gamma, beta, runningMean, runningVar, 0.1, 1e-5, y, mean,
            invStd, relu: fused, residual: fused ? residual : null);
        backend.BatchNormBackward(n, c, spatial, x, dy, gamma, mean, invStd, batchStatistics: true, dx, dgamma,
            dbeta, reluOutput: fused ? y : null, residualGradient: fused ? residualGradient : null);

        var (expectedY, expectedMean, expectedVariance) = ReferenceLayers.BatchNormTrain(n, c, spatial,
            Reference.ToDouble(xs), Reference.ToDouble(gammas), Reference.ToDouble(betas), 1e-5);
        // Fused: y = max(bn(x) + residual, 0), and the gradient that reaches batch-norm (and the residual) is dy
        // where y > 0 (the float32 y decides the mask, as it does on the device).
        var downloadedY = Reference.DownloadFloat(y);
        if (fused)
        {
            for (int i = 0; i < length; i++) expectedY[i] = Math.Max(expectedY[i] + residuals[i], 0);
            for (int i = 0; i < length; i++) dys[i] = downloadedY[i] > 0 ? dys[i] : 0;
        }
        using var errors = Assert.EnterMultipleScope();
        if (fused)
            Assert.That(Reference.DownloadFloat(residualGradient), Is.EqualTo(dys), "the residual's gradient");
        Reference.AssertClose(expectedY, Reference.ToDouble(downloadedY), 1e-4, 1e-4, "y");
        Reference.AssertClose(expectedMean, Reference.ToDouble(Reference.DownloadFloat(mean)), 1e-6, 1e-6, "mean");
        Reference.AssertClose(expectedVariance.Select(v => 1 / Math.Sqrt(v + 1e-5)).ToArray(),
            Reference.ToDouble(Reference.DownloadFloat(invStd)), 1e-5, 1e-5, "1/std");

        // dbeta = Σ dy, dgamma = Σ dy·x̂, dx = gamma/std · (dy − dbeta/m − x̂·dgamma/m), in float64.
        int m = n * spatial;
        var expectedDx = new double[length];
        var expectedDgamma = new double[c];
        var expectedDbeta = new double[c];
        double Xhat(int i, int channel) =>
            (xs[i] - expectedMean[channel]) / Math.Sqrt(expectedVariance[channel] + 1e-5);
        for (int i = 0; i < length; i++)
        {
            int channel = i / spatial % c;
            expectedDbeta[channel] += dys[i];
            expectedDgamma[channel] += dys[i] * Xhat(i, channel);
        }
        for (int i = 0; i < length; i++)
        {
            int channel = i / spatial % c;
            expectedDx[i] = gammas[channel] / Math.Sqrt(expectedVariance[channel] + 1e-5) *
                            (dys[i] - expectedDbeta[channel] / m - Xhat(i, channel) * expectedDgamma[channel] / m);
        }
        Reference.AssertClose(expectedDbeta, Reference.ToDouble(Reference.DownloadFloat(dbeta)), 1e-3, 1e-4, "dbeta");
        Reference.AssertClose(expectedDgamma, Reference.ToDouble(Reference.DownloadFloat(dgamma)), 1e-3, 1e-4, "dgamma");
        Reference.AssertClose(expectedDx, Reference.ToDouble(Reference.DownloadFloat(dx)), 1e-4, 1e-3, "dx");
    }

    /// <summary>Geometries beyond the square stem pool: uneven windows and pads, dilation, ceil mode, a stride
    /// above the window, widths that leave a scalar tail after the vector loop, and planes enough for several
    /// tasks; output rows of whole vectors and a tail (float32's 8 lanes, float64's 4) whose taps are read at
    /// stride 1, at stride 2 with a dilated window, and gathered at stride 3.</summary>
    private static IEnumerable<PoolGeometry> Geometries() =>
    [
        PoolGeometry.Square(2, 3, 17, 19, 3, 2, 1),
        new(1, 2, 6, 20, 3, 3, 1, 1, 1, 1, 1, 1),
        new(1, 2, 9, 41, 3, 3, 2, 2, 1, 1, 2, 2, DilationWidth: 2),
        new(1, 2, 7, 32, 2, 3, 1, 3, 0, 0, 1, 1),
        new(1, 2, 13, 21, 2, 3, 1, 2, 0, 1, 1, 2),
        new(2, 2, 15, 23, 3, 3, 2, 2, 2, 0, 1, 1, DilationHeight: 2, DilationWidth: 3),
        new(1, 3, 10, 12, 3, 2, 2, 3, 1, 1, 0, 1, CeilMode: true),
        new(1, 1, 9, 40, 2, 2, 4, 5, 0, 0, 0, 0),
        PoolGeometry.Square(2, 5, 70, 70, 3, 2, 1), // the CPU's backward: tasks of 6 planes, then 4
    ];

    [TestCaseSource(nameof(Geometries))]
    public void MaxPoolOverGeneralGeometriesMatchesTheRowMajorScan(PoolGeometry g)
    {
        g = g.Validated();
        // Random values, then values from {1, 2, 3} (many ties), then with NaNs sprinkled in.
        var random = new Random(5);
        int length = (int)g.InputLength;
        float[][] inputs =
        [
            Uniform(length, 6, -2, 2),
            Enumerable.Range(0, length).Select(_ => (float)random.Next(1, 4)).ToArray(),
            Enumerable.Range(0, length).Select(_ => random.Next(7) == 0 ? float.NaN : random.Next(1, 4)).ToArray(),
        ];
        foreach (var xs in inputs)
        {
            using var x = Upload(xs);
            using var y = Device.Backend.Allocate<float>(g.OutputLength);
            using var argmax = Device.Backend.Allocate<int>(g.OutputLength);
            Device.Backend.MaxPoolForward(g, x, y, argmax);
            var (expectedY, expectedArgmax) = RowMajorMaxPool(g, Reference.ToDouble(xs));
            var indices = new int[g.OutputLength];
            argmax.CopyToHost(indices);
            Assert.That(indices, Is.EqualTo(expectedArgmax), "argmax");
            Assert.That(Reference.ToDouble(Reference.DownloadFloat(y)), Is.EqualTo(expectedY), "y");

            // The same values in float64 (a vector holds 4 where float32's holds 8).
            using var x64 = Device.Backend.Allocate<double>(length);
            x64.CopyFromHost(Reference.ToDouble(xs));
            using var y64 = Device.Backend.Allocate<double>(g.OutputLength);
            Device.Backend.MaxPoolForward(g, x64, y64, argmax);
            var pooled64 = new double[g.OutputLength];
            y64.CopyToHost(pooled64);
            argmax.CopyToHost(indices);
            Assert.That(indices, Is.EqualTo(expectedArgmax), "argmax, float64");
            Assert.That(pooled64, Is.EqualTo(expectedY), "y, float64");

            // Backward from that argmax: close to the float64 scatter, and the bits of the float32 one in output
            // order from +0 (where windows overlap, several dy sum into one cell; with ties they pick the same).
            var dys = Uniform((int)g.OutputLength, 7, -1, 1);
            using var dy = Upload(dys);
            using var dx = Upload(Enumerable.Repeat(float.NaN, length).ToArray()); // overwritten
            Device.Backend.MaxPoolBackward(g, dy, argmax, dx);
            var expectedDx = new double[length];
            var orderedDx = new float[length];
            int planeSize = g.InHeight * g.InWidth, outSize = g.OutHeight * g.OutWidth;
            for (int o = 0; o < indices.Length; o++)
            {
                int i = o / outSize * planeSize + indices[o];
                expectedDx[i] += dys[o];
                orderedDx[i] += dys[o];
            }
            var actualDx = Reference.DownloadFloat(dx);
            Reference.AssertClose(expectedDx, Reference.ToDouble(actualDx), 1e-6, 1e-6, "dx");
            Assert.That(actualDx, Is.EqualTo(orderedDx), "dx, summed in output order");
        }
    }

    /// <summary>The window maximum in float64, scanned in row-major order: a greater value or a NaN replaces.</summary>
    private static (double[] Y, int[] Argmax) RowMajorMaxPool(PoolGeometry g, double[] x)
    {
        var y = new double[g.OutputLength];
        var argmax = new int[g.OutputLength];
        int o = 0;
        for (int plane = 0; plane < g.Batch * g.Channels; plane++)
            for (int oh = 0; oh < g.OutHeight; oh++)
                for (int ow = 0; ow < g.OutWidth; ow++, o++)
                {
                    double best = double.NegativeInfinity;
                    int bestIndex = -1;
                    for (int r = 0; r < g.KernelHeight; r++)
                    {
                        int h = oh * g.StrideHeight - g.PadTop + r * g.DilationHeight;
                        if (h < 0 || h >= g.InHeight) continue;
                        for (int q = 0; q < g.KernelWidth; q++)
                        {
                            int w = ow * g.StrideWidth - g.PadLeft + q * g.DilationWidth;
                            if (w < 0 || w >= g.InWidth) continue;
                            double v = x[(long)plane * g.InHeight * g.InWidth + h * g.InWidth + w];
                            if (bestIndex < 0 || v > best || double.IsNaN(v))
                            {
                                best = v;
                                bestIndex = h * g.InWidth + w;
                            }
                        }
                    }
                    y[o] = best;
                    argmax[o] = bestIndex;
                }
        return (y, argmax);
    }

    [TestCase(0.9, 0.1, 1e-3, false)]
    [TestCase(0.9, 0.0, 0.0, true)]
    [TestCase(0.0, 0.0, 1e-3, false)]
    public void SgdStepsGiveTheBitsOfOneStepPerTensor(double momentum, double dampening, double weightDecay,
        bool nesterov)
    {
        var backend = Device.Backend;
        var p = new SgdParameters(0.05, momentum, dampening, weightDecay, nesterov).Validated();
        // Lengths around the chunk size and the vector width, and an empty one (skipped).
        int[] lengths = [1, 7, 33, 40000, 0, 70000, 5];
        float[][] initial = lengths.Select((n, i) => Uniform(n, 10 + i, -1, 1)).ToArray();
        float[][] gradients = lengths.Select((n, i) => Uniform(n, 30 + i, -1, 1)).ToArray();
        float[][] momenta = lengths.Select((n, i) => Uniform(n, 50 + i, -1, 1)).ToArray();
        bool[] firstSteps = lengths.Select((_, i) => i % 2 == 0).ToArray();
        var together = initial.Select(Upload).ToArray();
        var alone = initial.Select(Upload).ToArray();
        var grads = gradients.Select(Upload).ToArray();
        var togetherMomenta = momenta.Select(Upload).ToArray();
        var aloneMomenta = momenta.Select(Upload).ToArray();
        try
        {
            for (int step = 0; step < 2; step++)
            {
                backend.SgdSteps(p, together, grads, momentum != 0 ? togetherMomenta : null,
                    step == 0 ? firstSteps : new bool[lengths.Length]);
                for (int i = 0; i < lengths.Length; i++)
                    backend.SgdStep(p, alone[i], grads[i], momentum != 0 ? aloneMomenta[i] : null,
                        step == 0 && firstSteps[i]);
            }
            for (int i = 0; i < lengths.Length; i++)
            {
                Assert.That(Reference.DownloadFloat(together[i]), Is.EqualTo(Reference.DownloadFloat(alone[i])), $"parameter {i}");
                Assert.That(Reference.DownloadFloat(togetherMomenta[i]), Is.EqualTo(Reference.DownloadFloat(aloneMomenta[i])), $"momentum {i}");
                if (lengths[i] > 0)
                    Assert.That(Reference.DownloadFloat(together[i]), Is.Not.EqualTo(initial[i]), $"parameter {i} was updated");
            }
        }
        finally
        {
            foreach (var buffer in together.Concat(alone).Concat(grads).Concat(togetherMomenta).Concat(aloneMomenta))
                buffer.Dispose();
        }
    }

    [Test]
    public void SgdStepsRejectsMismatchedListsAndRepeatedBuffers()
    {
        var backend = Device.Backend;
        var p = new SgdParameters(0.1, Momentum: 0.9).Validated();
        using var a = Upload([1, 2, 3]);
        using var b = Upload([4, 5, 6]);
        using var g = Upload([0.5f, 0.5f, 0.5f]);
        using var m = Upload([0, 0, 0]);
        using var m2 = Upload([0, 0, 0]);
        using var shortBuffer = Upload([1, 2]);
        var errors = new[]
        {
            Assert.Throws<ArgumentException>(() => backend.SgdSteps(p, [a, b], [g], [m, m], [false, false]))!,
            Assert.Throws<ArgumentException>(() => backend.SgdSteps(p, [a, a], [g, g], [m, b], [false, false]))!,
            Assert.Throws<ArgumentException>(() => backend.SgdSteps(p, [a, b], [g, g], [m, m], [false, false]))!,
            Assert.Throws<ArgumentException>(() => backend.SgdSteps(p, [a], [g], null, [false]))!,
            Assert.Throws<ArgumentException>(() => backend.SgdSteps(p, [a], [shortBuffer], [m], [false]))!,
            // A gradient that is a buffer the step writes: another parameter, a momentum buffer, its own parameter.
            Assert.Throws<ArgumentException>(() => backend.SgdSteps(p, [a, b], [g, a], [m, m2], [false, false]))!,
            Assert.Throws<ArgumentException>(() => backend.SgdSteps(p, [a], [m], [m], [false]))!,
            Assert.Throws<ArgumentException>(() =>
                backend.SgdSteps(p with { Momentum = 0 }, [a, b], [g, b], null, [false, false]))!,
        };
        Assert.That(errors[0].Message, Does.Contain("every list needs one entry per parameter"));
        Assert.That(errors[1].Message, Does.Contain("parameters[1] is a buffer already written"));
        Assert.That(errors[2].Message, Does.Contain("momentumBuffers[1] is a buffer already written"));
        Assert.That(errors[3].Message, Does.Contain("needs a momentum buffer for parameter 0"));
        Assert.That(errors[4].Message, Does.Contain("grads[0]"));
        Assert.That(errors[5].Message, Does.StartWith("SGD steps:").And.Contain("grads[1] is a buffer this step writes"));
        Assert.That(errors[6].Message, Does.Contain("grads[0] is a buffer this step writes"));
        Assert.That(errors[7].Message, Does.Contain("grads[1] is a buffer this step writes"));
        Assert.That(errors.Skip(5).Select(e => e.ParamName), Is.All.EqualTo("grads"));
        Assert.That(Reference.DownloadFloat(a), Is.EqualTo(new[] { 1f, 2, 3 }), "nothing was updated");
        Assert.That(Reference.DownloadFloat(b), Is.EqualTo(new[] { 4f, 5, 6 }), "nothing was updated");
        Assert.That(Reference.DownloadFloat(m), Is.EqualTo(new[] { 0f, 0, 0 }), "nothing was updated");
    }

    [Test]
    public void SgdOptimizerStepsLikeOneSgdStepPerParameter()
    {
        // Engine.Core's Sgd takes every parameter in one SgdSteps op; the bits are those of one step per tensor.
        var weights = Tensor.RandomNormal<float>([9, 5], 60, device: Device);
        var bias = Tensor.RandomNormal<float>([9], 61, device: Device);
        weights.RequiresGrad = true;
        bias.RequiresGrad = true;
        float[] w0 = weights.ToArray(), b0 = bias.ToArray();
        var hyper = new SgdParameters(0.1, Momentum: 0.9, WeightDecay: 1e-2).Validated();
        using var sgd = new Sgd<float>([weights, bias], 0.1, momentum: 0.9, weightDecay: 1e-2);
        using var expectedW = Upload(w0);
        using var expectedB = Upload(b0);
        using var momentumW = Upload(new float[w0.Length]);
        using var momentumB = Upload(new float[b0.Length]);
        var x = Tensor.RandomNormal<float>([3, 5], 62, device: Device);
        for (int step = 0; step < 2; step++)
        {
            sgd.ZeroGrad();
            var y = x.Linear(weights, bias);
            (y * y).Sum().Backward();
            Device.Backend.SgdStep(hyper, expectedW, weights.Grad!.Buffer, momentumW, firstStep: step == 0);
            Device.Backend.SgdStep(hyper, expectedB, bias.Grad!.Buffer, momentumB, firstStep: step == 0);
            sgd.Step();
            Assert.That(weights.ToArray(), Is.EqualTo(Reference.DownloadFloat(expectedW)), $"weights after step {step + 1}");
            Assert.That(bias.ToArray(), Is.EqualTo(Reference.DownloadFloat(expectedB)), $"bias after step {step + 1}");
        }
    }
}
