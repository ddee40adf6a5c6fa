// conv2d: float32 forward and both backward passes against plain-loop float64 references on awkward shapes
// (5x5 and 7x7 inputs, odd channel counts, batch 1, stride 2 on odd sizes, asymmetric padding, 1x1/3x3/7x7),
// dilated and grouped ones (dilation 2 and 3, per axis; 2 and 4 groups; depthwise, with and without a channel
// multiplier; rectangular kernels, strides and asymmetric pads combined), and the float64 gradient check of x,
// weight and bias. Shapes stay small: the tiled kernel synchronises its group, which is slow on ILGPU's CPU
// accelerator.
using Engine.Core;
using Engine.Core.Modules;
using NUnit.Framework;
using static Engine.Tests.ReferenceOps;

namespace Engine.Tests.Ops;

public sealed class ConvolutionTests(string kind) : DeviceFixture(kind)
{
    public static readonly Conv[] Geometries =
    [
        new(2, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1),   // 3x3 same padding, 5x5
        new(1, 5, 7, 7, 3, 3, 3, 2, 2, 1, 1, 1, 1),   // batch 1, stride 2 on an odd size
        new(2, 3, 7, 7, 5, 7, 7, 2, 2, 3, 3, 3, 3),   // 7x7/2 stem shape
        new(2, 6, 5, 5, 7, 1, 1, 2, 2, 0, 0, 0, 0),   // 1x1 stride-2 projection
        new(1, 4, 6, 5, 3, 1, 1, 1, 1, 0, 0, 0, 0),   // 1x1 stride 1, non-square
        new(2, 3, 5, 6, 2, 3, 3, 2, 1, 0, 1, 2, 0),   // asymmetric padding and strides
        new(1, 2, 1, 1, 3, 1, 1, 2, 2, 1, 1, 1, 1),   // every tap in the padding: no input pixel reached
    ];

    public static readonly Conv[] DilatedAndGrouped =
    [
        new(2, 3, 7, 7, 4, 3, 3, 1, 1, 2, 2, 2, 2, DilationH: 2, DilationW: 2),      // dilation 2, same padding
        new(1, 2, 9, 6, 3, 3, 2, 2, 1, 1, 2, 0, 1, DilationH: 3, DilationW: 1),      // dilation 3 on one axis, 3x2
        new(2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, Groups: 2),                      // 2 groups
        new(2, 4, 6, 5, 6, 3, 3, 1, 1, 0, 2, 2, 0, Groups: 2),                      // 2 groups, padded below, left
        new(1, 8, 6, 5, 4, 3, 1, 2, 2, 1, 0, 0, 1, Groups: 4),                      // 4 groups, 3x1, stride 2
        new(2, 3, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, Groups: 3),                      // depthwise
        new(2, 3, 8, 7, 6, 3, 3, 2, 2, 2, 1, 2, 2, DilationH: 2, DilationW: 2, Groups: 3), // depthwise ×2, dilated, strided
        new(1, 4, 7, 9, 2, 2, 3, 1, 2, 0, 1, 3, 2, DilationH: 2, DilationW: 3, Groups: 2), // everything per axis
        new(2, 8, 5, 6, 12, 1, 1, 1, 1, 0, 0, 0, 0, Groups: 2),                     // grouped 1x1: the CPU GEMM's
                                                                                    // patch rows are planes, both ways
    ];

