// Pad (constant, with cropping) and Slice (positive and negative steps) on every device: float32 against a float64
// plain-loop reference, forward and backward (values move exactly, so exactly), float64 gradient checks, the
// refusals of bad arguments, and the strided primitives beneath them (a gather through an origin and negative
// strides, the scatter and its one-to-one check).
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class SlicingTests(string kind) : DeviceFixture(kind)
{
    private static readonly int[] Shape4 = [2, 3, 4, 5];

    /// <summary>Pads and crops on one tensor: axis 1 padded before, axis 2 cropped before and padded after, axis 3
    /// padded before and cropped after.</summary>
    private static readonly int[] Before = [0, 1, -1, 2], After = [1, 0, 2, -2];

    /// <summary>Every index of <paramref name="shape"/>, row-major.</summary>
    private static IEnumerable<int[]> Indices(int[] shape)
    {
        var index = new int[shape.Length];
        long count = shape.Aggregate(1L, (p, d) => p * d);
        for (long i = 0; i < count; i++)
        {
            yield return (int[])index.Clone();
            for (int a = shape.Length - 1; a >= 0 && ++index[a] == shape[a]; a--) index[a] = 0;
        }
    }

    private static int Flat(int[] shape, int[] index) => index.Select((c, a) => (c, a)).Aggregate(0, (f, p) => f * shape[p.a] + p.c);

    /// <summary>The reference pad: y[i] = x[i − before] inside x, else the value.</summary>
    private static double[] ReferencePad(double[] x, int[] shape, int[] before, int[] after, double value, out int[] outShape)
    {
        int[] y = shape.Select((d, a) => d + before[a] + after[a]).ToArray();
        outShape = y;
        return Indices(y).Select(i =>
        {
            int[] source = i.Select((c, a) => c - before[a]).ToArray();
            return source.Where((c, a) => c < 0 || c >= shape[a]).Any() ? value : x[Flat(shape, source)];
        }).ToArray();
    }

    /// <summary>The reference slice: y[i] = x[start + step · i].</summary>
    private static double[] ReferenceSlice(double[] x, int[] shape, int[] starts, int[] steps, int[] counts) =>
        Indices(counts).Select(i => x[Flat(shape, i.Select((c, a) => starts[a] + steps[a] * c).ToArray())]).ToArray();

    [Test]
    public void PadAndCropMatchTheReferenceForwardAndBackward()
    {
        var x = Normal<float>(Shape4, 1);
        x.RequiresGrad = true;
        var y = x.Pad(Before, After, 0.5f);
        var expected = ReferencePad(Reference.ToDouble(x.ToArray()), Shape4, Before, After, 0.5, out int[] shape);
        Assert.That(y.Shape, Is.EqualTo(new Shape(shape)));
        Assert.That(Reference.ToDouble(y.ToArray()), Is.EqualTo(expected));

        var dy = Normal<float>(y.Shape, 2);
        y.Backward(dy);
        // dx[i] = dy[i + before] where that lies inside y, else 0 (the cropped cells).
        var dys = Reference.ToDouble(dy.ToArray());
        var dx = Indices(Shape4).Select(i =>
        {
            int[] target = i.Select((c, a) => c + Before[a]).ToArray();
            return target.Where((c, a) => c < 0 || c >= shape[a]).Any() ? 0 : dys[Flat(shape, target)];
        }).ToArray();
        Assert.That(Reference.ToDouble(x.Grad!.ToArray()), Is.EqualTo(dx));
        Assert.That(dx.Count(v => v == 0), Is.GreaterThan(0), "some cells were cropped");
    }

    [Test]
    public void PurePaddingAndPureCroppingTakeOneStridedOpEach()
    {
        var x = Normal<float>([3, 4], 3);
        var xs = Reference.ToDouble(x.ToArray());
        Assert.That(Reference.ToDouble(x.Pad([1, 0], [2, 3], -1f).ToArray()),
            Is.EqualTo(ReferencePad(xs, [3, 4], [1, 0], [2, 3], -1, out _)));
        Assert.That(Reference.ToDouble(x.Pad([-1, -2], [0, -1], 0f).ToArray()),
            Is.EqualTo(ReferencePad(xs, [3, 4], [-1, -2], [0, -1], 0, out _)));
        Assert.That(x.Pad([0, -2], [0, -2], 0f).Shape, Is.EqualTo(new Shape(3, 0)), "cropped to nothing");
    }

    [TestCase(new[] { 2, 0, 6 }, new[] { -1, 2, -3 }, new[] { 3, 2, 3 })]
    [TestCase(new[] { 0, 1, 0 }, new[] { 2, 1, 1 }, new[] { 2, 3, 7 })]
    [TestCase(new[] { 1, 3, 4 }, new[] { 5, -1, -2 }, new[] { 1, 4, 3 })]
    public void SliceMatchesTheReferenceForwardAndBackward(int[] starts, int[] steps, int[] counts)
    {
        int[] shape = [3, 4, 7];
        var x = Normal<float>(shape, 4);
        x.RequiresGrad = true;
        var y = x.Slice(starts, steps, counts);
        Assert.That(y.Shape, Is.EqualTo(new Shape(counts)));
        Assert.That(Reference.ToDouble(y.ToArray()), Is.EqualTo(ReferenceSlice(Reference.ToDouble(x.ToArray()), shape, starts, steps, counts)));

        var dy = Normal<float>(y.Shape, 5);
        y.Backward(dy);
        var dx = new double[x.Length];
        var dys = Reference.ToDouble(dy.ToArray());
        int k = 0;
        foreach (var i in Indices(counts))
            dx[Flat(shape, i.Select((c, a) => starts[a] + steps[a] * c).ToArray())] = dys[k++];
        Assert.That(Reference.ToDouble(x.Grad!.ToArray()), Is.EqualTo(dx));
    }

    [Test]
    public void PadAndSlicePassGradientChecks()
    {
        var x = Variable([2, 3, 4, 3], 6);
        GradCheck.Run(() => x.Pad([0, 1, -1, 2], [1, -1, 2, 0], 0.25), [x]).EnsurePassed();
        GradCheck.Run(() => x.Slice([1, 2, 0, 2], [-1, -2, 3, -1], [2, 2, 2, 3]), [x]).EnsurePassed();
        // Slice's backward is itself differentiable (its backward is the slice).
        GradCheck.Run(() => x.Slice([0, 1, 3, 0], [1, 1, -2, 2], [2, 2, 2, 2]).Pad([0, 1, 0, 1], [0, 0, 1, -1], 0.0),
            [x]).EnsurePassed();
    }

    [Test]
    public void BadArgumentsAreRefusedNamingThem()
    {
        var x = Normal<float>([3, 4], 7);
        Assert.That(Assert.Throws<ArgumentException>(() => x.Pad([0], [0], 0f))!.Message, Does.Contain("one amount per axis"));
        Assert.That(Assert.Throws<ArgumentException>(() => x.Pad([-2, 0], [-2, 0], 0f))!.Message,
            Does.Contain("axis 0 of [3, 4] crop below nothing"));
        Assert.That(Assert.Throws<ArgumentException>(() => x.Slice([0, 0], [1, 0], [1, 1]))!.Message,
            Does.Contain("axis 1 has a step of 0"));
        Assert.That(Assert.Throws<ArgumentException>(() => x.Slice([0, 3], [1, 1], [1, 2]))!.Message,
            Does.Contain("axis 1 reads index 4, outside [0, 4)"));
        Assert.That(Assert.Throws<ArgumentException>(() => x.Slice([0, 1], [1, -1], [1, 3]))!.Message,
            Does.Contain("axis 1 reads index -1, outside [0, 4)"));
        Assert.That(x.Slice([3, 0], [1, 1], [0, 4]).Shape, Is.EqualTo(new Shape(0, 4)), "an empty slice");
    }

    [Test]
    public void StridedPrimitivesTakeAnOriginNegativeStridesAndScatterOneToOne()
    {
        var backend = Device.Backend;
        var x = Tensor.FromArray(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), [12], Device);
        var y = Tensor.Zeros<float>([4], Device);
        // Row 2 of a [3, 4] matrix read backwards: offsets 11, 10, 9, 8.
        backend.StridedCopy(new StridedLayout([4], [-1], 11), x.Buffer, y.Buffer);
        Assert.That(y.ToArray(), Is.EqualTo(new float[] { 11, 10, 9, 8 }));
        var error = Assert.Throws<ArgumentException>(() =>
            backend.StridedCopy(new StridedLayout([4], [-1], 2), x.Buffer, y.Buffer))!;
        Assert.That(error.Message, Does.Contain("negative offset -1"));

        // The scatter writes y's column 1 of a [3, 4] matrix, the rest left alone.
        var column = Tensor.FromArray(new float[] { 7, 8, 9 }, [3], Device);
        var z = Tensor.Full<float>([12], -1f, Device);
        backend.StridedScatter(column.Buffer, new StridedLayout([3], [4], 1), z.Buffer);
        Assert.That(z.ToArray(), Is.EqualTo(new float[] { -1, 7, -1, -1, -1, 8, -1, -1, -1, 9, -1, -1 }));
        error = Assert.Throws<ArgumentException>(() =>
            backend.StridedScatter(column.Buffer, new StridedLayout([3], [0], 1), z.Buffer))!;
        Assert.That(error.Message, Does.Contain("writes some offset of 'y' twice"));
        error = Assert.Throws<ArgumentException>(() =>
            backend.StridedScatter(column.Buffer, new StridedLayout([3], [5], 2), z.Buffer))!;
        Assert.That(error.Message, Does.Contain("offset 12, outside buffer 'y' of 12 elements"));
        error = Assert.Throws<ArgumentException>(() =>
            backend.StridedScatter(column.Buffer, new StridedLayout([2], [1]), z.Buffer))!;
        Assert.That(error.Message, Does.Contain("'x'"));
    }
}
