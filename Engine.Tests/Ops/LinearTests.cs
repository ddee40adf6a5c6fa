// Matrix products: Gemm in every transpose combination with alpha/beta, MatMul and Linear against plain-loop
// float64 references, and their gradient checks.
using Engine.Core;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class LinearTests(string kind) : DeviceFixture(kind)
{
    [TestCase(false, false, 5, 7, 3)]
    [TestCase(true, false, 6, 5, 9)]
    [TestCase(false, true, 1, 10, 13)]
    [TestCase(true, true, 9, 1, 4)]
    [TestCase(false, false, 33, 17, 70)]
    public void Float32GemmMatchesReference(bool transposeA, bool transposeB, int m, int n, int k)
    {
        var a = Normal<float>([m * k], 1);
        var b = Normal<float>([k * n], 2);
        var c = Normal<float>([m * n], 3);
        var product = ReferenceOps.MatMul(transposeA, transposeB, m, n, k, Reference.ToDouble(a.ToArray()),
            Reference.ToDouble(b.ToArray()));
        var old = Reference.ToDouble(c.ToArray());
        var expected = product.Select((v, i) => 0.5 * v - 2.0 * old[i]).ToArray();
        Device.Backend.Gemm(transposeA, transposeB, m, n, k, 0.5f, a.Buffer, b.Buffer, -2.0f, c.Buffer);
        Reference.AssertClose(expected, Reference.ToDouble(c.ToArray()), 1e-5, 1e-4, "gemm");
    }

    [Test]
    public void GemmWithZeroBetaIgnoresNaNInTheOutput()
    {
        var a = Normal<float>([12], 1);
        var b = Normal<float>([12], 2);
        var c = Tensor.Full<float>([9], float.NaN, Device);
        Device.Backend.Gemm(false, false, 3, 3, 4, 1f, a.Buffer, b.Buffer, 0f, c.Buffer);
        Assert.That(c.ToArray(), Has.None.NaN);
    }

    [Test]
    public void Float32LinearMatchesReference()
    {
        var x = Normal<float>([7, 13], 4);
        var w = Normal<float>([10, 13], 5);
        var b = Normal<float>([10], 6);
        var expected = ReferenceOps.MatMul(false, true, 7, 10, 13, Reference.ToDouble(x.ToArray()),
            Reference.ToDouble(w.ToArray()));
        var bias = b.ToArray();
        for (int i = 0; i < expected.Length; i++) expected[i] += bias[i % 10];
        Reference.AssertClose(expected, Reference.ToDouble(x.Linear(w, b).ToArray()), 1e-5, 1e-4, "linear");
    }

    [Test]
    public void LinearAndMatMulBackwardPassGradientCheck()
    {
        var x = Variable([4, 6], 7);
        var w = Variable([5, 6], 8);
        var b = Variable([5], 9);
        GradCheck.Run(() => x.Linear(w, b), [x, w, b]).EnsurePassed();
        var m = Variable([6, 3], 10);
        GradCheck.Run(() => Tensor<double>.MatMul(x, m), [x, m]).EnsurePassed();
    }

    [Test]
    public void MismatchedSizesAreRejected()
    {
        var x = Normal<float>([4, 6], 1);
        var error = Assert.Throws<ArgumentException>(() => x.Linear(Normal<float>([5, 7], 2)))!;
        Assert.That(error.Message, Does.Contain("[4, 6]").And.Contain("[5, 7]"));
        Assert.Throws<ArgumentException>(() => Device.Backend.Gemm(false, false, 4, 4, 4, 1f, x.Buffer, x.Buffer, 0f,
            x.Buffer));
    }
}