    /// <summary>Shapes at the edges of the CPU backend's vector paths: stride-2 rows of 10 and 18 outputs (the
    /// even-element gathers of AVX2 and AVX-512, from both image edges; from an even width, AVX2's last gather
    /// reads the odd elements of the floats one before), a map one pixel wide (the direct kernels' shifted planes
    /// copied whole where the shift stays inside a row, row by row where it does not), rows of 8 and 16 outputs at
    /// strides 1 and 2 and of 10 and 18 at stride 2 with AVX-512 (the direct kernels' three column planes filled
    /// in one pass over each source row, the element before a vector carried from the one before it, a row's last
    /// vector masked), and the implicit GEMM that AVX2 keeps for
    /// convolutions over 64 channels on both sides of the GEMM (a stride-2 forward, a 1x1 data gradient), a
    /// 1x1 that narrows 72 channels to 16 (its weight gradient on AVX2's direct kernels), AVX-512's padded rows
    /// copied from a source row of 18 (its last vector masked), and stride-2 data
    /// gradients from inputs twice the output (AVX-512's phases: 1x1, 3x3, 4x4 and 5x5 kernels, one-sided padding,
    /// rows of 7 interleaved masked, a batch-1 map split into bands), and weight gradients over maps cut into
    /// uneven chunks (padded rows, and vectors) with dw's rows summed by two tasks, and dy's rows in runs of
    /// channels, and the weight gradient's GEMM packing strided patch rows from partway along a grid row, and a 1x1
    /// data gradient's weights packed several channel blocks a task, and a strided data gradient in bands of rows.
    /// </summary>
    public static readonly Conv[] VectorPathEdges =
    [
        new(2, 3, 19, 19, 5, 3, 3, 2, 2, 1, 1, 1, 1),   // stride-2 rows of 10
        new(2, 3, 20, 20, 5, 3, 3, 2, 2, 1, 1, 1, 1),   // stride-2 rows of 10 from an even width
        new(1, 3, 35, 35, 4, 3, 3, 2, 2, 1, 1, 1, 1),   // stride-2 rows of 18
        new(2, 4, 3, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1),     // one pixel wide
        new(2, 3, 16, 16, 5, 3, 3, 1, 1, 1, 1, 1, 1),   // rows of 16, stride 1
        new(1, 2, 8, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1),     // rows of one vector, stride 1
        new(2, 3, 16, 32, 5, 3, 3, 2, 2, 1, 1, 1, 1),   // rows of 16 from rows of 32, stride 2
        new(1, 3, 6, 36, 4, 3, 3, 2, 2, 1, 1, 1, 1),    // rows of 18 from rows of 36: AVX-512's a vector and 2
        new(1, 8, 19, 19, 72, 3, 3, 2, 2, 1, 1, 1, 1),  // 72 filters at stride 2
        new(1, 72, 4, 4, 80, 1, 1, 1, 1, 0, 0, 0, 0),   // 1x1, 72 → 80 channels
        new(2, 72, 4, 4, 16, 1, 1, 1, 1, 0, 0, 0, 0),   // 1x1, 72 → 16: the direct weight gradient with AVX2
        new(1, 2, 18, 18, 3, 3, 3, 1, 1, 0, 0, 0, 0),   // rows of 16 from rows of 18: a padded row's masked tail
        new(2, 6, 8, 8, 7, 1, 1, 2, 2, 0, 0, 0, 0),     // 1x1/2 from twice its size: odd rows and columns get 0
        new(1, 5, 14, 14, 9, 3, 3, 2, 2, 1, 1, 1, 1),   // 3x3/2 to rows of 7: phases interleaved masked
        new(1, 4, 32, 12, 3, 3, 3, 2, 2, 1, 1, 1, 1),   // batch 1, 16 rows of 6: the phases in bands
        new(2, 3, 12, 10, 5, 4, 4, 2, 2, 1, 1, 1, 1),   // 4x4/2: every phase 2x2 taps of a 3x3 window
        new(2, 3, 10, 10, 4, 5, 5, 2, 2, 2, 2, 2, 2),   // 5x5/2: phases of 9, 6, 6 and 4 taps
        new(2, 3, 8, 8, 4, 3, 3, 2, 2, 0, 1, 0, 1),     // 3x3/2 padded below and right only
        new(1, 3, 33, 32, 20, 3, 3, 1, 1, 1, 1, 1, 1),  // weight gradient over 1056 pixels: chunks of 17 and 16 rows,
                                                        // a step's channel blocks shared by two tasks
        new(2, 2, 36, 36, 5, 3, 3, 1, 1, 1, 1, 1, 1),   // and over 1296: chunks of 41 and 40 vectors of 16
        new(1, 6, 8, 8, 136, 1, 1, 2, 2, 0, 0, 0, 0),   // onto 136 channels: dy's rows in runs of 128 and 8
        new(5, 16, 7, 7, 20, 1, 1, 1, 1, 0, 0, 0, 0),   // 7x7 maps, 5 images: each image's 49th pixel in passes of 4
        new(3, 8, 14, 14, 12, 1, 1, 1, 1, 0, 0, 0, 0),  // 14x14 maps: last vectors of 4 pixels, 12 of them a group
        new(5, 20, 14, 14, 16, 1, 1, 2, 2, 0, 0, 0, 0), // 1x1/2 to 7x7: the data gradient's phase grids the same way
        new(3, 4, 25, 25, 6, 3, 3, 2, 2, 1, 1, 1, 1),   // 3x3/2 to rows of 13 over a depth of 3·169 in blocks of 254:
                                                        // AVX-512's strided patch rows from mid-row, the last tap
                                                        // past an odd width
        new(2, 140, 3, 3, 16, 1, 1, 1, 1, 0, 0, 0, 0),  // 1x1 data gradient onto 140 channels: its weights packed
                                                        // 2 blocks of 8 a task, the last block of 4
        new(4, 3, 75, 75, 4, 7, 7, 2, 2, 3, 3, 3, 3),   // 7x7/2 data gradient of 38 rows of 38: two bands of output
                                                        // rows, the second after 3 rows held from the first
    ];

