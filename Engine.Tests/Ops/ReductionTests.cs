// Sum and mean: float32 against the float64 reference over lengths that exercise one and several reduction
// passes, bitwise determinism, and their backward by the float64 gradient check. The per-channel reductions (sum per
// channel, batch-norm statistics, global average pooling) against float64 over one channel of more than 2^24
// values, laid out as one image plane and as a batch of single values.
using Engine.Core;
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class ReductionTests(string kind) : DeviceFixture(kind)
{
    private static readonly int[] Lengths = [1, 2, 31, 32, 33, 1000, 65537, 300007];

    [Test]
    public void Float32SumAndMeanMatchFloat64Reference([ValueSource(nameof(Lengths))] int n)
    {
        var x = Normal<float>([n], n);
        var data = Reference.ToDouble(x.ToArray());
        double sum = Reference.Sum(data);
        double absSum = data.Sum(Math.Abs);
        // float32 accumulation: the error bound grows with the absolute sum, not the (cancelling) signed sum.
        Assert.That((double)x.Sum().Item(), Is.EqualTo(sum).Within(1e-6 * absSum + 1e-6), "sum");
        Assert.That((double)x.Mean().Item(), Is.EqualTo(sum / n).Within((1e-6 * absSum + 1e-6) / n), "mean");
    }

    [Test]
    public void Float64SumMatchesReference([ValueSource(nameof(Lengths))] int n)
    {
        var x = Normal<double>([n], n + 1);
        var data = x.ToArray();
        Assert.That(x.Sum().Item(), Is.EqualTo(Reference.Sum(data)).Within(1e-12 * data.Sum(Math.Abs) + 1e-15));
        Assert.That(x.Sum().Shape, Is.EqualTo(Shape.Scalar));
    }

    [Test]
    public void Float32SumOfManyPositiveValuesStaysAccurate()
    {
        // 2^26 values in [0, 1): a float32 running sum stalls once its ulp outgrows the addends (near 2^24), so any
        // pass that adds millions of elements in one sequence loses about half of this total.
        const int n = 1 << 26;
        var x = Tensor.RandomUniform<float>([n], seed: 26, device: Device);
        double sum = Reference.Sum(Reference.ToDouble(x.ToArray()));
        Assert.That((double)x.Sum().Item(), Is.EqualTo(sum).Within(1e-5 * sum), "sum");
        Assert.That((double)x.Mean().Item(), Is.EqualTo(sum / n).Within(1e-5 * sum / n), "mean");
    }

    [Test]
    public void SumIsBitwiseDeterministic()
    {
        var x = Normal<float>([300007], 5);
        float first = x.Sum().Item();
        for (int i = 0; i < 5; i++) Assert.That(x.Sum().Item(), Is.EqualTo(first));
    }

    [Test]
    public void SumAndMeanBackwardPassGradientCheck()
    {
        var x = Variable([3, 4, 5], 3);
        GradCheck.Run(() => x.Sum(), [x]).EnsurePassed();
        GradCheck.Run(() => (x * x).Mean(), [x]).EnsurePassed();
    }

    [Test]
    public void MeanOfEmptyTensorIsRejected()
    {
        var x = Tensor.Zeros<float>([0, 3], Device);
        Assert.Throws<InvalidOperationException>(() => x.Mean());
        Assert.That(x.Sum().Item(), Is.EqualTo(0f));
    }

    /// <summary>How the one long channel is laid out in [N, 1, HW].</summary>
    public enum ChannelLayout { OnePlane, ManyImages }

    private const int LongChannel = (1 << 24) + 5;

    [Test]
    public void PerChannelReductionsOfOneLongChannelStayAccurate([Values] ChannelLayout layout)
    {
        // 2^24 + 5 values in [0.5, 1.5): a float32 running sum stalls near 2^24 / 2, and sequences of 2^20 additions
        // per accumulator lose several significant digits; pairwise or blocked sums stay within a few ulps.
        var (batch, spatial) = layout == ChannelLayout.OnePlane ? (1, LongChannel) : (LongChannel, 1);
        var x = Tensor.RandomUniform<float>([batch, 1, 1, spatial], seed: 24, low: 0.5, high: 1.5, device: Device);
        double[] data = Reference.ToDouble(x.ToArray());
        double sum = Reference.Sum(data), mean = sum / data.Length;
        double variance = data.Sum(v => (v - mean) * (v - mean)) / data.Length;
        var backend = Device.Backend;
        using var errors = Assert.EnterMultipleScope();

        using var channelSum = backend.Allocate<float>(1);
        backend.SumPerChannel(batch, 1, spatial, x.Buffer, channelSum);
        Assert.That(RelativeError(Read(channelSum), sum), Is.LessThan(1e-6), "sum per channel");

        using var gamma = backend.Allocate<float>(1);
        using var beta = backend.Allocate<float>(1);
        using var runningMean = backend.Allocate<float>(1);
        using var runningVar = backend.Allocate<float>(1);
        using var savedMean = backend.Allocate<float>(1);
        using var savedInvStd = backend.Allocate<float>(1);
        using var y = backend.Allocate<float>(data.Length);
        backend.Fill(gamma, 1f);
        backend.Fill(beta, 0f);
        backend.Fill(runningMean, 0f);
        backend.Fill(runningVar, 1f);
        backend.BatchNormForwardTraining(batch, 1, spatial, x.Buffer, gamma, beta, runningMean, runningVar, 1.0, 1e-5,
            y, savedMean, savedInvStd, relu: false);
        Assert.That(RelativeError(Read(savedMean), mean), Is.LessThan(1e-6), "batch-norm mean");
        Assert.That(RelativeError(Read(savedInvStd), 1 / Math.Sqrt(variance + 1e-5)), Is.LessThan(1e-6),
            "batch-norm 1/std");

        if (layout != ChannelLayout.OnePlane) return; // global average pooling averages each image's plane
        using var average = backend.Allocate<float>(1);
        backend.GlobalAveragePoolForward(1, 1, spatial, x.Buffer, average);
        Assert.That(RelativeError(Read(average), mean), Is.LessThan(1e-6), "global average pool");
    }

    private static double RelativeError(float value, double reference) => Math.Abs(value - reference) / Math.Abs(reference);

    private static float Read(DeviceBuffer<float> buffer)
    {
        var host = new float[1];
        buffer.CopyToHost(host);
        return host[0];
    }
}
