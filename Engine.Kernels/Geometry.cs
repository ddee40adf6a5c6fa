// The shapes of the structured ops, validated once on the host. All tensors are NCHW, densely packed.
//   conv:     x [N, C, H, W], w [K, C/G, R, S], bias [K], y [N, K, OH, OW] (G groups: output channel k reads only
//             the C/G input channels of its group, k / (K/G))
//   pool:     x [N, C, H, W], y [N, C, OH, OW]
//   shortcut: x [N, C, H, W], y [N, K, OH, OW] with K ≥ C (option A: subsample by the stride, zero channels)
namespace Engine.Kernels;

/// <summary>A 2-D convolution: zero padding per side (imported models use asymmetric pads), dilation per axis
/// and grouped channels (torch.nn.Conv2d's and ONNX Conv's <c>dilations</c> and <c>group</c>).</summary>
/// <param name="Batch">N, images in the batch.</param>
/// <param name="InChannels">C, channels of the input x.</param>
/// <param name="InHeight">H, rows of the input.</param>
/// <param name="InWidth">W, columns of the input.</param>
/// <param name="OutChannels">K, filters (channels of the output y).</param>
/// <param name="KernelHeight">R, rows of each filter.</param>
/// <param name="KernelWidth">S, columns of each filter.</param>
/// <param name="StrideHeight">Vertical stride.</param>
/// <param name="StrideWidth">Horizontal stride.</param>
/// <param name="PadTop">Zero rows above the input.</param>
/// <param name="PadBottom">Zero rows below the input.</param>
/// <param name="PadLeft">Zero columns left of the input.</param>
/// <param name="PadRight">Zero columns right of the input.</param>
/// <param name="DilationHeight">Rows between neighbouring filter taps: tap r reads input row oh·stride − PadTop +
/// r·DilationHeight.</param>
/// <param name="DilationWidth">Columns between neighbouring filter taps.</param>
/// <param name="Groups">G: the channels split into G groups, output group g computed from input group g alone
/// (G = C is a depthwise convolution).</param>
public readonly record struct ConvGeometry(
    int Batch, int InChannels, int InHeight, int InWidth,
    int OutChannels, int KernelHeight, int KernelWidth,
    int StrideHeight, int StrideWidth,
    int PadTop, int PadBottom, int PadLeft, int PadRight,
    int DilationHeight = 1, int DilationWidth = 1, int Groups = 1)
{
    /// <summary>Square kernel, equal strides, the same padding on every side.</summary>
    public static ConvGeometry Square(int batch, int inChannels, int height, int width, int outChannels,
        int kernel, int stride, int padding) =>
        new ConvGeometry(batch, inChannels, height, width, outChannels, kernel, kernel, stride, stride,
            padding, padding, padding, padding).Validated();

    /// <summary>OH = (H + PadTop + PadBottom − ((R − 1)·DilationHeight + 1)) / StrideHeight + 1, rounded down (as
    /// PyTorch).</summary>
    public int OutHeight => (int)((PaddedHeight - DilatedKernelHeight) / StrideHeight + 1);

    /// <summary>OW = (W + PadLeft + PadRight − ((S − 1)·DilationWidth + 1)) / StrideWidth + 1, rounded down.</summary>
    public int OutWidth => (int)((PaddedWidth - DilatedKernelWidth) / StrideWidth + 1);

    /// <summary>H + PadTop + PadBottom, in 64 bits (int paddings near 2^31 would wrap in 32).</summary>
    private long PaddedHeight => (long)InHeight + PadTop + PadBottom;

    /// <summary>W + PadLeft + PadRight, in 64 bits.</summary>
    private long PaddedWidth => (long)InWidth + PadLeft + PadRight;

    /// <summary>Rows one filter spans on the padded input, (R − 1)·DilationHeight + 1, in 64 bits.</summary>
    public long DilatedKernelHeight => (long)(KernelHeight - 1) * DilationHeight + 1;

    /// <summary>Columns one filter spans on the padded input, (S − 1)·DilationWidth + 1, in 64 bits.</summary>
    public long DilatedKernelWidth => (long)(KernelWidth - 1) * DilationWidth + 1;

    /// <summary>C/G, the input channels each filter reads (the second extent of w).</summary>
    public int GroupInChannels => InChannels / Groups;

    /// <summary>K/G, the output channels of one group.</summary>
    public int GroupOutChannels => OutChannels / Groups;

    /// <summary>True for dilation 1 and a single group: the dense convolution every fast path serves.</summary>
    public bool IsDenseUndilated => DilationHeight == 1 && DilationWidth == 1 && Groups == 1;

    /// <summary>Elements of x [N, C, H, W].</summary>
    public long InputLength => (long)Batch * InChannels * InHeight * InWidth;

    /// <summary>Elements of w [K, C/G, R, S].</summary>
    public long WeightLength => (long)OutChannels * GroupInChannels * KernelHeight * KernelWidth;

    /// <summary>Elements of y [N, K, OH, OW].</summary>
    public long OutputLength => (long)Batch * OutChannels * OutHeight * OutWidth;

    /// <summary>Multiply-accumulates of the forward pass: each output reads C/G·R·S taps.</summary>
    public long Macs => OutputLength * GroupInChannels * KernelHeight * KernelWidth;

    /// <summary>The shapes in words, for error messages (never the record itself, whose output sizes divide by the
    /// strides).</summary>
    private string Shapes =>
        $"input [{Batch}, {InChannels}, {InHeight}, {InWidth}], weight [{OutChannels}, " +
        $"{(Groups >= 1 ? InChannels / Groups : InChannels)}, {KernelHeight}, {KernelWidth}]" +
        (DilationHeight == 1 && DilationWidth == 1 ? "" : $", dilation {DilationHeight}x{DilationWidth}") +
        (Groups == 1 ? "" : $", {Groups} groups");

    /// <summary>Returns this geometry once checked, before any arithmetic on it: a non-empty batch, extents, kernel,
    /// strides, dilations and groups ≥ 1, paddings ≥ 0, C and K divisible by the groups, the dilated kernel no larger
    /// than the padded input, every tensor under 2^31 elements.</summary>
    /// <exception cref="ArgumentException">A check failed; the message names the argument and the shapes.</exception>
    public ConvGeometry Validated()
    {
        const string op = "conv2d";
        if (Batch == 0)
            throw new ArgumentException($"{op}: an empty batch is not supported ({Shapes}).");
        if (Batch < 0 || InChannels < 1 || InHeight < 1 || InWidth < 1 || OutChannels < 1)
            throw new ArgumentException($"{op}: every extent of the input and output channels must be at least 1 " +
                                        $"({Shapes}).");
        if (KernelHeight < 1 || KernelWidth < 1)
            throw new ArgumentException($"{op}: kernel {KernelHeight}x{KernelWidth} must be at least 1x1 ({Shapes}).");
        if (StrideHeight < 1 || StrideWidth < 1)
            throw new ArgumentException($"{op}: stride {StrideHeight}x{StrideWidth} must be at least 1 ({Shapes}).");
        if (DilationHeight < 1 || DilationWidth < 1)
            throw new ArgumentException($"{op}: dilation {DilationHeight}x{DilationWidth} must be at least 1 " +
                                        $"({Shapes}).");
        if (Groups < 1)
            throw new ArgumentException($"{op}: groups {Groups} must be at least 1 ({Shapes}).");
        if (InChannels % Groups != 0 || OutChannels % Groups != 0)
            throw new ArgumentException($"{op}: {InChannels} input and {OutChannels} output channels must both be " +
                                        $"divisible by groups {Groups} ({Shapes}).");
        if (PadTop < 0 || PadBottom < 0 || PadLeft < 0 || PadRight < 0)
            throw new ArgumentException($"{op}: padding (top {PadTop}, bottom {PadBottom}, left {PadLeft}, right " +
                                        $"{PadRight}) must not be negative ({Shapes}).");
        if (PaddedHeight < DilatedKernelHeight || PaddedWidth < DilatedKernelWidth)
            throw new ArgumentException(
                $"{op}: kernel {KernelHeight}x{KernelWidth}" +
                (DilationHeight == 1 && DilationWidth == 1
                    ? ""
                    : $" (dilated to {DilatedKernelHeight}x{DilatedKernelWidth})") +
                $" is larger than the padded input {PaddedHeight}x{PaddedWidth} ({Shapes}).");
        if (PaddedHeight > int.MaxValue || PaddedWidth > int.MaxValue)
            throw new ArgumentException(
                $"{op}: padding (top {PadTop}, bottom {PadBottom}, left {PadLeft}, right {PadRight}) makes the " +
                $"padded input {PaddedHeight}x{PaddedWidth}, over 2^31 − 1 per side ({Shapes}).");
        if (OutputLength > int.MaxValue || InputLength > int.MaxValue || WeightLength > int.MaxValue)
            throw new ArgumentException($"{op}: tensors over 2^31 elements are not supported ({Shapes}).");
        return this;
    }
}

