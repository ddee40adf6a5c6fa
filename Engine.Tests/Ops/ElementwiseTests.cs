// Elementwise ops (add, multiply, scale, ReLU, clone, fill, copy): float32 and float64 forward against the plain
// float64 reference on random non-zero data of awkward lengths, and every backward by the float64 gradient check.
using System.Numerics;
using Engine.Core;
using Engine.Core.Autograd;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class ElementwiseTests(string kind) : DeviceFixture(kind)
{
    public static readonly string[] Operations = ["add", "multiply", "scale", "relu", "clone", "subtract"];

    private static readonly int[][] Shapes = [[1], [7], [64], [1000], [4099], [2, 3, 5, 7]];

    private static Tensor<T> Apply<T>(string op, Tensor<T> a, Tensor<T> b) where T : unmanaged, IFloatingPointIeee754<T> => op switch
    {
        "add" => a + b,
        "multiply" => a * b,
        "scale" => a * T.CreateChecked(-1.75),
        "relu" => a.Relu(),
        "clone" => a.Clone(),
        "subtract" => a - b,
        _ => throw new ArgumentException(op),
    };

    private static double Expected(string op, double a, double b) => op switch
    {
        "add" => a + b,
        "multiply" => a * b,
        "scale" => -1.75 * a,
        "relu" => Math.Max(a, 0),
        "clone" => a,
        "subtract" => a - b,
        _ => throw new ArgumentException(op),
    };

    [Test]
    public void Float32ForwardMatchesFloat64Reference([ValueSource(nameof(Operations))] string op)
    {
        foreach (var dims in Shapes)
        {
            var shape = new Shape(dims);
            var a = Normal<float>(shape, 1);
            var b = Normal<float>(shape, 2);
            var expected = Reference.Zip(Reference.ToDouble(a.ToArray()), Reference.ToDouble(b.ToArray()),
                (x, y) => Expected(op, x, y));
            var actual = Reference.ToDouble(Apply(op, a, b).ToArray());
            Reference.AssertClose(expected, actual, 1e-6, 1e-6, $"{op} float32 {shape}");
        }
    }

    [Test]
    public void Float64ForwardMatchesReference([ValueSource(nameof(Operations))] string op)
    {
        foreach (var dims in Shapes)
        {
            var shape = new Shape(dims);
            var a = Normal<double>(shape, 3);
            var b = Normal<double>(shape, 4);
            var expected = Reference.Zip(a.ToArray(), b.ToArray(), (x, y) => Expected(op, x, y));
            Reference.AssertClose(expected, Apply(op, a, b).ToArray(), 1e-14, 1e-14, $"{op} float64 {shape}");
        }
    }

    [Test]
    public void BackwardPassesGradientCheck([ValueSource(nameof(Operations))] string op)
    {
        var a = Variable([2, 3, 4, 5], 5);
        var b = Variable([2, 3, 4, 5], 6);
        GradCheck.Run(() => Apply(op, a, b), [a, b]).EnsurePassed();
    }

    [Test]
    public void ResidualBlockOfElementwiseOpsPassesGradientCheck()
    {
        // y = relu(relu(x ⊙ w1) ⊙ w2 + x): the residual shape of the paper's block, with ⊙ standing in for conv.
        var x = Variable([2, 3, 4, 4], 7);
        var w1 = Variable([2, 3, 4, 4], 8);
        var w2 = Variable([2, 3, 4, 4], 9);
        var result = GradCheck.Run(() => ((x * w1).Relu() * w2 + x).Relu(), [x, w1, w2],
            new GradCheckOptions { InputNames = ["x", "w1", "w2"] });
        Assert.That(result.Passed, Is.True, result.ToString());
        Assert.That(result.Comparisons, Is.EqualTo(3 * 96));
    }

    [Test]
    public void FillAndCopyWriteEveryElement()
    {
        foreach (var dims in Shapes)
        {
            var shape = new Shape(dims);
            var t = Normal<float>(shape, 10);
            t.Fill(2.5f);
            Assert.That(t.ToArray(), Is.All.EqualTo(2.5f), $"fill {shape}");
            var source = Normal<double>(shape, 11);
            var target = Tensor.Zeros<double>(shape, Device).CopyFrom(source);
            Assert.That(target.ToArray(), Is.EqualTo(source.ToArray()), $"copy {shape}");
        }
    }

    [Test]
    public void MismatchedShapesAreRejectedBeforeAnyLaunch()
    {
        var a = Normal<float>([2, 3], 1);
        var b = Normal<float>([3, 2], 2);
        var error = Assert.Throws<ArgumentException>(() => _ = a + b)!;
        Assert.That(error.Message, Does.Contain("[2, 3]").And.Contain("[3, 2]").And.Contain("add"));
        Assert.Throws<ArgumentException>(() => a.CopyFrom(b));
    }

    [Test]
    public void TensorsOfDifferentDevicesAreRejected()
    {
        using var other = Device.Create("ilgpu-cpu");
        var a = Normal<float>([4], 1);
        var b = Tensor.RandomNormal<float>([4], 2, device: other);
        var error = Assert.Throws<ArgumentException>(() => _ = a * b)!;
        Assert.That(error.Message, Does.Contain(a.Device.ToString()).And.Contain(other.ToString()));
    }

    [Test]
    public void InPlaceWriteToALeafThatRequiresGradIsRejectedUnlessNoGrad()
    {
        var w = Variable([3], 1);
        Assert.Throws<InvalidOperationException>(() => w.Fill(0));
        using (GradMode.NoGrad()) w.Fill(0);
        Assert.That(w.ToArray(), Is.All.EqualTo(0.0));
    }
}