    private (Tensor<float> X, Tensor<float> W, Tensor<float> B) Inputs(Conv g, int seed) =>
        (Normal<float>(g.InputShape, seed), Normal<float>(g.WeightShape, seed + 1), Normal<float>([g.K], seed + 2));

    private static Tensor<T> Forward<T>(Conv g, Tensor<T> x, Tensor<T> w, Tensor<T>? b)
        where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        g.DilationH == 1 && g.DilationW == 1 && g.Groups == 1
            ? x.Conv2d(w, b, g.StrideH, g.StrideW, g.PadTop, g.PadBottom, g.PadLeft, g.PadRight)
            : x.Conv2d(w, b, g.StrideH, g.StrideW, g.PadTop, g.PadBottom, g.PadLeft, g.PadRight, g.DilationH,
                g.DilationW, g.Groups);

    [TestCaseSource(nameof(Geometries))]
    [TestCaseSource(nameof(DilatedAndGrouped))]
    [TestCaseSource(nameof(VectorPathEdges))]
    public void Float32ForwardMatchesReference(Conv g)
    {
        var (x, w, b) = Inputs(g, 1);
        var expected = ConvForward(g, Reference.ToDouble(x.ToArray()), Reference.ToDouble(w.ToArray()),
            Reference.ToDouble(b.ToArray()));
        var y = Forward(g, x, w, b);
        Assert.That(y.Shape, Is.EqualTo(new Shape(g.OutputShape)));
        Reference.AssertClose(expected, Reference.ToDouble(y.ToArray()), 1e-5, 1e-4, $"conv forward {g}");
        var noBias = ConvForward(g, Reference.ToDouble(x.ToArray()), Reference.ToDouble(w.ToArray()), null);
        Reference.AssertClose(noBias, Reference.ToDouble(Forward(g, x, w, null).ToArray()), 1e-5, 1e-4,
            $"conv forward without bias {g}");
    }

