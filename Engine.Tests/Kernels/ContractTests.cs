// The edge-case contract every backend keeps, with PyTorch's answers: NaN and ±∞ through ReLU (plain and fused
// into batch-norm) and max-pooling, empty inputs, and bad arguments (strides, pads, windows, dilations, groups,
// batch-norm momentum and epsilon, labels, top-k's k, devices) rejected on the host with one ArgumentException
// that names the op once; top-k counts a row holding a NaN as not correct; every op and host copy counts one write
// on each buffer it outputs to (DeviceBuffer.Version) and none on its inputs.
using Engine.Core;
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class ContractTests(string kind) : DeviceFixture(kind)
{
    private static readonly float[] Specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -1f, 0f, 2f];

    /// <summary>The error <paramref name="action"/> throws, checked to name <paramref name="op"/> exactly once and to
    /// mention <paramref name="argument"/>.</summary>
    private static ArgumentException Rejected(TestDelegate action, string op, string argument)
    {
        var error = Assert.Throws<ArgumentException>(action)!;
        Assert.That(error.Message, Does.StartWith(op));
        int mentions = error.Message.Split(op).Length - 1;
        Assert.That(mentions, Is.EqualTo(1), $"'{op}' once in: {error.Message}");
        Assert.That(error.Message, Does.Contain(argument));
        Assert.That(error.Message, Does.Not.Contain("Geometry {"), "no record dump");
        return error;
    }

    [Test]
    public void ReluPropagatesNaNAndInfinitiesAndItsGradientIsZeroWhereTheOutputIsNotPositive()
    {
        // 3 copies of the specials: 18 elements, so both the vector path and the scalar tail see each value.
        float[] data = [.. Specials, .. Specials, .. Specials];
        var x = Tensor.FromArray(data, [data.Length], Device);
        x.RequiresGrad = true;
        var y = x.Relu();
        var dy = Enumerable.Range(1, data.Length).Select(i => (float)i).ToArray();
        y.Backward(Tensor.FromArray(dy, [data.Length], Device));

        float[] expected = [float.NaN, float.PositiveInfinity, 0f, 0f, 0f, 2f];
        var output = y.ToArray();
        var grad = x.Grad!.ToArray();
        for (int i = 0; i < data.Length; i++)
        {
            Assert.That(output[i], Is.EqualTo(expected[i % Specials.Length]), $"relu({data[i]})");
            float expectedGrad = data[i] > 0 ? dy[i] : 0f; // NaN > 0 is false: no gradient (torch's threshold_backward)
            Assert.That(grad[i], Is.EqualTo(expectedGrad), $"relu'({data[i]})");
        }
    }

    [Test]
    public void FusedBatchNormReluPropagatesNaNAndMasksItsGradient()
    {
        var x = Tensor.FromArray([float.NaN, 1f, -1f, float.PositiveInfinity], [2, 2], Device);
        x.RequiresGrad = true;
        var gamma = Tensor.Full<float>([2], 1f, Device);
        var beta = Tensor.Zeros<float>([2], Device);
        var mean = Tensor.Zeros<float>([2], Device);
        var variance = Tensor.Full<float>([2], 1f, Device);
        var y = x.BatchNorm(gamma, beta, mean, variance, training: false, epsilon: 1e-5, relu: true);
        y.Backward(Tensor.Full<float>([2, 2], 1f, Device));

        var output = y.ToArray();
        Assert.That(output[0], Is.NaN);
        Assert.That(output[1], Is.EqualTo(1f).Within(1e-4));
        Assert.That(output[2], Is.EqualTo(0f));
        Assert.That(output[3], Is.EqualTo(float.PositiveInfinity));
        var grad = x.Grad!.ToArray();
        Assert.That(grad[0], Is.EqualTo(0f), "no gradient where the fused ReLU's output is NaN");
        Assert.That(grad[1], Is.EqualTo(1f).Within(1e-4));
        Assert.That(grad[2], Is.EqualTo(0f));
    }

    [Test]
    public void MaxPoolPropagatesNaNAndItsGradientGoesToTheNaN()
    {
        var x = Tensor.FromArray([1f, float.NaN, 2f, 3f], [1, 1, 2, 2], Device);
        x.RequiresGrad = true;
        var y = x.MaxPool2d(kernel: 2, stride: 2);
        y.Backward(Tensor.Full<float>([1, 1, 1, 1], 5f, Device));
        Assert.That(y.ToArray()[0], Is.NaN);
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(new[] { 0f, 5f, 0f, 0f }));
    }

    [Test]
    public void MaxPoolWithPaddingSpreadsANaNToEveryWindowThatCoversIt()
    {
        var data = new float[9];
        for (int i = 0; i < 9; i++) data[i] = i;
        data[4] = float.NaN;
        var x = Tensor.FromArray(data, [1, 1, 3, 3], Device);
        x.RequiresGrad = true;
        var y = x.MaxPool2d(kernel: 3, stride: 1, padding: 1);
        var dy = Enumerable.Range(1, 9).Select(i => (float)i).ToArray();
        y.Backward(Tensor.FromArray(dy, [1, 1, 3, 3], Device));
        Assert.That(y.ToArray(), Is.All.NaN);
        var expected = new float[9];
        expected[4] = dy.Sum();
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(expected));
    }

    [Test]
    public void MaxPoolHandlesInfinities()
    {
        float inf = float.PositiveInfinity;
        var x = Tensor.FromArray([-inf, -inf, 1f, inf, -inf, -inf, 2f, 3f], [1, 1, 2, 4], Device);
        x.RequiresGrad = true;
        var y = x.MaxPool2d(kernel: 2, stride: 2);
        y.Backward(Tensor.FromArray([1f, 2f], [1, 1, 1, 2], Device));
        Assert.That(y.ToArray(), Is.EqualTo(new[] { -inf, inf }));
        Assert.That(x.Grad!.ToArray(), Is.EqualTo(new[] { 1f, 0f, 0f, 2f, 0f, 0f, 0f, 0f }));
    }

    [Test]
    public void GlobalAveragePoolRejectsAnEmptyPlaneAndAcceptsAnEmptyBatch()
    {
        Rejected(() => Tensor.Zeros<float>([1, 2, 0, 0], Device).GlobalAveragePool(), "global average pool", "[1, 2, 0]");
        Rejected(() => Tensor.Zeros<float>([1, 0, 2, 2], Device).GlobalAveragePool(), "global average pool", "[1, 0, 4]");
        var empty = Tensor.Zeros<float>([0, 2, 3, 3], Device).GlobalAveragePool();
        Assert.That(empty.Shape, Is.EqualTo(new Shape(0, 2)));
    }

    [Test]
    public void ConvolutionRejectsBadStridesPadsAndKernels()
    {
        var x = Normal<float>([1, 3, 5, 5], 1);
        var w = Normal<float>([4, 3, 3, 3], 2);
        Rejected(() => x.Conv2d(w, null, 0, 1, 0, 0, 0, 0), "conv2d", "stride");
        Rejected(() => x.Conv2d(w, stride: -2), "conv2d", "stride");
        Rejected(() => x.Conv2d(w, padding: -1), "conv2d", "padding");
        Rejected(() => x.Conv2d(Tensor.Zeros<float>([4, 3, 0, 3], Device)), "conv2d", "kernel");
        Rejected(() => x.Conv2d(Normal<float>([4, 3, 7, 7], 3)), "conv2d", "larger than the padded input");
        Rejected(() => Tensor.Zeros<float>([0, 3, 5, 5], Device).Conv2d(w), "conv2d", "empty batch");
    }

    [Test]
    public void ConvolutionRejectsBadDilationsAndGroups()
    {
        var x = Normal<float>([1, 4, 5, 5], 1);
        var w = Normal<float>([4, 2, 3, 3], 2);
        Rejected(() => x.Conv2d(w, null, 1, 1, 1, 1, 1, 1, 0, 1, 2), "conv2d", "dilation 0x1");
        Rejected(() => x.Conv2d(w, null, 1, 1, 1, 1, 1, 1, 1, 1, 0), "conv2d", "groups 0");
        Rejected(() => x.Conv2d(w, null, 1, 1, 1, 1, 1, 1, 1, 1, 3), "conv2d", "divisible by groups 3");
        Rejected(() => x.Conv2d(Normal<float>([6, 1, 3, 3], 3), null, 1, 1, 1, 1, 1, 1, 1, 1, 4), "conv2d",
            "divisible by groups 4");
        Rejected(() => x.Conv2d(w, null, 1, 1, 1, 1, 1, 1, 1, 1, 1), "conv2d", "input channels");
        // (3 − 1)·3 + 1 = 7 rows do not fit 5 + 1 + 0.
        Rejected(() => x.Conv2d(w, null, 1, 1, 1, 0, 1, 1, 3, 1, 2), "conv2d", "dilated to 7x3");
    }

    [Test]
    public void BackendsRejectBadDilationsAndGroupsBeforeAnyArithmetic()
    {
        var backend = Device.Backend;
        var x = Normal<float>([1, 4, 5, 5], 1);
        var y = Tensor.Zeros<float>([1, 6, 5, 5], Device);
        var dense = Normal<float>([6, 4, 3, 3], 2);
        var grouped = new ConvGeometry(1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, Groups: 2);
        // A dense weight [K, C, R, S] where groups 2 needs [K, C/2, R, S]: the buffer length is named.
        var error = Rejected(() => backend.Conv2dForward(grouped, x.Buffer, dense.Buffer, null, y.Buffer), "conv2d",
            "'w'");
        Assert.That(error.Message, Does.Contain("expected 108"));
        Rejected(() => backend.Conv2dBackwardWeight(grouped, x.Buffer, y.Buffer, dense.Buffer), "conv2d", "'dw'");
        Rejected(() => backend.Conv2dBackwardData(grouped with { Groups = 4 }, y.Buffer, dense.Buffer, x.Buffer),
            "conv2d", "6 output channels must both be divisible by groups 4");
        Rejected(() => backend.Conv2dForward(grouped with { DilationWidth = -1 }, x.Buffer, dense.Buffer, null,
            y.Buffer), "conv2d", "dilation 1x-1");
        Rejected(() => backend.Conv2dForward(grouped with { DilationHeight = 4 }, x.Buffer, dense.Buffer, null,
            y.Buffer), "conv2d", "larger than the padded input");
    }

    [Test]
    public void MaxPoolRejectsBadStridesPadsAndWindows()
    {
        var x = Normal<float>([1, 2, 6, 6], 1);
        Rejected(() => x.MaxPool2d(kernel: 2, stride: 0), "max-pool", "stride");
        Rejected(() => x.MaxPool2d(kernel: 3, stride: 1, padding: -1), "max-pool", "padding");
        Rejected(() => x.MaxPool2d(kernel: 3, stride: 1, padding: 3), "max-pool", "first window");
        Rejected(() => x.MaxPool2d(kernel: 0, stride: 1), "max-pool", "window");
        Rejected(() => x.MaxPool2d(kernel: 7, stride: 1), "max-pool", "larger than the padded input");
    }

    [Test]
    public void GeneralPoolingRejectsBadDilationsPadsAndWindows()
    {
        var x = Normal<float>([1, 2, 6, 6], 1);
        Rejected(() => x.MaxPool2d(3, 3, 1, 1, 0, 0, 0, 0, dilationHeight: 0), "max-pool", "dilation");
        Rejected(() => x.MaxPool2d(3, 2, 1, 0, 1, 1, 1, 1), "max-pool", "stride");
        Rejected(() => x.MaxPool2d(3, 3, 1, 1, 0, 0, 0, -1), "max-pool", "negative");
        Rejected(() => x.MaxPool2d(2, 2, 1, 1, 0, 0, 0, 2), "max-pool", "last window");
        Rejected(() => x.MaxPool2d(3, 3, 1, 1, 0, 0, 0, 0, dilationHeight: 3), "max-pool", "larger than the padded");
        // Dilation 2 over a single row with one padding row each side: the window's taps are rows −1 and 1.
        Rejected(() => Normal<float>([1, 1, 1, 4], 2).MaxPool2d(2, 1, 1, 1, 1, 1, 0, 0, dilationHeight: 2),
            "max-pool", "padding only");
        Rejected(() => x.AvgPool2d(2, 0, 1, 1, 0, 0, 0, 0), "avg-pool", "window");
        Rejected(() => x.AvgPool2d(7, 1), "avg-pool", "larger than the padded");
        Rejected(() => x.AvgPool2d(3, 3, 1, 1, 3, 0, 0, 0), "avg-pool", "first window");
        Rejected(() => x.AvgPool2d(2, 1, padding: -1), "avg-pool", "negative");
        Rejected(() => Normal<float>([1, 2, 6], 3).AvgPool2d(2, 2), "avg-pool", "[N, C, H, W]");
        var backend = Device.Backend;
        var y = Tensor.Zeros<float>([1, 2, 2, 2], Device);
        var dilated = new PoolGeometry(1, 2, 6, 6, 2, 2, 2, 2, 0, 0, 0, 0, DilationHeight: 2, DilationWidth: 2);
        Rejected(() => backend.AvgPoolForward(dilated, true, x.Buffer, y.Buffer), "avg-pool", "dilation 2x2");
        Rejected(() => backend.AvgPoolBackward(PoolGeometry.Square(1, 2, 6, 6, 3, 3, 0), true, y.Buffer, y.Buffer),
            "avg-pool backward", "dx");
    }

    [Test]
    public void AvgPoolPropagatesNaNToTheWindowsThatHoldIt()
    {
        var data = new float[16];
        for (int i = 0; i < 16; i++) data[i] = i + 1;
        data[5] = float.NaN; // row 1, column 1
        var x = Tensor.FromArray(data, [1, 1, 4, 4], Device);
        x.RequiresGrad = true;
        var y = x.AvgPool2d(2, 2, 2, 2, 0, 0, 0, 0);
        y.Backward(Tensor.Full<float>([1, 1, 2, 2], 4f, Device));
        var output = y.ToArray();
        Assert.That(output[0], Is.NaN);
        Assert.That(output[1..], Is.EqualTo(new[] { 5.5f, 11.5f, 13.5f }));
        Assert.That(x.Grad!.ToArray(), Is.All.EqualTo(1f), "the gradient of a mean does not read x");
        Assert.That(x.AvgPool2d(3, 1, 1).ToArray().Count(float.IsNaN), Is.EqualTo(9), "every window over (1, 1)");
    }

    [Test]
    public void BackendsRejectABadGeometryBeforeAnyArithmetic()
    {
        var backend = Device.Backend;
        var x = Normal<float>([1, 1, 4, 4], 1);
        var y = Tensor.Zeros<float>([1, 1, 2, 2], Device);
        using var argmax = backend.Allocate<int>(4);
        Rejected(() => backend.MaxPoolForward(PoolGeometry.Square(1, 1, 4, 4, kernel: 2, stride: 0, padding: 0), x.Buffer, y.Buffer, argmax),
            "max-pool", "stride");
        var w = Normal<float>([1, 1, 3, 3], 2);
        Rejected(() => backend.Conv2dForward(new ConvGeometry(1, 1, 4, 4, 1, 3, 3, 1, 0, 0, 0, 0, 0), x.Buffer,
            w.Buffer, null, y.Buffer), "conv2d", "stride");
        Rejected(() => backend.ShortcutForward(new ShortcutGeometry(1, 1, 4, 4, 1, 0, 0), x.Buffer, y.Buffer),
            "shortcut A", "stride");
    }

    [TestCase(1.5, 1e-5, "momentum")]
    [TestCase(-0.1, 1e-5, "momentum")]
    [TestCase(double.NaN, 1e-5, "momentum")]
    [TestCase(0.1, 0.0, "epsilon")]
    [TestCase(0.1, -1e-5, "epsilon")]
    [TestCase(0.1, double.PositiveInfinity, "epsilon")]
    [TestCase(0.1, double.NaN, "epsilon")]
    public void BatchNormRejectsMomentumOutsideZeroOneAndANonPositiveEpsilon(double momentum, double epsilon,
        string argument)
    {
        var x = Normal<float>([4, 2, 3, 3], 1);
        var gamma = Tensor.Full<float>([2], 1f, Device);
        var beta = Tensor.Zeros<float>([2], Device);
        var mean = Tensor.Zeros<float>([2], Device);
        var variance = Tensor.Full<float>([2], 1f, Device);
        Rejected(() => x.BatchNorm(gamma, beta, mean, variance, training: true, momentum, epsilon), "batch-norm",
            argument);
        Assert.That(mean.ToArray(), Is.All.EqualTo(0f), "nothing was updated");
        if (argument == "epsilon")
            Rejected(() => x.BatchNorm(gamma, beta, mean, variance, training: false, momentum, epsilon), "batch-norm",
                argument);
    }

    [Test]
    public void BatchNormAcceptsTheEndsOfTheMomentumRange()
    {
        var x = Normal<float>([4, 2, 3, 3], 1);
        var gamma = Tensor.Full<float>([2], 1f, Device);
        var beta = Tensor.Zeros<float>([2], Device);
        var mean = Tensor.Full<float>([2], 7f, Device);
        var variance = Tensor.Full<float>([2], 1f, Device);
        x.BatchNorm(gamma, beta, mean, variance, training: true, momentum: 0);
        Assert.That(mean.ToArray(), Is.All.EqualTo(7f), "momentum 0 keeps the running mean");
        x.BatchNorm(gamma, beta, mean, variance, training: true, momentum: 1);
        Assert.That(mean.ToArray(), Is.All.Not.EqualTo(7f), "momentum 1 replaces it by the batch mean");
    }

    [Test]
    public void BatchNormRejectsAnEmptyBatchInEveryMode()
    {
        var x = Tensor.Zeros<float>([0, 2, 3, 3], Device);
        var gamma = Tensor.Full<float>([2], 1f, Device);
        var beta = Tensor.Zeros<float>([2], Device);
        foreach (bool training in new[] { true, false })
            Rejected(() => x.BatchNorm(gamma, beta, beta, gamma, training), "batch-norm", "empty batch");
    }

    [Test]
    public void CrossEntropyRejectsLabelsOutOfRange()
    {
        var logits = Normal<float>([2, 3], 1);
        Rejected(() => logits.CrossEntropy([0, 3]), "cross-entropy", "label 3");
        Rejected(() => logits.CrossEntropy([-1, 0]), "cross-entropy", "label -1");
    }

    [Test]
    public void TopKCountsARowWithANaNLogitAsNotCorrect()
    {
        // Row 0: the label's logit is NaN; row 1: another logit is NaN; row 2: no NaN (the only correct row, even
        // for k = 3, which covers every class).
        var logits = Tensor.FromArray([float.NaN, 1f, 0f, 2f, float.NaN, 0f, 0f, 1f, 3f], [3, 3], Device);
        foreach (int k in new[] { 1, 3 })
            Assert.That(logits.TopKCorrect([0, 0, 2], k), Is.EqualTo(1), $"k = {k}");
        var infinite = Tensor.FromArray([float.PositiveInfinity, 1f, float.NegativeInfinity], [1, 3], Device);
        Assert.That(infinite.TopKCorrect([0], 1), Is.EqualTo(1), "+∞ is an ordinary largest logit");
        Assert.That(infinite.TopKCorrect([2], 2), Is.EqualTo(0), "−∞ ranks last");
    }

    [Test]
    public void TopKRejectsKOutsideOneToTheClassCount()
    {
        var logits = Normal<float>([2, 3], 1);
        Rejected(() => logits.TopKCorrect([0, 1], 0), "top-k correct", "k = 0");
        Rejected(() => logits.TopKCorrect([0, 1], 4), "top-k correct", "k = 4");
        Assert.That(logits.TopKCorrect([0, 1], 3), Is.EqualTo(2), "k = classes: every label is among the top k");
    }

    [Test]
    public void MapAndZipApplyAnyElementwiseOpAfterCheckingLengths()
    {
        var backend = Device.Backend;
        var a = Tensor.FromArray([1f, -2f, 3f, float.NaN, 5f, -6f, 7f, 8f, 9f], [9], Device);
        var b = Tensor.FromArray([0.5f, 1f, -1f, 2f, 0f, 3f, 1f, -4f, 2f], [9], Device);
        var y = Tensor.Zeros<float>([9], Device);
        backend.Map(a.Buffer, new ScaleOp<float>(-2f), y.Buffer);
        Assert.That(y.ToArray(), Is.EqualTo(a.ToArray().Select(v => -2f * v).ToArray()));
        backend.Zip(a.Buffer, b.Buffer, new AxpyOp<float>(3f), y.Buffer);
        var expected = a.ToArray().Zip(b.ToArray(), (u, v) => 3f * u + v).ToArray();
        Assert.That(y.ToArray(), Is.EqualTo(expected));
        var shorter = Tensor.Zeros<float>([8], Device);
        Rejected(() => backend.Map(a.Buffer, new ReluOp<float>(), shorter.Buffer), "map", "expected 9");
        Rejected(() => backend.Zip(a.Buffer, shorter.Buffer, new AddOp<float>(), y.Buffer), "zip", "expected 9");
    }

    [Test]
    public void StridedOpsCheckTheirLayoutsBeforeAnyArithmetic()
    {
        var backend = Device.Backend;
        var x = Tensor.FromArray(Enumerable.Range(1, 12).Select(i => (float)i).ToArray(), [12], Device);
        var y = Tensor.Zeros<float>([12], Device);
        var column = Tensor.Zeros<float>([3], Device);
        Rejected(() => backend.StridedCopy(new StridedLayout([3, 4], [4, 2]), x.Buffer, y.Buffer), "strided copy",
            "outside buffer 'x' of 12 elements");
        Rejected(() => backend.StridedCopy(new StridedLayout([3, 4], [-4, 1]), x.Buffer, y.Buffer), "strided copy",
            "negative");
        Rejected(() => backend.StridedCopy(new StridedLayout([-3, -4], [4, 1]), x.Buffer, y.Buffer), "strided copy",
            "negative");
        Rejected(() => backend.StridedCopy(new StridedLayout([65536, 65536], [0, 0]), x.Buffer, y.Buffer),
            "strided copy", "2^31");
        Rejected(() => backend.StridedCopy(StridedLayout.Dense([3, 4]), x.Buffer, x.Buffer), "strided copy",
            "also an input");
        Rejected(() => backend.StridedCopy(StridedLayout.Dense([2, 4]), x.Buffer, y.Buffer), "strided copy",
            "expected 8");
        Rejected(() => backend.StridedZip(StridedLayout.Dense([3, 4]), x.Buffer, StridedLayout.Dense([4, 3]), x.Buffer,
            new AddOp<float>(), y.Buffer), "strided zip", "[4, 3]");
        Rejected(() => backend.StridedZip(StridedLayout.Dense([3, 4]), x.Buffer, new StridedLayout([3, 4], [1, 1]),
            column.Buffer, new AddOp<float>(), y.Buffer), "strided zip", "outside buffer 'b' of 3 elements");
        Rejected(() => backend.StridedSum(new StridedLayout([3], [4]), new StridedLayout([4], [2]), x.Buffer, 1f,
            column.Buffer), "strided sum", "offset 14");
        var tooDeep = Assert.Throws<ArgumentException>(() => _ = new StridedLayout([1, 1, 1, 1, 1, 1, 2], new int[7]))!;
        Assert.That(tooDeep.Message, Does.Contain("at most 6"));

        // The same ops on good layouts: a broadcast row, a column sum, and a sum over nothing.
        backend.StridedCopy(new StridedLayout([3, 4], [0, 1]), x.Buffer, y.Buffer);
        Assert.That(y.ToArray(), Is.EqualTo(new float[] { 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4 }));
        backend.StridedSum(new StridedLayout([3], [4]), new StridedLayout([4], [1]), x.Buffer, 2f, column.Buffer);
        Assert.That(column.ToArray(), Is.EqualTo(new float[] { 20, 52, 84 }));
        backend.StridedSum(new StridedLayout([3], [4]), new StridedLayout([0], [1]), x.Buffer, 2f, column.Buffer);
        Assert.That(column.ToArray(), Is.EqualTo(new float[3]));
    }

    [Test]
    public void EveryWriteCountsOnTheOutputsVersionAndNoneOnTheInputs()
    {
        var backend = Device.Backend;
        var g = new ConvGeometry(2, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1);
        var pool = new PoolGeometry(2, 4, 6, 6, 2, 2, 2, 2, 0, 0, 0, 0);
        int channels = g.OutChannels, spatial = g.OutHeight * g.OutWidth;
        var floats = new Dictionary<string, DeviceBuffer<float>>
        {
            ["x"] = backend.Allocate<float>(g.InputLength), ["y"] = backend.Allocate<float>(g.OutputLength),
            ["bn"] = backend.Allocate<float>(g.OutputLength), ["dbn"] = backend.Allocate<float>(g.OutputLength),
            ["residual grad"] = backend.Allocate<float>(g.OutputLength),
            ["pooled"] = backend.Allocate<float>(pool.OutputLength), ["empty"] = backend.Allocate<float>(0),
        };
        foreach (var name in new[] { "w", "dw", "momentum", "exp avg", "exp avg sq", "max exp avg sq" })
            floats[name] = backend.Allocate<float>(g.WeightLength);
        foreach (var name in new[] { "gamma", "beta", "running mean", "running var", "saved mean", "saved inv std",
                     "dgamma", "dbeta" })
            floats[name] = backend.Allocate<float>(channels);
        using var argmax = backend.Allocate<int>(pool.OutputLength);
        var f = floats;
        try
        {
            void Writes(string op, Action action, params string[] outputs)
            {
                var before = f.ToDictionary(b => b.Key, b => b.Value.Version);
                long argmaxBefore = argmax.Version;
                action();
                foreach (var (name, buffer) in f)
                    Assert.That(buffer.Version - before[name], Is.EqualTo(outputs.Contains(name) ? 1 : 0),
                        $"{op}: writes to '{name}'");
                Assert.That(argmax.Version - argmaxBefore, Is.EqualTo(outputs.Contains("argmax") ? 1 : 0),
                    $"{op}: writes to 'argmax'");
            }

            Assert.That(f["x"].Version, Is.Zero, "a new buffer has had no write");
            Writes("copy from host", () => f["x"].CopyFromHost(Enumerable.Range(0, (int)f["x"].Length)
                .Select(i => i % 7 - 3f).ToArray()), "x");
            foreach (var name in new[] { "w", "gamma", "beta", "running mean", "running var", "exp avg", "exp avg sq",
                         "max exp avg sq" })
                Writes("fill", () => backend.Fill(f[name], 0.25f), name);
            Writes("conv2d forward", () => backend.Conv2dForward(g, f["x"], f["w"], null, f["y"]), "y");
            Writes("conv2d backward weight", () => backend.Conv2dBackwardWeight(g, f["x"], f["y"], f["dw"]), "dw");
            Writes("max-pool forward", () => backend.MaxPoolForward(pool, f["y"], f["pooled"], argmax), "pooled",
                "argmax");
            Writes("batch-norm forward (training)", () => backend.BatchNormForwardTraining(g.Batch, channels, spatial,
                    f["y"], f["gamma"], f["beta"], f["running mean"], f["running var"], 0.1, 1e-5, f["bn"],
                    f["saved mean"], f["saved inv std"], relu: true),
                "bn", "running mean", "running var", "saved mean", "saved inv std");
            Writes("batch-norm backward", () => backend.BatchNormBackward(g.Batch, channels, spatial, f["y"], f["bn"],
                    f["gamma"], f["saved mean"], f["saved inv std"], true, f["dbn"], f["dgamma"], f["dbeta"], f["bn"],
                    f["residual grad"]),
                "dbn", "dgamma", "dbeta", "residual grad");
            Writes("axpy", () => backend.Axpy(0.5f, f["dw"], f["w"]), "w");
            Writes("relu in place", () => backend.Relu(f["y"], f["y"]), "y");
            Writes("SGD step with momentum", () => backend.SgdStep(new SgdParameters(0.1, Momentum: 0.9), f["w"],
                f["dw"], f["momentum"], firstStep: true), "w", "momentum");
            Writes("AMSGrad step", () => backend.AdamStep(new AdamParameters(0.01, Amsgrad: true), 1, f["w"], f["dw"],
                f["exp avg"], f["exp avg sq"], f["max exp avg sq"]), "w", "exp avg", "exp avg sq", "max exp avg sq");
            Writes("fill of an empty buffer", () => backend.Fill(f["empty"], 1f));
            Writes("copy to host", () => f["y"].CopyToHost(new float[f["y"].Length]));
        }
        finally
        {
            foreach (var buffer in floats.Values) buffer.Dispose();
        }
    }

    [Test]
    public void TensorsOnDifferentDevicesAreRejected()
    {
        using var other = Device.Create("cpu");
        var x = Normal<float>([1, 3, 5, 5], 1);
        var w = Tensor.RandomNormal<float>([4, 3, 3, 3], 2, device: other);
        Rejected(() => x.Conv2d(w), "conv2d", "different devices");
        Rejected(() => _ = x + Tensor.Zeros<float>([1, 3, 5, 5], other), "add", "different devices");
    }
}
