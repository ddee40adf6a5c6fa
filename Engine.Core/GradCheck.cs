// GradCheck: checks a function's backward against central finite differences in float64.
//
// The function's output y is reduced to a scalar L = Σ wᵢ yᵢ with fixed random weights w, so one backward (with
// output gradient w) gives the analytic ∂L/∂x for every input x; the numeric side perturbs inputs by ±ε:
//   Full mode — every element of every input: (L(x + εeᵢ) − L(x − εeᵢ)) / 2ε against the analytic ∂L/∂xᵢ.
//     Two forward passes per element: for small inputs.
//   Fast mode — random unit directions v over all inputs at once: (L(x + εv) − L(x − εv)) / 2ε against
//     Σ ∂L/∂x · v (PyTorch's fast gradcheck idea), two forward passes per direction: for whole networks.
// An element passes when |analytic − numeric| ≤ atol + rtol·|numeric| (PyTorch's defaults: ε 1e-6, atol 1e-5,
// rtol 1e-3). Backward also runs twice and must give identical bits.
//
//     var result = GradCheck.Run(() => block.Forward(x), [x, ..block.Parameters()]);
//     result.EnsurePassed();
using Engine.Core.Autograd;

namespace Engine.Core;

/// <summary>How <see cref="GradCheck.Run"/> probes the function numerically.</summary>
public enum GradCheckMode
{
    /// <summary>Every element of every input.</summary>
    Full,

    /// <summary>Random directional derivatives over all inputs together.</summary>
    Fast,
}

/// <summary>Settings of <see cref="GradCheck.Run"/>; the defaults are PyTorch gradcheck's (ε 1e-6, atol 1e-5,
/// rtol 1e-3). A comparison passes when |analytic − numeric| ≤ atol + rtol·|numeric|.</summary>
public sealed record GradCheckOptions
{
    /// <summary>Element by element (<see cref="GradCheckMode.Full"/>, the default) or random directions.</summary>
    public GradCheckMode Mode { get; init; } = GradCheckMode.Full;
    /// <summary>Step ε of the central differences (L(x + ε) − L(x − ε)) / 2ε.</summary>
    public double Epsilon { get; init; } = 1e-6;
    /// <summary>atol: the error allowed whatever the size of the numeric value.</summary>
    public double AbsoluteTolerance { get; init; } = 1e-5;
    /// <summary>rtol: the error allowed per unit of |numeric|.</summary>
    public double RelativeTolerance { get; init; } = 1e-3;

    /// <summary>Random directions in fast mode.</summary>
    public int Directions { get; init; } = 8;

    /// <summary>Seeds the output weights and the fast-mode directions.</summary>
    public int Seed { get; init; } = 20151210;

    /// <summary>Names of the inputs for the report (default "input 0", "input 1", …).</summary>
    public IReadOnlyList<string>? InputNames { get; init; }
}

/// <summary>The outcome of <see cref="GradCheck.Run"/>; <see cref="ToString"/> is a one-line report.</summary>
/// <param name="Passed">True when every comparison was within tolerance and the backward was deterministic.</param>
/// <param name="Mode">The mode the check ran in.</param>
/// <param name="Comparisons">Analytic-numeric pairs compared: elements in full mode, directions in fast mode.</param>
/// <param name="MaxAbsoluteError">Largest |analytic − numeric| over all comparisons.</param>
/// <param name="MaxRelativeError">Largest |analytic − numeric| / |numeric| over comparisons with a non-zero
/// error.</param>
/// <param name="WorstLocation">Where the error was largest relative to its tolerance, e.g. <c>input 1 element
/// 7</c> or <c>random direction 3</c>; <c>nowhere</c> if nothing was compared.</param>
/// <param name="WorstAnalytic">The backward's value at <paramref name="WorstLocation"/>.</param>
/// <param name="WorstNumeric">The finite-difference value at <paramref name="WorstLocation"/>.</param>
/// <param name="BackwardDeterministic">True when two backward passes gave bit-identical gradients.</param>
public sealed record GradCheckResult(
    bool Passed,
    GradCheckMode Mode,
    int Comparisons,
    double MaxAbsoluteError,
    double MaxRelativeError,
    string WorstLocation,
    double WorstAnalytic,
    double WorstNumeric,
    bool BackwardDeterministic)
{
    /// <summary>One line: passed or FAILED, the mode, the count, the largest errors and the worst comparison (plus
    /// a note when the backward is not deterministic).</summary>
    public override string ToString() =>
        $"gradient check {(Passed ? "passed" : "FAILED")} ({Mode}, {Comparisons} comparisons): " +
        $"max abs error {MaxAbsoluteError:E2}, max rel error {MaxRelativeError:E2}; worst at {WorstLocation}: " +
        $"analytic {WorstAnalytic:G10}, numeric {WorstNumeric:G10}" +
        (BackwardDeterministic ? "" : "; backward is not deterministic (two runs differ)");

    /// <summary>Throws <see cref="GradCheckException"/> with this report unless the check passed.</summary>
    public GradCheckResult EnsurePassed() => Passed ? this : throw new GradCheckException(this);
}