    [TestCaseSource(nameof(Geometries))]
    [TestCaseSource(nameof(DilatedAndGrouped))]
    [TestCaseSource(nameof(VectorPathEdges))]
    public void Float32BackwardMatchesReference(Conv g)
    {
        var (x, w, b) = Inputs(g, 4);
        x.RequiresGrad = w.RequiresGrad = b.RequiresGrad = true;
        var dy = Normal<float>(g.OutputShape, 7);
        Forward(g, x, w, b).Backward(dy);
        double[] xs = Reference.ToDouble(x.ToArray()), ws = Reference.ToDouble(w.ToArray()),
            dys = Reference.ToDouble(dy.ToArray());
        Reference.AssertClose(ConvBackwardData(g, dys, ws), Reference.ToDouble(x.Grad!.ToArray()), 1e-5, 1e-4,
            $"conv dx {g}");
        Reference.AssertClose(ConvBackwardWeight(g, xs, dys), Reference.ToDouble(w.Grad!.ToArray()), 1e-4, 1e-4,
            $"conv dw {g}");
        var db = new double[g.K];
        for (int i = 0; i < dys.Length; i++) db[i / (g.OH * g.OW) % g.K] += dys[i];
        Reference.AssertClose(db, Reference.ToDouble(b.Grad!.ToArray()), 1e-4, 1e-4, $"conv dbias {g}");
    }

    [TestCaseSource(nameof(Geometries))]
    [TestCaseSource(nameof(DilatedAndGrouped))]
    public void BackwardPassesGradientCheck(Conv g)
    {
        var x = Variable(g.InputShape, 10);
        var w = Variable(g.WeightShape, 11);
        var b = Variable([g.K], 12);
        GradCheck.Run(() => Forward(g, x, w, b), [x, w, b],
            new GradCheckOptions { InputNames = ["x", "weight", "bias"] }).EnsurePassed();
    }

    [Test]
    public void DeepGroupedDilatedWeightGradientMatchesReference()
    {
        // 2·32·32 = 2048 output pixels per filter: the weight gradient's reduction is deep enough for both backends
        // to split it (ILGPU's split-K, the CPU GEMM's partials), per group.
        var g = new Conv(2, 4, 32, 32, 4, 3, 3, 1, 1, 2, 2, 2, 2, DilationH: 2, DilationW: 2, Groups: 2);
        var (x, w, _) = Inputs(g, 40);
        w.RequiresGrad = true;
        var dy = Normal<float>(g.OutputShape, 41);
        Forward(g, x, w, null).Backward(dy);
        Reference.AssertClose(ConvBackwardWeight(g, Reference.ToDouble(x.ToArray()), Reference.ToDouble(dy.ToArray())),
            Reference.ToDouble(w.Grad!.ToArray()), 1e-3, 1e-4, "dw");
    }

    [Test]
    public void ModuleWithDilationAndGroupsConvolvesAsTheOp()
    {
        var g = DilatedAndGrouped[6];
        using var conv = new Conv2d<float>(Device, g.C, g.K, g.R, g.S, g.StrideH, g.StrideW, g.PadTop, g.PadBottom,
            g.PadLeft, g.PadRight, g.DilationH, g.DilationW, g.Groups, bias: true, seed: 3);
        Assert.That(conv.Weight.Shape, Is.EqualTo(new Shape(g.WeightShape)));
        Assert.That((conv.DilationHeight, conv.DilationWidth, conv.Groups), Is.EqualTo((g.DilationH, g.DilationW, g.Groups)));
        Assert.That((conv.PadTop, conv.PadBottom, conv.PadLeft, conv.PadRight),
            Is.EqualTo((g.PadTop, g.PadBottom, g.PadLeft, g.PadRight)));
        var x = Normal<float>(g.InputShape, 4);
        var expected = ConvForward(g, Reference.ToDouble(x.ToArray()), Reference.ToDouble(conv.Weight.ToArray()),
            Reference.ToDouble(conv.Bias!.ToArray()));
        Reference.AssertClose(expected, Reference.ToDouble(conv.Forward(x).ToArray()), 1e-5, 1e-4, "module forward");
        Assert.That(conv.Geometry(g.N, g.H, g.W).Macs, Is.EqualTo((long)g.N * g.K * g.OH * g.OW * (g.C / g.Groups) * g.R * g.S));

        using var depthwise = new Conv2d<float>(Device, 6, 12, kernel: 3, stride: 1, padding: 2, bias: false, seed: 1,
            dilation: 2, groups: 6);
        Assert.That(depthwise.Weight.Shape, Is.EqualTo(new Shape(12, 1, 3, 3)));
        Assert.That(depthwise.Forward(Normal<float>([1, 6, 5, 5], 2)).Shape, Is.EqualTo(new Shape(1, 12, 5, 5)));
        var error = Assert.Throws<ArgumentException>(() =>
            _ = new Conv2d<float>(Device, 6, 4, kernel: 3, stride: 1, padding: 1, bias: false, seed: 1, groups: 4))!;
        Assert.That(error.Message, Does.Contain("divisible by the groups"));
    }

