// Sum and mean: float32 against the float64 reference over lengths that exercise one and several reduction
// passes, bitwise determinism, and their backward by the float64 gradient check.
using Engine.Core;
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
}
