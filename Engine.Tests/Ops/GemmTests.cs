// ONNX Gemm as a tensor op: y = alpha · op(a) · op(b) + beta · c for every transA/transB and each form of c (none,
// scalar, [N], [1, N], [M, 1], [M, N]) in float32 against a plain-loop float64 reference, every gradient (a, b and c,
// c's summed over its broadcast axes) by the float64 gradient check, and bad shapes rejected. MatMul as ONNX's
// test_matmul_2d uses it.
using Engine.Core;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class GemmTests(string kind) : DeviceFixture(kind)
{
    private const int M = 3, N = 4, K = 5;

    public static IEnumerable<TestCaseData> Cases()
    {
        int[]?[] cShapes = [null, [], [N], [1, N], [M, 1], [M, N]];
        foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
                foreach (var c in cShapes)
                    yield return new TestCaseData(transposeA, transposeB, c).SetArgDisplayNames(
                        $"transA {transposeA}", $"transB {transposeB}", c is null ? "no c" : $"c {new Shape(c)}");
    }

    private static int[] AShape(bool transposeA) => transposeA ? [K, M] : [M, K];

    private static int[] BShape(bool transposeB) => transposeB ? [N, K] : [K, N];

    [TestCaseSource(nameof(Cases))]
    public void Float32MatchesTheReference(bool transposeA, bool transposeB, int[]? cShape)
    {
        var a = Normal<float>(AShape(transposeA), 1);
        var b = Normal<float>(BShape(transposeB), 2);
        var c = cShape is null ? null : Normal<float>(cShape, 3);
        var y = Tensor<float>.Gemm(a, b, c, 0.75, -1.5, transposeA, transposeB);
        Assert.That(y.Shape, Is.EqualTo(new Shape(M, N)));
        var expected = ReferenceOps.MatMul(transposeA, transposeB, M, N, K, Reference.ToDouble(a.ToArray()),
            Reference.ToDouble(b.ToArray()));
        var cValues = c is null ? null : Reference.ToDouble(c.ToArray());
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] *= 0.75;
            if (cValues is not null)
                expected[i] += -1.5 * cValues[BroadcastReference.SourceIndex(i, [M, N], cShape!)];
        }
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-5, 1e-5, "gemm");
    }

    [TestCaseSource(nameof(Cases))]
    public void BackwardPassesGradientCheck(bool transposeA, bool transposeB, int[]? cShape)
    {
        var a = Variable(AShape(transposeA), 4);
        var b = Variable(BShape(transposeB), 5);
        if (cShape is null)
        {
            GradCheck.Run(() => Tensor<double>.Gemm(a, b, null, 1.25, 1, transposeA, transposeB), [a, b])
                .EnsurePassed();
            return;
        }
        var c = Variable(cShape, 6);
        GradCheck.Run(() => Tensor<double>.Gemm(a, b, c, 1.25, -0.5, transposeA, transposeB), [a, b, c])
            .EnsurePassed();
    }

    [Test]
    public void ZeroBetaIgnoresCAndGivesItNoGradient()
    {
        var a = Variable([M, K], 7);
        var b = Variable([K, N], 8);
        var c = Tensor.Full<double>([N], double.NaN, Device);
        c.RequiresGrad = true;
        var y = Tensor<double>.Gemm(a, b, c, beta: 0);
        Assert.That(y.ToArray(), Is.EqualTo(Tensor<double>.MatMul(a, b).ToArray()));
        y.Sum().Backward();
        Assert.That(c.Grad!.ToArray(), Is.EqualTo(new double[N]));
    }

    [Test]
    public void MatMul2dMatchesOnnxTestShapes()
    {
        // ONNX test_matmul_2d: [3, 4] · [4, 3].
        var a = Normal<float>([3, 4], 9);
        var b = Normal<float>([4, 3], 10);
        var expected = ReferenceOps.MatMul(false, false, 3, 3, 4, Reference.ToDouble(a.ToArray()),
            Reference.ToDouble(b.ToArray()));
        Reference.AssertClose(expected, Reference.ToDouble(Tensor<float>.MatMul(a, b).ToArray()), 1e-5, 1e-5,
            "matmul 2-D");
    }

    [Test]
    public void BadShapesAreRejected()
    {
        var a = Normal<float>([M, K], 11);
        var b = Normal<float>([K, N], 12);
        var error = Assert.Throws<ArgumentException>(() => Tensor<float>.Gemm(a, b, transposeB: true))!;
        Assert.That(error.Message, Does.StartWith("gemm").And.Contain("[3, 5]").And.Contain("[5, 4]"));
        error = Assert.Throws<ArgumentException>(() => Tensor<float>.Gemm(a, b, Normal<float>([M], 13)))!;
        Assert.That(error.Message, Does.StartWith("gemm").And.Contain("[3]").And.Contain("[3, 4]"));
        Assert.Throws<ArgumentException>(() => Tensor<float>.Gemm(a, b, Normal<float>([1, M, N], 14)));
        Assert.Throws<ArgumentException>(() => Tensor<float>.Gemm(Normal<float>([M], 15), b));
    }
}