    [Test]
    public void GroupedWeightWithTheWrongChannelsIsRejected()
    {
        var x = Normal<float>([1, 4, 5, 5], 1);
        var error = Assert.Throws<ArgumentException>(() =>
            x.Conv2d(Normal<float>([4, 4, 3, 3], 2), null, 1, 1, 1, 1, 1, 1, 1, 1, 2))!;
        Assert.That(error.Message, Does.Contain("per group").And.Contain("[4, 4, 3, 3]").And.Contain("groups 2"));
        error = Assert.Throws<ArgumentException>(() =>
            x.Conv2d(Normal<float>([3, 1, 3, 3], 3), null, 1, 1, 1, 1, 1, 1, 1, 1, 4))!;
        Assert.That(error.Message, Does.Contain("divisible by groups 4"));
    }

    [Test]
    public void DeepSingleImageBackwardDataMatchesReference()
    {
        // Batch 1, a small image and a deep K·R·S: the CPU backend's GEMM path (two groups keep every CPU off the
        // direct kernels) splits K here (its scratch for the packed weights and for the split partials must not be
        // shared).
        var g = new Conv(1, 16, 6, 6, 512, 3, 3, 1, 1, 1, 1, 1, 1, Groups: 2);
        var (x, w, _) = Inputs(g, 30);
        x.RequiresGrad = true;
        var dy = Normal<float>(g.OutputShape, 31);
        Forward(g, x, w, null).Backward(dy);
        Reference.AssertClose(ConvBackwardData(g, Reference.ToDouble(dy.ToArray()), Reference.ToDouble(w.ToArray())),
            Reference.ToDouble(x.Grad!.ToArray()), 1e-4, 1e-4, "dx");
    }

    [Test]
    public void StrideLargerThanTheInputWorks()
    {
        var g = new Conv(1, 1, 4, 4, 1, 1, 1, 2000, 2000, 0, 0, 0, 0);
        var (x, w, _) = Inputs(g, 32);
        x.RequiresGrad = w.RequiresGrad = true;
        var y = Forward(g, x, w, null);
        Assert.That(y.Shape, Is.EqualTo(new Shape(1, 1, 1, 1)));
        y.Sum().Backward();
        var dx = x.Grad!.ToArray();
        Assert.That(dx[0], Is.EqualTo(w.ToArray()[0]));
        Assert.That(dx.Skip(1), Is.All.EqualTo(0f));
    }

    [Test]
    public void MismatchedChannelsAreRejected()
    {
        var x = Normal<float>([1, 3, 5, 5], 1);
        var w = Normal<float>([4, 2, 3, 3], 2);
        var error = Assert.Throws<ArgumentException>(() => x.Conv2d(w))!;
        Assert.That(error.Message, Does.Contain("[1, 3, 5, 5]").And.Contain("[4, 2, 3, 3]"));
        Assert.Throws<ArgumentException>(() => x.Conv2d(Normal<float>([4, 3, 7, 7], 3)));
    }
}