/// <summary>Thrown by <see cref="GradCheckResult.EnsurePassed"/> when a gradient check failed; the message is
/// the result's one-line report.</summary>
/// <param name="result">The failed check.</param>
public sealed class GradCheckException(GradCheckResult result) : Exception(result.ToString())
{
    /// <summary>The failed check, with its worst comparison.</summary>
    public GradCheckResult Result { get; } = result;
}

/// <summary>Checks a function's backward against central finite differences in float64, as
/// torch.autograd.gradcheck (full mode) or its fast mode (random directions).</summary>
public static class GradCheck
{
    /// <summary>
    /// Checks the gradients of <paramref name="function"/> with respect to each of <paramref name="inputs"/>
    /// (leaf float64 tensors that require grad: data inputs and parameters alike). The function must read the
    /// inputs afresh on every call; it is called many times. Clears the inputs' Grad and leaves their values as
    /// they were.
    /// </summary>
    /// <returns>The report; call <see cref="GradCheckResult.EnsurePassed"/> to throw on failure.</returns>
    /// <exception cref="ArgumentException">No inputs; an input is not a leaf that requires grad; the output does not
    /// depend on any input.</exception>
    public static GradCheckResult Run(Func<Tensor<double>> function, IReadOnlyList<Tensor<double>> inputs,
        GradCheckOptions? options = null)
    {
        options ??= new GradCheckOptions();
        ArgumentNullException.ThrowIfNull(function);
        if (inputs.Count == 0) throw new ArgumentException("GradCheck: no inputs to check.", nameof(inputs));
        string Name(int k) => options.InputNames is { } names && k < names.Count ? names[k] : $"input {k}";
        for (int k = 0; k < inputs.Count; k++)
            if (!inputs[k].IsLeaf || !inputs[k].RequiresGrad)
                throw new ArgumentException(
                    $"GradCheck: {Name(k)} ({inputs[k].Shape}) must be a leaf tensor with RequiresGrad = true.");

        var random = new DeterministicRandom((long)RandomStream.GradCheck, options.Seed);
        double[] weights = OutputWeights(function, ref random);
        double[][] analytic = AnalyticGradients(function, inputs, weights);
        bool deterministic = analytic.Zip(AnalyticGradients(function, inputs, weights))
            .All(pair => pair.First.AsSpan().SequenceEqual(pair.Second));

        var tally = new Tally(options);
        double[][] data = inputs.Select(x => x.ToArray()).ToArray();
        double eps = options.Epsilon;
        if (options.Mode == GradCheckMode.Full)
        {
            for (int k = 0; k < inputs.Count; k++)
                for (int i = 0; i < data[k].Length; i++)
                {
                    double original = data[k][i];
                    data[k][i] = original + eps;
                    double plus = Evaluate(function, inputs[k], data[k], weights);
                    data[k][i] = original - eps;
                    double minus = Evaluate(function, inputs[k], data[k], weights);
                    data[k][i] = original;
                    tally.Compare(analytic[k][i], (plus - minus) / (2 * eps), $"{Name(k)} element {i}");
                }
            Upload(inputs, data);
        }
        else
        {
            for (int d = 0; d < options.Directions; d++)
            {
                double[][] direction = UnitDirection(data, ref random);
                double plus = EvaluateShifted(function, inputs, data, direction, eps, weights);
                double minus = EvaluateShifted(function, inputs, data, direction, -eps, weights);
                double directional = 0;
                for (int k = 0; k < inputs.Count; k++)
                    for (int i = 0; i < data[k].Length; i++)
                        directional += analytic[k][i] * direction[k][i];
                tally.Compare(directional, (plus - minus) / (2 * eps), $"random direction {d}");
            }
            Upload(inputs, data);
        }

        return new GradCheckResult(tally.Passed && deterministic, options.Mode, tally.Count, tally.MaxAbs,
            tally.MaxRel, tally.WorstLocation, tally.WorstAnalytic, tally.WorstNumeric, deterministic);
    }

