// Axis permutations and ONNX Flatten: Permute over every permutation of ranks 2–4 and sampled ones of ranks 5–6,
// Transpose and the default reversal, Flatten(axis) for axes 0, 1, 2, −1 and Rank; exact against a plain-loop
// reference in float32 and float64, Reshape with an inferred −1 axis, backward by the float64 gradient check, bad
// axes rejected.
using Engine.Core;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class PermuteTests(string kind) : DeviceFixture(kind)
{
    private static readonly int[] Sizes = [2, 3, 4, 1, 5, 2];

    /// <summary>Every permutation of rank 2–4, and for ranks 5 and 6 the reversal, a rotation and a swap.</summary>
    public static IEnumerable<int[]> Permutations()
    {
        for (int rank = 2; rank <= 4; rank++)
            foreach (var permutation in All(Enumerable.Range(0, rank).ToArray()))
                yield return permutation;
        foreach (int rank in new[] { 5, 6 })
        {
            yield return Enumerable.Range(0, rank).Reverse().ToArray();
            yield return Enumerable.Range(0, rank).Select(d => (d + 2) % rank).ToArray();
            var swap = Enumerable.Range(0, rank).ToArray();
            (swap[1], swap[rank - 1]) = (swap[rank - 1], swap[1]);
            yield return swap;
        }
    }

    private static IEnumerable<int[]> All(int[] items) => items.Length <= 1
        ? [items]
        : items.SelectMany(first =>
            All(items.Where(i => i != first).ToArray()).Select(rest => rest.Prepend(first).ToArray()));

    /// <summary>y = x transposed by <paramref name="axes"/>, by plain loops over the output.</summary>
    private static double[] ReferencePermute(double[] x, int[] shape, int[] axes)
    {
        int rank = shape.Length;
        var strides = new int[rank];
        for (int d = rank - 1, s = 1; d >= 0; s *= shape[d], d--) strides[d] = s;
        var outShape = axes.Select(a => shape[a]).ToArray();
        var y = new double[x.Length];
        for (int i = 0; i < y.Length; i++)
        {
            int rest = i, source = 0;
            for (int d = rank - 1; d >= 0; d--)
            {
                source += rest % outShape[d] * strides[axes[d]];
                rest /= outShape[d];
            }
            y[i] = x[source];
        }
        return y;
    }

    [Test]
    public void PermuteMatchesTheReferenceExactly([ValueSource(nameof(Permutations))] int[] axes)
    {
        int[] shape = Sizes[..axes.Length];
        var x32 = Normal<float>(shape, 1);
        var y32 = x32.Permute(axes);
        Assert.That(y32.Shape, Is.EqualTo(new Shape(axes.Select(a => shape[a]).ToArray())));
        Assert.That(Reference.ToDouble(y32.ToArray()),
            Is.EqualTo(ReferencePermute(Reference.ToDouble(x32.ToArray()), shape, axes)));
        var x64 = Normal<double>(shape, 2);
        Assert.That(x64.Permute(axes).ToArray(), Is.EqualTo(ReferencePermute(x64.ToArray(), shape, axes)));
    }

    [Test]
    public void PermutePassesGradientCheck([Values(2, 3, 4, 5)] int rank)
    {
        var x = Variable(Sizes[..rank], 3);
        var axes = Enumerable.Range(0, rank).Select(d => (d + 1) % rank).ToArray();
        GradCheck.Run(() => x.Permute(axes), [x]).EnsurePassed();
        GradCheck.Run(() => x.Transpose(0, -1), [x]).EnsurePassed();
    }

    [Test]
    public void TransposeAndTheDefaultReversal()
    {
        var x = Normal<double>([2, 3, 4], 4);
        Assert.That(x.Transpose(0, 2).ToArray(), Is.EqualTo(x.Permute(2, 1, 0).ToArray()));
        Assert.That(x.Transpose(-1, 1).ToArray(), Is.EqualTo(x.Permute(0, 2, 1).ToArray()));
        Assert.That(x.Permute().Shape, Is.EqualTo(new Shape(4, 3, 2)));
        Assert.That(x.Permute().ToArray(), Is.EqualTo(x.Permute(2, 1, 0).ToArray()));
        var matrix = Normal<float>([3, 5], 5);
        var expected = ReferencePermute(Reference.ToDouble(matrix.ToArray()), [3, 5], [1, 0]);
        Assert.That(Reference.ToDouble(matrix.Transpose(0, 1).ToArray()), Is.EqualTo(expected));
    }

    [Test]
    public void BadAxesAreRejected()
    {
        var x = Normal<float>([2, 3, 4], 6);
        foreach (var axes in new[] { new[] { 0, 1 }, [0, 1, 1], [0, 1, 3], [0, 1, 2, 3] })
        {
            var error = Assert.Throws<ArgumentException>(() => x.Permute(axes))!;
            Assert.That(error.Message, Does.StartWith("permute").And.Contain("[2, 3, 4]"));
        }
        Assert.Throws<ArgumentException>(() => x.Transpose(0, 3));
        Assert.Throws<ArgumentException>(() => Normal<float>([1, 1, 1, 1, 1, 1, 2], 7).Permute());
    }

    [TestCase(0, new[] { 1, 24 })]
    [TestCase(1, new[] { 2, 12 })]
    [TestCase(2, new[] { 6, 4 })]
    [TestCase(-1, new[] { 6, 4 })]
    [TestCase(-3, new[] { 1, 24 })]
    [TestCase(3, new[] { 24, 1 })]
    public void FlattenFollowsOnnx(int axis, int[] expected)
    {
        var x = Normal<float>([2, 3, 4], 8);
        var y = x.Flatten(axis);
        Assert.That(y.Shape, Is.EqualTo(new Shape(expected)));
        Assert.That(y.ToArray(), Is.EqualTo(x.ToArray()));
        var v = Variable([2, 3, 4], 9);
        GradCheck.Run(() => v.Flatten(axis), [v]).EnsurePassed();
    }

    [Test]
    public void FlattenRejectsAnAxisOutsideTheRankAndHandlesAnEmptyBatch()
    {
        var x = Normal<float>([2, 3], 10);
        var error = Assert.Throws<ArgumentException>(() => x.Flatten(3))!;
        Assert.That(error.Message, Does.StartWith("flatten").And.Contain("[2, 3]"));
        Assert.Throws<ArgumentException>(() => x.Flatten(-3));
        Assert.That(Tensor.Zeros<float>([0, 3, 4], Device).Flatten().Shape, Is.EqualTo(new Shape(0, 12)));
        Assert.That(Tensor.Zeros<float>([], Device).Flatten(0).Shape, Is.EqualTo(new Shape(1, 1)));
    }

    [Test]
    public void ReshapeInfersOneAxis()
    {
        var x = Normal<float>([2, 3, 4], 11);
        Assert.That(x.Reshape(-1, 4).Shape, Is.EqualTo(new Shape(6, 4)));
        Assert.That(x.Reshape(2, -1, 3).Shape, Is.EqualTo(new Shape(2, 4, 3)));
        Assert.That(x.Reshape(-1).ToArray(), Is.EqualTo(x.ToArray()));
        foreach (var dims in new[] { new[] { -1, -1 }, [5, -1], [-2, 12], [7, 4] })
        {
            var error = Assert.Throws<ArgumentException>(() => x.Reshape(dims))!;
            Assert.That(error.Message, Does.StartWith("reshape"));
        }
        var v = Variable([2, 3, 4], 12);
        GradCheck.Run(() => v.Reshape(4, -1), [v]).EnsurePassed();
    }
}
