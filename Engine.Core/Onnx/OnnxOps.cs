// The importer's op table: the one place where each ONNX op type maps to engine tensor ops. Each entry reads and
// checks the node's attributes once (when the model is loaded) and returns two functions: Infer, which derives
// the output shapes from the input shapes and refuses shapes that do not agree (at load with the declared input
// shapes, where an extent such as the batch may be unknown, −1; again on every run with the actual ones), and
// Run, which applies engine ops that record their backward. What the engine cannot do yet is refused here by
// name, so a graph that loads runs.
//
// Shapes are int[] (−1 = extent unknown until run time). Inputs a node reads as integer constants (Reshape's
// shape, Slice's starts, Pad's pads …) are read at load (OnnxNode.ConstantInts); the others are float tensors.
using System.Numerics;
using Engine.Core.Autograd;
using Engine.Kernels;

namespace Engine.Core.Onnx;

/// <summary>Output shapes from input shapes (null for an absent or integer-constant input).</summary>
internal delegate int[]?[] InferShapes(int[]?[] inputs);

/// <summary>Outputs (aligned with the node's outputs) from inputs (null for an absent or constant input);
/// <paramref name="training"/> is the module's mode.</summary>
internal delegate Tensor<T>?[] RunNode<T>(Tensor<T>?[] inputs, bool training) where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>A compiled node: its shape function, its engine ops, and which inputs it reads as integer constants.
/// </summary>
internal sealed record OnnxOp<T>(InferShapes Infer, RunNode<T> Run, params int[] ConstantInputs)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>The op table: ONNX op type → compiler of a node of that type.</summary>
internal static class OnnxOps<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Every op type in the default domain that the importer runs (Constant is folded at load), with the
    /// lowest opset from which the importer's reading of it holds (the op's definition unchanged since, as far as
    /// the attributes accepted here go).</summary>
    public static readonly IReadOnlyDictionary<string, (int Since, Func<OnnxNode, OnnxOp<T>> Compile)> Table =
        new Dictionary<string, (int, Func<OnnxNode, OnnxOp<T>>)>
        {
            ["Add"] = (7, n => Elementwise(n, Tensor<T>.Add)),
            ["AveragePool"] = (7, AveragePool),
            ["BatchNormalization"] = (9, BatchNormalization),
            ["Conv"] = (1, Conv),
            ["ConvTranspose"] = (1, ConvTranspose),
            ["Dropout"] = (7, Dropout),
            ["Flatten"] = (1, Flatten),
            ["Gemm"] = (7, Gemm),
            ["GlobalAveragePool"] = (1, GlobalAveragePool),
            ["Identity"] = (1, Identity),
            ["MatMul"] = (1, MatMul),
            ["MaxPool"] = (1, MaxPool),
            ["Mul"] = (7, n => Elementwise(n, Tensor<T>.Multiply)),
            ["Pad"] = (2, Pad),
            ["Relu"] = (6, Relu),
            ["Reshape"] = (5, Reshape),
            ["Slice"] = (1, Slice),
            ["Sum"] = (8, n => Elementwise(n, Tensor<T>.Add)),
            ["Transpose"] = (1, Transpose),
        };

    // ---- elementwise and identity ----

    private static OnnxOp<T> Relu(OnnxNode n)
    {
        n.Arity(1, 1);
        n.Attributes();
        return new(s => [s[0]], (x, _) => [x[0]!.Relu()]);
    }

    private static OnnxOp<T> Identity(OnnxNode n)
    {
        n.Arity(1, 1);
        n.Attributes();
        return new(s => [s[0]], (x, _) => [x[0]]);
    }

    /// <summary>Dropout at inference: the identity (ratio ignored); training-time dropout and the mask refused.</summary>
    private static OnnxOp<T> Dropout(OnnxNode n)
    {
        n.Arity(1, n.Opset >= 12 ? 3 : 1);
        n.Attributes("ratio", "seed");
        if (n.ConstantInts(2, "training_mode") is { } mode && mode.Any(m => m != 0))
            throw n.Unsupported("training_mode = 1 (dropout while training)");
        return new(s => [s[0]], (x, _) => [x[0]], 2);
    }

    /// <summary>Add, Mul and Sum: the engine's NumPy-broadcasting ops, folded over the inputs.</summary>
    private static OnnxOp<T> Elementwise(OnnxNode n, Func<Tensor<T>, Tensor<T>, Tensor<T>> op)
    {
        n.Arity(n.Op == "Sum" ? 1 : 2, n.Op == "Sum" ? int.MaxValue : 2);
        n.Attributes();
        return new(
            s => [s.Skip(1).Aggregate(s[0]!, (a, b) => Broadcast(n, a, b!))],
            (x, _) => [x.Select(t => t!).Aggregate(op)]);
    }

    // ---- convolution, pooling, normalisation ----

    private static OnnxOp<T> Conv(OnnxNode n)
    {
        n.Arity(2, 3);
        n.Attributes("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides");
        var window = Window.Read(n);
        long group = n.Int("group", 1);
        if (group < 1) throw n.Invalid($"group = {group} must be at least 1.");

        (int[] Pads, int[] Output) Geometry(int[] x, int[] w)
        {
            Rank(n, x, 4, "input X");
            Rank(n, w, 4, "weight W");
            if (x[1] >= 0 && w[1] >= 0 && x[1] != w[1] * group)
                throw n.Invalid($"weight W {Format(w)} expects {w[1] * group} input channels; input X {Format(x)} has {x[1]}.");
            if (window.Kernel is { } k && (k[0] != w[2] || k[1] != w[3]))
                throw n.Invalid($"kernel_shape [{string.Join(", ", k)}] disagrees with weight W {Format(w)}.");
            var (pads, output) = window.Resolve(n, [x[2], x[3]], [w[2], w[3]]);
            if (pads.Length > 0 && (pads[0] >= w[2] || pads[2] >= w[2] || pads[1] >= w[3] || pads[3] >= w[3]))
                throw n.Unsupported($"padding [{string.Join(", ", pads)}] as large as the kernel {w[2]}x{w[3]}");
            return (pads, output);
        }

        return new(
            s =>
            {
                int[] x = s[0]!, w = s[1]!;
                var (_, output) = Geometry(x, w);
                if (Optional(s, 2) is { } b && (b.Length != 1 || (b[0] >= 0 && w[0] >= 0 && b[0] != w[0])))
                    throw n.Invalid($"bias B {Format(b)} must be [{w[0]}] for weight W {Format(w)}.");
                return [[x[0], w[0], output[0], output[1]]];
            },
            (x, _) =>
            {
                var (p, _) = Geometry(x[0]!.Shape.ToArray(), x[1]!.Shape.ToArray());
                return [x[0]!.Conv2d(x[1]!, Optional(x, 2), (int)window.Strides[0], (int)window.Strides[1], p[0], p[2],
                    p[1], p[3], (int)window.Dilations[0], (int)window.Dilations[1], (int)group)];
            });
    }

    /// <summary>ConvTranspose (the engine's ConvTranspose2d): strides, per-side pads (auto_pad included),
    /// output_padding, output_shape, dilations, group, optional bias.</summary>
    private static OnnxOp<T> ConvTranspose(OnnxNode n)
    {
        n.Arity(2, 3);
        n.Attributes("auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides");
        var window = Window.Read(n);
        long[]? outputShape = n.Ints("output_shape");
        if (outputShape is { Length: not 2 }) throw n.Unsupported("a window over other than 2 spatial axes (2-D only)");
        long group = n.Int("group", 1);
        long[] outputPadding = n.Ints("output_padding") ?? [0, 0];
        if (group < 1) throw n.Invalid($"group = {group} must be at least 1.");
        if (outputPadding.Length != 2) throw n.Unsupported("a window over other than 2 spatial axes (2-D only)");

        // Per-side pads, the output padding (output_shape past the full output adds to it) and the output extents.
        (int[] Pads, int[] Extra, int[] Output) Geometry(int[] x, int[] w)
        {
            Rank(n, x, 4, "input X");
            Rank(n, w, 4, "weight W");
            if (x[1] >= 0 && w[0] >= 0 && x[1] != w[0])
                throw n.Invalid($"weight W {Format(w)} expects {w[0]} input channels; input X {Format(x)} has {x[1]}.");
            if (window.Kernel is { } k && (k[0] != w[2] || k[1] != w[3]))
                throw n.Invalid($"kernel_shape [{string.Join(", ", k)}] disagrees with weight W {Format(w)}.");
            if (x[2] < 0 || x[3] < 0 || w[2] < 0 || w[3] < 0) return ([], [], [-1, -1]);
            var pads = new int[4];
            var extra = outputPadding.Select(p => (int)p).ToArray();
            var output = new int[2];
            for (int a = 0; a < 2; a++)
            {
                long stride = window.Strides[a], span = (w[2 + a] - 1) * window.Dilations[a] + 1;
                long full = stride * (x[2 + a] - 1) + outputPadding[a] + span;
                if (outputShape is not null)
                {
                    // ONNX: total padding = full − output_shape, split as auto_pad says (SAME_UPPER: the smaller
                    // half first); an output_shape past the full output pads it at the end.
                    long total = full - outputShape[a];
                    if (total < 0) { extra[a] -= (int)total; full -= total; total = 0; }
                    long small = total / 2;
                    (pads[a], pads[a + 2]) = window.AutoPad == "SAME_UPPER"
                        ? ((int)small, (int)(total - small)) : ((int)(total - small), (int)small);
                }
                else if (window.AutoPad is "SAME_UPPER" or "SAME_LOWER")
                {
                    long total = Math.Max(0, full - x[2 + a] * stride), small = total / 2;
                    (pads[a], pads[a + 2]) = window.AutoPad == "SAME_UPPER"
                        ? ((int)small, (int)(total - small)) : ((int)(total - small), (int)small);
                }
                else if (window.AutoPad == "NOTSET" && window.Pads is { } given)
                {
                    (pads[a], pads[a + 2]) = ((int)given[a], (int)given[a + 2]);
                }
                long extent = full - pads[a] - pads[a + 2];
                if (extent < 1 || extent > int.MaxValue)
                    throw n.Invalid($"input X {Format(x)} and weight W {Format(w)} give an output extent of {extent}.");
                output[a] = (int)extent;
            }
            return (pads, extra, output);
        }

        return new(
            s =>
            {
                int[] x = s[0]!, w = s[1]!;
                var (_, _, output) = Geometry(x, w);
                int channels = w[1] < 0 ? -1 : checked(w[1] * (int)group);
                if (Optional(s, 2) is { } b && (b.Length != 1 || (b[0] >= 0 && channels >= 0 && b[0] != channels)))
                    throw n.Invalid($"bias B {Format(b)} must be [{channels}] for weight W {Format(w)}.");
                return [[x[0], channels, output[0], output[1]]];
            },
            (x, _) =>
            {
                var (p, e, _) = Geometry(x[0]!.Shape.ToArray(), x[1]!.Shape.ToArray());
                return [x[0]!.ConvTranspose2d(x[1]!, Optional(x, 2), (int)window.Strides[0], (int)window.Strides[1],
                    p[0], p[2], p[1], p[3], e[0], e[1], (int)window.Dilations[0],
                    (int)window.Dilations[1], (int)group)];
            });
    }

    /// <summary>MaxPool: rectangular window, per-axis strides and dilations, per-side pads, ceil rounding.
    /// </summary>
    private static OnnxOp<T> MaxPool(OnnxNode n)
    {
        n.Attributes("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides");
        var window = Window.Read(n);
        return Pool(n, window, average: false, (x, k, p) => x.MaxPool2d(k[0], k[1], (int)window.Strides[0],
            (int)window.Strides[1], p[0], p[2], p[1], p[3], (int)window.Dilations[0], (int)window.Dilations[1],
            window.CeilMode));
    }

    /// <summary>AveragePool: rectangular window, per-axis strides, per-side pads, ceil rounding, count_include_pad
    /// (ONNX's default 0: padding is not counted).</summary>
    private static OnnxOp<T> AveragePool(OnnxNode n)
    {
        n.Attributes("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides");
        var window = Window.Read(n);
        bool countIncludePad = n.Int("count_include_pad", 0) != 0;
        return Pool(n, window, average: true, (x, k, p) => x.AvgPool2d(k[0], k[1], (int)window.Strides[0],
            (int)window.Strides[1], p[0], p[2], p[1], p[3], window.CeilMode, countIncludePad));
    }

    /// <summary>What MaxPool and AveragePool share: one input [N, C, H, W], the window's pads resolved per input
    /// shape, and the engine's pooling geometry checks (any pads that leave every window at least one input
    /// element; AveragePool without dilation), refused by name at load when the extents are known.</summary>
    private static OnnxOp<T> Pool(OnnxNode n, Window window, bool average, Func<Tensor<T>, int[], int[], Tensor<T>> pool)
    {
        n.Arity(1, 1);
        int[] k = (window.Kernel ?? throw n.Invalid("attribute 'kernel_shape' is required.")).Select(d => (int)d).ToArray();

        (int[] Pads, int[] Output) Geometry(int[] x)
        {
            Rank(n, x, 4, "input X");
            var (pads, output) = window.Resolve(n, [x[2], x[3]], k);
            if (pads.Length == 0) return (pads, output);
            var geometry = new PoolGeometry(1, 1, x[2], x[3], k[0], k[1], (int)window.Strides[0],
                (int)window.Strides[1], pads[0], pads[2], pads[1], pads[3], (int)window.Dilations[0],
                (int)window.Dilations[1], window.CeilMode);
            try
            {
                if (average) geometry.ValidatedForAverage();
                else geometry.Validated();
            }
            catch (ArgumentException e)
            {
                throw n.Unsupported($"padding [{string.Join(", ", pads)}] with a {k[0]}x{k[1]} window ({e.Message})");
            }
            return (pads, output);
        }

        return new(
            s =>
            {
                var x = s[0]!;
                var (_, output) = Geometry(x);
                return [[x[0], x[1], output[0], output[1]]];
            },
            (x, _) => [pool(x[0]!, k, Geometry(x[0]!.Shape.ToArray()).Pads)]);
    }

    private static OnnxOp<T> GlobalAveragePool(OnnxNode n)
    {
        n.Arity(1, 1);
        n.Attributes();
        return new(
            s =>
            {
                var x = s[0]!;
                if (x.Length != 4) throw n.Unsupported($"input X {Format(x)} (2-D pooling, [N, C, H, W], only)");
                return [[x[0], x[1], 1, 1]];
            },
            (x, _) =>
            {
                var input = x[0]!;
                return [input.GlobalAveragePool().Reshape([input.Shape[0], input.Shape[1], 1, 1])];
            });
    }

    /// <summary>BatchNormalization. Inference (training_mode 0): running statistics, or, while the module is in
    /// training mode, batch statistics with the running statistics updated in place (momentum 1 − ONNX momentum,
    /// the engine's unbiased variance). training_mode = 1 (opset ≥ 14) follows the ONNX spec: batch statistics,
    /// and outputs 1 and 2 are the running mean and variance updated with ONNX's momentum and biased variance.
    /// </summary>
    private static OnnxOp<T> BatchNormalization(OnnxNode n)
    {
        bool trainingMode = n.Int("training_mode", 0) != 0;
        n.Arity(5, 5, trainingMode ? 3 : 1);
        if (n.Opset >= 14) n.Attributes("epsilon", "momentum", "training_mode");
        else n.Attributes("epsilon", "momentum");
        double epsilon = n.Float("epsilon", 1e-5f), momentum = n.Float("momentum", 0.9f);
        if (!(epsilon > 0)) throw n.Invalid($"epsilon = {epsilon} must be positive.");
        if (!(momentum is >= 0 and <= 1)) throw n.Invalid($"momentum = {momentum} must be in [0, 1].");
        int outputs = n.Proto.Output.Count;
        return new(
            s =>
            {
                var x = s[0]!;
                if (x.Length < 2) throw n.Invalid($"input X {Format(x)} must be at least [N, C].");
                string[] names = ["scale", "B", "input_mean", "input_var"];
                for (int i = 1; i <= 4; i++)
                    if (s[i]!.Length != 1 || (x[1] >= 0 && s[i]![0] >= 0 && s[i]![0] != x[1]))
                        throw n.Invalid($"{names[i - 1]} {Format(s[i])} must be [{x[1]}] for input X {Format(x)}.");
                return [x, .. Enumerable.Repeat<int[]?>([x[1]], outputs - 1)];
            },
            (x, training) =>
            {
                Tensor<T> input = x[0]!, scale = x[1]!, bias = x[2]!, mean = x[3]!, variance = x[4]!;
                if (!trainingMode)
                    return [input.BatchNorm(scale, bias, mean, variance, training, 1 - momentum, epsilon)];
                Tensor<T> runningMean, runningVariance;
                using (GradMode.NoGrad())
                {
                    runningMean = mean.Clone();
                    runningVariance = variance.Clone();
                }
                var y = input.BatchNorm(scale, bias, runningMean, runningVariance, true, 1 - momentum, epsilon,
                    varianceUpdate: RunningVarianceUpdate.Biased);
                Tensor<T>?[] all = [y, runningMean, runningVariance];
                return all[..outputs];
            });
    }

    // ---- matrix products ----

    /// <summary>Y = alpha · A' · B' + beta · C (A' = Aᵀ when transA, B' likewise; C broadcast to [M, N]); Linear's
    /// form runs as the engine's Linear.</summary>
    private static OnnxOp<T> Gemm(OnnxNode n)
    {
        n.Arity(2, 3);
        n.Attributes("alpha", "beta", "transA", "transB");
        double alpha = n.Float("alpha", 1), beta = n.Float("beta", 1);
        bool transA = n.Int("transA", 0) != 0, transB = n.Int("transB", 0) != 0;

        // Linear's own form (what the exporter writes for a Linear layer, and torch.onnx for nn.Linear): A [M, K],
        // B [N, K] read transposed, C [N], alpha = beta = 1. The engine's Linear runs it: the layer's arithmetic and
        // rounding (the general Gemm accumulates the product onto the broadcast C instead of adding C last).
        bool IsLinear(Tensor<T>?[] x) => transB && !transA && alpha == 1 && beta == 1 &&
                                         Optional(x, 2) is { Rank: 1 } c && c.Shape[0] == x[1]!.Shape[0];

        return new(
            s =>
            {
                int[] a = Rank(n, s[0]!, 2, "A"), b = Rank(n, s[1]!, 2, "B");
                int m = transA ? a[1] : a[0], k = transA ? a[0] : a[1];
                int kB = transB ? b[1] : b[0], columns = transB ? b[0] : b[1];
                if (k >= 0 && kB >= 0 && k != kB)
                    throw n.Invalid($"A {Format(a)} (transA = {(transA ? 1 : 0)}) and B {Format(b)} (transB = " +
                                    $"{(transB ? 1 : 0)}) do not multiply: inner extents {k} and {kB}.");
                int[] y = [m, columns];
                if (Optional(s, 2) is { } c && !Broadcast(n, y, c).SequenceEqual(y))
                    throw n.Invalid($"C {Format(c)} does not broadcast to the product's shape {Format(y)}.");
                return [y];
            },
            (x, _) => [IsLinear(x)
                ? x[0]!.Linear(x[1]!, x[2])
                : Tensor<T>.Gemm(x[0]!, x[1]!, Optional(x, 2), alpha, beta, transA, transB)]);
    }

    private static OnnxOp<T> MatMul(OnnxNode n)
    {
        n.Arity(2, 2);
        n.Attributes();
        return new(
            s =>
            {
                int[] a = s[0]!, b = s[1]!;
                if (a.Length != 2 || b.Length != 2)
                    throw n.Unsupported($"inputs A {Format(a)} and B {Format(b)} (MatMul of 2-D matrices only)");
                if (a[1] >= 0 && b[0] >= 0 && a[1] != b[0])
                    throw n.Invalid($"A {Format(a)} and B {Format(b)} do not multiply: inner extents {a[1]} and {b[0]}.");
                return [[a[0], b[1]]];
            },
            (x, _) => [Tensor<T>.MatMul(x[0]!, x[1]!)]);
    }

    // ---- shape and data movement ----

    private static OnnxOp<T> Flatten(OnnxNode n)
    {
        n.Arity(1, 1);
        n.Attributes("axis");
        long axis = n.Int("axis", 1);
        int[] Target(int[] x)
        {
            if (axis < -x.Length || axis > x.Length)
                throw n.Invalid($"axis = {axis} is outside [-{x.Length}, {x.Length}] for input {Format(x)}.");
            int split = (int)(axis < 0 ? axis + x.Length : axis);
            return [Product(x[..split]), Product(x[split..])];
        }
        return new(s => [Target(s[0]!)], (x, _) => [x[0]!.Reshape(Target(x[0]!.Shape.ToArray()))]);
    }

    /// <summary>Reshape to a constant shape: 0 copies the input's extent (unless allowzero), −1 is inferred.</summary>
    private static OnnxOp<T> Reshape(OnnxNode n)
    {
        n.Arity(2, 2);
        n.Attributes(n.Opset >= 14 ? ["allowzero"] : []);
        bool allowZero = n.Int("allowzero", 0) != 0;
        long[] shape = n.ConstantInts(1, "shape")!;
        if (shape.Count(d => d == -1) > 1) throw n.Invalid($"shape [{string.Join(", ", shape)}] infers more than one extent.");
        if (shape.Any(d => d < -1 || d > int.MaxValue)) throw n.Invalid($"shape [{string.Join(", ", shape)}] holds an invalid extent.");
        if (allowZero && shape.Contains(0) && shape.Contains(-1))
            throw n.Invalid($"shape [{string.Join(", ", shape)}] with allowzero = 1 holds both 0 and -1.");
        int[] Target(int[] x)
        {
            var y = new int[shape.Length];
            for (int i = 0; i < y.Length; i++)
            {
                if (shape[i] == 0 && !allowZero && i >= x.Length)
                    throw n.Invalid($"shape [{string.Join(", ", shape)}] copies extent {i} of input {Format(x)}, which has none.");
                y[i] = shape[i] == 0 && !allowZero ? x[i] : (int)shape[i];
            }
            int total = Product(x), known = Product(y.Where(d => d != -1).ToArray());
            int inferred = Array.IndexOf(y, -1);
            if (total < 0 || known < 0) { if (inferred >= 0) y[inferred] = -1; return y; }
            if (inferred >= 0 && known > 0 && total % known == 0) y[inferred] = total / known;
            else if (inferred >= 0 && known == 0 && total == 0) y[inferred] = 0;
            if ((inferred >= 0 && y[inferred] == -1) || Product(y) != total)
                throw n.Invalid($"input {Format(x)} ({total} elements) cannot take shape [{string.Join(", ", shape)}].");
            return y;
        }
        return new(s => [Target(s[0]!)], (x, _) => [x[0]!.Reshape(Target(x[0]!.Shape.ToArray()))], 1);
    }

    private static OnnxOp<T> Transpose(OnnxNode n)
    {
        n.Arity(1, 1);
        n.Attributes("perm");
        long[]? perm = n.Ints("perm");
        int[] Order(int rank)
        {
            int[] order = perm?.Select(p => (int)p).ToArray() ?? Enumerable.Range(0, rank).Reverse().ToArray();
            if (order.Length != rank || order.Order().Where((p, i) => p != i).Any())
                throw n.Invalid($"perm [{string.Join(", ", order)}] is not a permutation of {rank} axes.");
            return order;
        }
        return new(
            s => [Order(s[0]!.Length).Select(a => s[0]![a]).ToArray()],
            (x, _) => [x[0]!.Permute(Order(x[0]!.Rank))]);
    }

    /// <summary>Constant-mode Pad (negative pads crop); pads and the value as inputs (opset ≥ 11) or attributes.
    /// </summary>
    private static OnnxOp<T> Pad(OnnxNode n)
    {
        bool asInputs = n.Opset >= 11;
        n.Arity(asInputs ? 2 : 1, asInputs ? 3 : 1);
        n.Attributes(asInputs ? ["mode"] : ["mode", "pads", "value"]);
        string mode = n.String("mode", "constant");
        if (mode != "constant") throw n.Unsupported($"mode '{mode}' (constant padding only)");
        long[] pads = (asInputs ? n.ConstantInts(1, "pads") : n.Ints("pads")) ?? throw n.Invalid("'pads' is required.");
        float value = asInputs ? 0 : n.Float("value", 0);
        int[] Target(int[] x)
        {
            if (pads.Length != 2 * x.Length)
                throw n.Invalid($"pads [{string.Join(", ", pads)}] must hold {2 * x.Length} values for input {Format(x)}.");
            var y = new int[x.Length];
            for (int a = 0; a < x.Length; a++)
            {
                y[a] = x[a] < 0 ? -1 : checked((int)(x[a] + pads[a] + pads[a + x.Length]));
                if (x[a] >= 0 && y[a] < 0)
                    throw n.Invalid($"pads [{string.Join(", ", pads)}] crop axis {a} of input {Format(x)} below nothing.");
            }
            return y;
        }
        return new(
            s => [Target(s[0]!)],
            (x, _) =>
            {
                var input = x[0]!;
                Target(input.Shape.ToArray());
                T fill = Optional(x, 2) is { } v ? v.Item() : T.CreateChecked(value);
                int[] before = pads[..input.Rank].Select(p => checked((int)p)).ToArray();
                int[] after = pads[input.Rank..].Select(p => checked((int)p)).ToArray();
                return [input.Pad(before, after, fill)];
            },
            1);
    }

    /// <summary>Slice with constant starts, ends, axes and steps (inputs from opset 10, attributes before).</summary>
    private static OnnxOp<T> Slice(OnnxNode n)
    {
        bool asInputs = n.Opset >= 10;
        n.Arity(asInputs ? 3 : 1, asInputs ? 5 : 1);
        n.Attributes(asInputs ? [] : ["axes", "ends", "starts"]);
        long[] starts = (asInputs ? n.ConstantInts(1, "starts") : n.Ints("starts")) ?? throw n.Invalid("'starts' is required.");
        long[] ends = (asInputs ? n.ConstantInts(2, "ends") : n.Ints("ends")) ?? throw n.Invalid("'ends' is required.");
        long[]? axesGiven = asInputs ? n.ConstantInts(3, "axes") : n.Ints("axes");
        long[] steps = (asInputs ? n.ConstantInts(4, "steps") : null) ?? starts.Select(_ => 1L).ToArray();
        if (ends.Length != starts.Length || steps.Length != starts.Length || (axesGiven?.Length ?? starts.Length) != starts.Length)
            throw n.Invalid("starts, ends, axes and steps must have the same length.");
        if (steps.Contains(0)) throw n.Invalid("a step of 0.");

        // Per axis: the first index read, the step and the count (the output's extent).
        (int[] Starts, int[] Steps) Resolve(int[] x, out int[] shape)
        {
            int[] origins = new int[x.Length], strides = Enumerable.Repeat(1, x.Length).ToArray();
            shape = (int[])x.Clone();
            var seen = new HashSet<int>();
            for (int i = 0; i < starts.Length; i++)
            {
                long given = axesGiven?[i] ?? i;
                if (given < -x.Length || given >= x.Length || !seen.Add((int)(given < 0 ? given + x.Length : given)))
                    throw n.Invalid($"axis {given} is outside the input {Format(x)} or repeated.");
                int a = (int)(given < 0 ? given + x.Length : given);
                long dim = x[a], step = steps[i];
                if (dim < 0) { shape[a] = -1; continue; }
                long start = starts[i] < 0 ? starts[i] + dim : starts[i], end = ends[i] < 0 ? ends[i] + dim : ends[i];
                start = step > 0 ? Math.Clamp(start, 0, dim) : Math.Clamp(start, 0, dim - 1);
                end = step > 0 ? Math.Clamp(end, 0, dim) : Math.Clamp(end, -1, dim - 1);
                long count = step > 0 ? (end - start + step - 1) / step : (start - end - step - 1) / -step;
                shape[a] = (int)Math.Max(0, count);
                (origins[a], strides[a]) = ((int)start, (int)Math.Clamp(step, -int.MaxValue, int.MaxValue));
            }
            return (origins, strides);
        }
        return new(
            s => { Resolve(s[0]!, out var shape); return [shape]; },
            (x, _) =>
            {
                var (first, step) = Resolve(x[0]!.Shape.ToArray(), out var shape);
                return [x[0]!.Slice(first, step, shape)];
            },
            1, 2, 3, 4);
    }

    // ---- helpers ----

    /// <summary>Input <paramref name="i"/>, or null when the node lists fewer inputs.</summary>
    private static TValue? Optional<TValue>(TValue?[] inputs, int i) where TValue : class =>
        i < inputs.Length ? inputs[i] : null;

    /// <summary>The NumPy broadcast of two shapes (−1 where an unknown extent decides).</summary>
    private static int[] Broadcast(OnnxNode n, int[] a, int[] b)
    {
        var y = new int[Math.Max(a.Length, b.Length)];
        for (int i = 1; i <= y.Length; i++)
        {
            int da = i <= a.Length ? a[^i] : 1, db = i <= b.Length ? b[^i] : 1;
            if (da >= 0 && db >= 0 && da != db && da != 1 && db != 1)
                throw n.Invalid($"shapes {Format(a)} and {Format(b)} do not broadcast.");
            y[^i] = da == 1 ? db : db == 1 ? da : Math.Max(da, db) >= 0 && da >= 0 && db >= 0 ? da : -1;
        }
        return y;
    }

    private static int[] Rank(OnnxNode n, int[] shape, int rank, string role) =>
        shape.Length == rank ? shape
        : rank == 4 ? throw n.Unsupported($"{role} {Format(shape)} (2-D images, [N, C, H, W], only)")
        : throw n.Invalid($"{role} {Format(shape)} must have rank {rank}.");

    /// <summary>Product of the extents, −1 when one is unknown.</summary>
    private static int Product(int[] dims) => dims.Any(d => d < 0) ? -1 : dims.Aggregate(1, (p, d) => checked(p * d));

    /// <summary>A shape for a message, "?" for an unknown extent.</summary>
    internal static string Format(int[]? shape) =>
        shape is null ? "[?]" : "[" + string.Join(", ", shape.Select(d => d < 0 ? "?" : d.ToString())) + "]";

    /// <summary>Kernel, strides, dilations, pads and auto_pad of a 2-D Conv or pooling node.</summary>
    private sealed record Window(string AutoPad, long[]? Kernel, long[] Strides, long[] Dilations, long[]? Pads, bool CeilMode)
    {
        public static Window Read(OnnxNode n)
        {
            string autoPad = n.String("auto_pad", "NOTSET");
            if (autoPad is not ("NOTSET" or "SAME_UPPER" or "SAME_LOWER" or "VALID"))
                throw n.Invalid($"auto_pad '{autoPad}' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID.");
            long[]? kernel = n.Ints("kernel_shape"), pads = n.Ints("pads");
            long[] strides = n.Ints("strides") ?? [1, 1], dilations = n.Ints("dilations") ?? [1, 1];
            if (kernel is { Length: not 2 } || strides.Length != 2 || dilations.Length != 2 || pads is { Length: not 4 })
                throw n.Unsupported("a window over other than 2 spatial axes (2-D only)");
            if (strides.Any(s => s < 1) || dilations.Any(d => d < 1) || kernel?.Any(k => k < 1) == true || pads?.Any(p => p < 0) == true)
                throw n.Invalid("kernel_shape, strides and dilations must be at least 1 and pads not negative.");
            if (pads is not null && autoPad != "NOTSET")
                throw n.Invalid($"pads are given with auto_pad '{autoPad}'.");
            return new Window(autoPad, kernel, strides, dilations, pads, n.Int("ceil_mode", 0) != 0);
        }

        /// <summary>Per-side pads [top, left, bottom, right] (empty when an extent is unknown) and the output
        /// extents for input extents <paramref name="input"/> and kernel extents <paramref name="kernel"/>.</summary>
        public (int[] Pads, int[] Output) Resolve(OnnxNode n, int[] input, int[] kernel)
        {
            if (input.Any(d => d < 0) || kernel.Any(d => d < 0)) return ([], [-1, -1]);
            var pads = new int[4];
            var output = new int[2];
            for (int a = 0; a < 2; a++)
            {
                int stride = (int)Strides[a], span = (kernel[a] - 1) * (int)Dilations[a] + 1;
                if (AutoPad is "SAME_UPPER" or "SAME_LOWER")
                {
                    int total = Math.Max(0, ((input[a] + stride - 1) / stride - 1) * stride + span - input[a]);
                    int small = total / 2;
                    (pads[a], pads[a + 2]) = AutoPad == "SAME_UPPER" ? (small, total - small) : (total - small, small);
                }
                else if (AutoPad == "NOTSET" && Pads is not null)
                {
                    (pads[a], pads[a + 2]) = ((int)Pads[a], (int)Pads[a + 2]);
                }
                int room = input[a] + pads[a] + pads[a + 2] - span;
                if (room < 0)
                    throw n.Invalid($"the window ({span} wide with dilation) is larger than the padded input " +
                                    $"({input[a] + pads[a] + pads[a + 2]}) along spatial axis {a}.");
                output[a] = (CeilMode ? (room + stride - 1) / stride : room / stride) + 1;
                if (CeilMode && (output[a] - 1) * stride >= input[a] + pads[a]) output[a]--;
            }
            return (pads, output);
        }
    }
}