/// <summary>A 2-D pooling window, PyTorch's and ONNX's MaxPool / AveragePool geometry: rectangular kernel, strides
/// and dilations per axis, padding per side (−∞ for max pooling; for average pooling see
/// <see cref="Backend.AvgPoolForward{T}"/>), and ceil mode.</summary>
/// <param name="Batch">N, images in the batch.</param>
/// <param name="Channels">C, channels (pooled independently).</param>
/// <param name="InHeight">H, rows of the input.</param>
/// <param name="InWidth">W, columns of the input.</param>
/// <param name="KernelHeight">Rows of the window.</param>
/// <param name="KernelWidth">Columns of the window.</param>
/// <param name="StrideHeight">Vertical step between windows.</param>
/// <param name="StrideWidth">Horizontal step between windows.</param>
/// <param name="PadTop">Rows added above the input.</param>
/// <param name="PadBottom">Rows added below the input.</param>
/// <param name="PadLeft">Columns added left of the input.</param>
/// <param name="PadRight">Columns added right of the input.</param>
/// <param name="DilationHeight">Step between the window's rows (1: adjacent).</param>
/// <param name="DilationWidth">Step between the window's columns.</param>
/// <param name="CeilMode">Round the output extent up instead of down, keeping only windows that start inside the
/// input or its top/left padding (PyTorch's rule).</param>
public readonly record struct PoolGeometry(
    int Batch, int Channels, int InHeight, int InWidth,
    int KernelHeight, int KernelWidth, int StrideHeight, int StrideWidth,
    int PadTop, int PadBottom, int PadLeft, int PadRight,
    int DilationHeight = 1, int DilationWidth = 1, bool CeilMode = false)
{
    /// <summary>Square window, equal strides, the same padding on every side, no dilation, ceil mode off (ResNet's
    /// stem pool is <c>Square(n, c, h, w, 3, 2, 1)</c>). Not validated: the op that uses it validates.</summary>
    public static PoolGeometry Square(int batch, int channels, int height, int width, int kernel, int stride,
        int padding) =>
        new(batch, channels, height, width, kernel, kernel, stride, stride, padding, padding, padding, padding);

    /// <summary>OH = ⌊(H + PadTop + PadBottom − DilationHeight·(KernelHeight − 1) − 1) / StrideHeight⌋ + 1, or with
    /// <see cref="CeilMode"/> rounded up and one less when the last window would start past H + PadTop − 1.</summary>
    public int OutHeight => (int)OutExtent(InHeight, KernelHeight, StrideHeight, PadTop, PadBottom, DilationHeight,
        CeilMode);

    /// <summary>OW, as <see cref="OutHeight"/> along the columns.</summary>
    public int OutWidth => (int)OutExtent(InWidth, KernelWidth, StrideWidth, PadLeft, PadRight, DilationWidth,
        CeilMode);

    /// <summary>Elements of x [N, C, H, W].</summary>
    public long InputLength => (long)Batch * Channels * InHeight * InWidth;

    /// <summary>Elements of y [N, C, OH, OW] (and of the argmax buffer).</summary>
    public long OutputLength => (long)Batch * Channels * OutHeight * OutWidth;

    /// <summary>The output extent along one axis, in 64 bits (PyTorch's pooling_output_shape).</summary>
    private static long OutExtent(int input, int kernel, int stride, int padBefore, int padAfter, int dilation,
        bool ceil)
    {
        long span = (long)input + padBefore + padAfter - Span(kernel, dilation);
        long extent = (ceil ? span + stride - 1 : span) / stride + 1;
        // Ceil mode: the last window must start inside the input or the padding before it.
        if (ceil && (extent - 1) * stride >= (long)input + padBefore) extent--;
        return extent;
    }

    /// <summary>Rows (or columns) the dilated window spans: (kernel − 1)·dilation + 1.</summary>
    private static long Span(int kernel, int dilation) => ((long)kernel - 1) * dilation + 1;

    /// <summary>The input shape and window in words, for error messages.</summary>
    private string Shapes =>
        $"input [{Batch}, {Channels}, {InHeight}, {InWidth}], window {KernelHeight}x{KernelWidth}, stride " +
        $"{StrideHeight}x{StrideWidth}, padding (top {PadTop}, bottom {PadBottom}, left {PadLeft}, right " +
        $"{PadRight}), dilation {DilationHeight}x{DilationWidth}{(CeilMode ? ", ceil mode" : "")}";

    /// <summary>Returns this geometry once checked for max pooling, before any arithmetic on it: a non-empty batch,
    /// extents, window, stride and dilation ≥ 1, paddings ≥ 0, the dilated window no larger than the padded input,
    /// every window covering at least one input element (ONNX's condition, looser than PyTorch's pad ≤ half the
    /// window: the padding before the input smaller than the dilated window, the last window starting inside the
    /// input, and no dilation stepping a window over the whole input), tensors under 2^31 elements.</summary>
    /// <exception cref="ArgumentException">A check failed; the message names the argument and the shapes.</exception>
    public PoolGeometry Validated() => Validated("max-pool");

    /// <summary>Returns this geometry once checked for average pooling: the checks of <see cref="Validated()"/>, and
    /// no dilation (PyTorch's avg_pool2d has none; ONNX's dilated AveragePool is not supported).</summary>
    /// <exception cref="ArgumentException">A check failed; the message names the argument and the shapes.</exception>
    public PoolGeometry ValidatedForAverage()
    {
        const string op = "avg-pool";
        if (DilationHeight != 1 || DilationWidth != 1)
            throw new ArgumentException($"{op}: dilation {DilationHeight}x{DilationWidth} is not supported, only " +
                                        $"1x1 ({Shapes}).");
        return Validated(op);
    }

    private PoolGeometry Validated(string op)
    {
        if (Batch == 0)
            throw new ArgumentException($"{op}: an empty batch is not supported ({Shapes}).");
        if (Batch < 0 || Channels < 1 || InHeight < 1 || InWidth < 1)
            throw new ArgumentException($"{op}: every extent of the input must be at least 1 ({Shapes}).");
        if (KernelHeight < 1 || KernelWidth < 1)
            throw new ArgumentException($"{op}: window {KernelHeight}x{KernelWidth} must be at least 1x1 ({Shapes}).");
        if (StrideHeight < 1 || StrideWidth < 1)
            throw new ArgumentException($"{op}: stride {StrideHeight}x{StrideWidth} must be at least 1 ({Shapes}).");
        if (DilationHeight < 1 || DilationWidth < 1)
            throw new ArgumentException($"{op}: dilation {DilationHeight}x{DilationWidth} must be at least 1 " +
                                        $"({Shapes}).");
        if (PadTop < 0 || PadBottom < 0 || PadLeft < 0 || PadRight < 0)
            throw new ArgumentException($"{op}: padding must not be negative ({Shapes}).");
        long spanHeight = Span(KernelHeight, DilationHeight), spanWidth = Span(KernelWidth, DilationWidth);
        if (PadTop >= spanHeight || PadLeft >= spanWidth)
            throw new ArgumentException($"{op}: padding before the input must be smaller than the (dilated) window " +
                                        $"{spanHeight}x{spanWidth}, or the first window would pool padding only " +
                                        $"({Shapes}).");
        long paddedHeight = (long)InHeight + PadTop + PadBottom, paddedWidth = (long)InWidth + PadLeft + PadRight;
        if (paddedHeight < spanHeight || paddedWidth < spanWidth)
            throw new ArgumentException($"{op}: window {spanHeight}x{spanWidth} is larger than the padded input " +
                                        $"{paddedHeight}x{paddedWidth} ({Shapes}).");
        if (paddedHeight > int.MaxValue || paddedWidth > int.MaxValue)
            throw new ArgumentException($"{op}: padding makes the padded input {paddedHeight}x{paddedWidth}, over " +
                                        $"2^31 − 1 per side ({Shapes}).");
        if (InputLength > int.MaxValue || OutputLength > int.MaxValue)
            throw new ArgumentException($"{op}: tensors over 2^31 elements are not supported ({Shapes}).");
        if ((long)(OutHeight - 1) * StrideHeight - PadTop >= InHeight ||
            (long)(OutWidth - 1) * StrideWidth - PadLeft >= InWidth)
            throw new ArgumentException($"{op}: padding after the input is so large that the last window would pool " +
                                        $"padding only ({Shapes}).");
        if (!EveryWindowCoversInput(InHeight, StrideHeight, PadTop, DilationHeight, OutHeight) ||
            !EveryWindowCoversInput(InWidth, StrideWidth, PadLeft, DilationWidth, OutWidth))
            throw new ArgumentException($"{op}: the dilation steps some window over every input element, so it " +
                                        $"would pool padding only ({Shapes}).");
        return this;
    }

    /// <summary>The taps [first, end) of a window starting at <paramref name="start"/> along one axis that land in
    /// [0, <paramref name="input"/>): start + tap·dilation is an input index. Plain integer arithmetic, callable from
    /// kernels; the geometry is validated, so the range is never empty.</summary>
    internal static (int First, int End) InputTaps(int start, int kernel, int dilation, int input)
    {
        if (dilation == 1) return (Math.Max(-start, 0), Math.Min(kernel, input - start));
        // Unsigned: the distances are below 2^31 and the dilation too, so their sums fit in 32 bits.
        uint step = (uint)dilation;
        int first = start >= 0 ? 0 : (int)(((uint)-start + step - 1) / step);
        int end = (int)Math.Min((uint)kernel, ((uint)(input - start) + step - 1) / step);
        return (first, end);
    }

    /// <summary>Average pooling's divisor along one axis for an undilated window starting at
    /// <paramref name="start"/>: with <paramref name="countIncludePad"/> its cells inside the padded input
    /// [−padBefore, input + padAfter) (never the cells past it that ceil mode adds, as PyTorch's avg_pool2d), else its
    /// cells inside the input.</summary>
    internal static int AverageCount(int start, int kernel, int input, int padAfter, bool countIncludePad) =>
        countIncludePad
            ? Math.Min(kernel, input + padAfter - start)
            : Math.Min(kernel, input - start) + Math.Min(start, 0);

    /// <summary>Whether every window along one axis holds an input element. A window starting at s ≥ 0 holds s
    /// (every window starts before the input's end); one starting in the padding first reaches the input at
    /// (s mod dilation) — the padding bound keeps its last tap past 0 — so only dilations larger than the input can
    /// miss it. The starts' residues repeat after at most dilation windows.</summary>
    private static bool EveryWindowCoversInput(int input, int stride, int padBefore, int dilation, int outExtent)
    {
        if (dilation <= input) return true;
        long windows = Math.Min(Math.Min(outExtent, ((long)padBefore + stride - 1) / stride), dilation);
        for (long o = 0; o < windows; o++)
        {
            long start = o * stride - padBefore;
            if (((start % dilation) + dilation) % dilation >= input) return false;
        }
        return true;
    }
}