    /// <summary>Random weights in ±[0.5, 1.5) for each output element, so no output is left unchecked.</summary>
    private static double[] OutputWeights(Func<Tensor<double>> function, ref DeterministicRandom random)
    {
        using var scope = TensorScope.Begin();
        using var noGrad = GradMode.NoGrad();
        var weights = new double[checked((int)function().Length)];
        for (int i = 0; i < weights.Length; i++)
            weights[i] = (random.NextBool() ? -1 : 1) * (0.5 + random.NextDouble());
        return weights;
    }

    private static double[][] AnalyticGradients(Func<Tensor<double>> function, IReadOnlyList<Tensor<double>> inputs,
        double[] weights)
    {
        foreach (var input in inputs) input.ZeroGrad();
        using (TensorScope.Begin())
        {
            var y = function();
            if (!y.RequiresGrad)
                throw new ArgumentException("GradCheck: the function's output does not depend on any input.");
            y.Backward(Tensor.FromArray(weights, y.Shape, y.Device));
        }
        var result = inputs.Select(x => x.Grad?.ToArray() ?? new double[x.Length]).ToArray();
        foreach (var input in inputs) input.ZeroGrad();
        return result;
    }

    private static double Evaluate(Func<Tensor<double>> function, Tensor<double> input, double[] data,
        double[] weights)
    {
        using var noGrad = GradMode.NoGrad();
        input.CopyFrom(data);
        return WeightedOutput(function, weights);
    }

    private static double EvaluateShifted(Func<Tensor<double>> function, IReadOnlyList<Tensor<double>> inputs,
        double[][] data, double[][] direction, double step, double[] weights)
    {
        using var noGrad = GradMode.NoGrad();
        for (int k = 0; k < inputs.Count; k++)
            inputs[k].CopyFrom(data[k].Select((x, i) => x + step * direction[k][i]).ToArray());
        return WeightedOutput(function, weights);
    }

    private static double WeightedOutput(Func<Tensor<double>> function, double[] weights)
    {
        using var scope = TensorScope.Begin();
        double[] y = function().ToArray();
        double sum = 0;
        for (int i = 0; i < y.Length; i++) sum += weights[i] * y[i];
        return sum;
    }

    private static void Upload(IReadOnlyList<Tensor<double>> inputs, double[][] data)
    {
        using var noGrad = GradMode.NoGrad();
        for (int k = 0; k < inputs.Count; k++) inputs[k].CopyFrom(data[k]);
    }

    /// <summary>A random direction of unit length over all inputs together (as PyTorch's fast mode), so the
    /// ±ε step moves the whole network by ε and rarely crosses a ReLU kink.</summary>
    private static double[][] UnitDirection(double[][] data, ref DeterministicRandom random)
    {
        var direction = new double[data.Length][];
        for (int k = 0; k < data.Length; k++)
        {
            direction[k] = new double[data[k].Length];
            for (int i = 0; i < direction[k].Length; i++) direction[k][i] = random.NextNormal();
        }
        double norm = Math.Sqrt(direction.Sum(d => d.Sum(v => v * v)));
        foreach (var d in direction)
            for (int i = 0; i < d.Length; i++) d[i] /= norm;
        return direction;
    }

    /// <summary>Running comparison of analytic against numeric values.</summary>
    private sealed class Tally(GradCheckOptions options)
    {
        private double _worstRatio = -1;
        public int Count { get; private set; }
        public bool Passed { get; private set; } = true;
        public double MaxAbs { get; private set; }
        public double MaxRel { get; private set; }
        public string WorstLocation { get; private set; } = "nowhere";
        public double WorstAnalytic { get; private set; }
        public double WorstNumeric { get; private set; }

        public void Compare(double analytic, double numeric, string location)
        {
            Count++;
            double error = Math.Abs(analytic - numeric);
            double allowed = options.AbsoluteTolerance + options.RelativeTolerance * Math.Abs(numeric);
            double relative = error / Math.Max(Math.Abs(numeric), 1e-300);
            if (double.IsNaN(error) || error > allowed) Passed = false;
            MaxAbs = Math.Max(MaxAbs, error);
            if (error > 0) MaxRel = Math.Max(MaxRel, relative);
            double ratio = double.IsNaN(error) ? double.PositiveInfinity : error / allowed;
            if (ratio <= _worstRatio) return;
            _worstRatio = ratio;
            WorstLocation = location;
            WorstAnalytic = analytic;
            WorstNumeric = numeric;
        }
    }
}
