// Adam's and AdamW's hyper-parameters (validated on the host) and the per-step coefficients that both backends'
// kernels use, computed once in float64:
//   step size   lr / (1 − beta1^t)
//   denominator √v / √(1 − beta2^t) + eps     (v, or its running maximum with AMSGrad)
using System.Numerics;

namespace Engine.Kernels;

/// <summary>One Adam step's hyper-parameters, with PyTorch's semantics (torch.optim.Adam, and torch.optim.AdamW when
/// <paramref name="DecoupledWeightDecay"/> is set).</summary>
/// <param name="LearningRate">lr ≥ 0, finite.</param>
/// <param name="Beta1">Decay of the first moment, in [0, 1).</param>
/// <param name="Beta2">Decay of the second moment, in [0, 1).</param>
/// <param name="Epsilon">Added to the denominator, &gt; 0 and finite.</param>
/// <param name="WeightDecay">≥ 0: an L2 term added to the gradient (Adam), or param ·= 1 − lr·wd (AdamW).</param>
/// <param name="Amsgrad">Divide by the running maximum of the second moment instead of the moment itself.</param>
/// <param name="DecoupledWeightDecay">AdamW's decoupled weight decay instead of Adam's L2 term.</param>
public readonly record struct AdamParameters(double LearningRate, double Beta1 = 0.9, double Beta2 = 0.999,
    double Epsilon = 1e-8, double WeightDecay = 0, bool Amsgrad = false, bool DecoupledWeightDecay = false)
{
    /// <summary>Returns the parameters, or throws an <see cref="ArgumentOutOfRangeException"/> naming the first
    /// hyper-parameter out of range.</summary>
    public AdamParameters Validated()
    {
        string optimizer = DecoupledWeightDecay ? "AdamW" : "Adam";
        if (!(LearningRate >= 0) || !double.IsFinite(LearningRate))
            throw new ArgumentOutOfRangeException("learningRate",
                $"{optimizer}: the learning rate must be finite and ≥ 0, got {LearningRate}.");
        if (!(Beta1 is >= 0 and < 1))
            throw new ArgumentOutOfRangeException("beta1", $"{optimizer}: beta1 must lie in [0, 1), got {Beta1}.");
        if (!(Beta2 is >= 0 and < 1))
            throw new ArgumentOutOfRangeException("beta2", $"{optimizer}: beta2 must lie in [0, 1), got {Beta2}.");
        if (!(Epsilon > 0) || !double.IsFinite(Epsilon))
            throw new ArgumentOutOfRangeException("epsilon",
                $"{optimizer}: epsilon must be finite and > 0, got {Epsilon}.");
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay))
            throw new ArgumentOutOfRangeException("weightDecay",
                $"{optimizer}: the weight decay must be finite and ≥ 0, got {WeightDecay}.");
        return this;
    }
}

/// <summary>The coefficients of Adam step <c>step</c> (1-based) in the element type, computed on the host in
/// float64 as PyTorch's single-tensor Adam does, for the kernels of every backend.</summary>
public readonly struct AdamCoefficients<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Computes the coefficients of step <paramref name="step"/> (≥ 1) of validated parameters.</summary>
    public AdamCoefficients(AdamParameters p, int step)
    {
        if (step < 1)
            throw new ArgumentOutOfRangeException(nameof(step), $"Adam: the step count starts at 1, got {step}.");
        StepSize = T.CreateChecked(p.LearningRate / (1 - Math.Pow(p.Beta1, step)));
        BiasCorrection2Sqrt = T.CreateChecked(Math.Sqrt(1 - Math.Pow(p.Beta2, step)));
        OneMinusBeta1 = T.CreateChecked(1 - p.Beta1);
        Beta2 = T.CreateChecked(p.Beta2);
        OneMinusBeta2 = T.CreateChecked(1 - p.Beta2);
        Epsilon = T.CreateChecked(p.Epsilon);
        GradientDecay = T.CreateChecked(p.DecoupledWeightDecay ? 0 : p.WeightDecay);
        ParameterScale = T.CreateChecked(p.DecoupledWeightDecay ? 1 - p.LearningRate * p.WeightDecay : 1);
        Amsgrad = p.Amsgrad ? 1 : 0;
    }

    /// <summary>lr / (1 − beta1^step).</summary>
    public readonly T StepSize;

    /// <summary>√(1 − beta2^step).</summary>
    public readonly T BiasCorrection2Sqrt;

    /// <summary>1 − beta1, the weight of the gradient in the first moment.</summary>
    public readonly T OneMinusBeta1;

    /// <summary>beta2, the decay of the second moment.</summary>
    public readonly T Beta2;

    /// <summary>1 − beta2, the weight of the squared gradient in the second moment.</summary>
    public readonly T OneMinusBeta2;

    /// <summary>eps, added to the denominator.</summary>
    public readonly T Epsilon;

    /// <summary>Adam's L2 weight decay, added to the gradient as wd·param (0 for AdamW).</summary>
    public readonly T GradientDecay;

    /// <summary>AdamW's decoupled decay, param ·= 1 − lr·wd before the update (1 for Adam).</summary>
    public readonly T ParameterScale;

    /// <summary>1 when the denominator uses the running maximum of the second moment (AMSGrad), else 0.</summary>
    public readonly int Amsgrad;
}