/// <summary>The paper's option-A shortcut: y[n, k, i, j] = x[n, k − PadFront, i·s, j·s] when that channel exists,
/// else 0.</summary>
/// <param name="Batch">N, images in the batch.</param>
/// <param name="InChannels">C, channels of the input x.</param>
/// <param name="InHeight">H, rows of the input.</param>
/// <param name="InWidth">W, columns of the input.</param>
/// <param name="OutChannels">K ≥ C, channels of the output y.</param>
/// <param name="Stride">Subsampling step: the output keeps rows and columns 0, s, 2s, …</param>
/// <param name="PadFront">Zero channels placed before the input's (K − C − PadFront follow them).</param>
public readonly record struct ShortcutGeometry(int Batch, int InChannels, int InHeight, int InWidth,
    int OutChannels, int Stride, int PadFront)
{
    /// <summary>Extra channels split evenly before and after the input's (the common PyTorch CIFAR layout).</summary>
    public static ShortcutGeometry Centered(int batch, int inChannels, int height, int width, int outChannels,
        int stride) =>
        new ShortcutGeometry(batch, inChannels, height, width, outChannels, stride,
            (outChannels - inChannels) / 2).Validated();

    /// <summary>OH = ⌈H / Stride⌉, the same as a strided 1x1 or padded 3x3 convolution.</summary>
    public int OutHeight => (InHeight - 1) / Stride + 1;

    /// <summary>OW = ⌈W / Stride⌉.</summary>
    public int OutWidth => (InWidth - 1) / Stride + 1;

    /// <summary>Elements of x [N, C, H, W].</summary>
    public long InputLength => (long)Batch * InChannels * InHeight * InWidth;

    /// <summary>Elements of y [N, K, OH, OW].</summary>
    public long OutputLength => (long)Batch * OutChannels * OutHeight * OutWidth;

    /// <summary>Returns this geometry once checked: extents and stride ≥ 1, K ≥ C, 0 ≤ PadFront ≤ K − C.</summary>
    /// <exception cref="ArgumentException">A check failed; the message names the argument and the shapes.</exception>
    public ShortcutGeometry Validated()
    {
        const string op = "shortcut A";
        string shapes = $"input [{Batch}, {InChannels}, {InHeight}, {InWidth}], {OutChannels} output channels, " +
                        $"stride {Stride}, {PadFront} zero channels in front";
        if (Batch < 1 || InChannels < 1 || InHeight < 1 || InWidth < 1)
            throw new ArgumentException($"{op}: every extent of the input must be at least 1 ({shapes}).");
        if (Stride < 1)
            throw new ArgumentException($"{op}: stride {Stride} must be at least 1 ({shapes}).");
        if (OutChannels < InChannels || PadFront < 0 || PadFront > OutChannels - InChannels)
            throw new ArgumentException($"{op}: the output channels must hold the input's with 0 ≤ front zero " +
                                        $"channels ≤ output − input channels ({shapes}).");
        return this;
    }
}

/// <summary>One SGD step's hyper-parameters, with PyTorch's semantics (torch.optim.SGD).</summary>
/// <param name="LearningRate">lr ≥ 0, finite.</param>
/// <param name="Momentum">Momentum factor ≥ 0, finite; 0 is plain SGD without a momentum buffer.</param>
/// <param name="Dampening">Dampening ≥ 0, finite, of the gradient added to the momentum buffer.</param>
/// <param name="WeightDecay">L2 penalty ≥ 0, finite, added to the gradient as WeightDecay·param.</param>
/// <param name="Nesterov">Nesterov momentum (needs a momentum and zero dampening).</param>
public readonly record struct SgdParameters(double LearningRate, double Momentum = 0, double Dampening = 0,
    double WeightDecay = 0, bool Nesterov = false)
{
    /// <summary>Returns these hyper-parameters once checked: each finite and ≥ 0 (torch.optim.SGD's ranges, which
    /// also let ∞ and NaN through, rejected here because no step with them means anything), and Nesterov only with
    /// a momentum and zero dampening (as torch.optim.SGD).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is negative, infinite or NaN; the message
    /// names it and its value.</exception>
    /// <exception cref="ArgumentException">Nesterov without a momentum or with dampening.</exception>
    public SgdParameters Validated()
    {
        Check(LearningRate, "learningRate", "the learning rate");
        Check(Momentum, "momentum", "the momentum");
        Check(Dampening, "dampening", "the dampening");
        Check(WeightDecay, "weightDecay", "the weight decay");
        if (Nesterov && (Momentum <= 0 || Dampening != 0))
            throw new ArgumentException("SGD: Nesterov momentum requires a momentum and zero dampening.");
        return this;
    }

    private static void Check(double value, string parameter, string what)
    {
        if (!(value >= 0) || !double.IsFinite(value))
            throw new ArgumentOutOfRangeException(parameter, $"SGD: {what} must be finite and ≥ 0, got {value}.");
    }
}
