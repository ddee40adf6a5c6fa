// Adam and AdamW — torch.optim.Adam's and torch.optim.AdamW's semantics (see Engine.Kernels' AdamStep): bias-
// corrected first and second moments, optional AMSGrad, and weight decay either as an L2 term added to the gradient
// (Adam) or decoupled, param ·= 1 − lr·wd before the update (AdamW). As in PyTorch, each parameter counts its own
// steps (a parameter without a gradient does not advance), and its moments start at zero. All parameters of a device
// that have a gradient take their step in one AdamSteps op.
using System.Numerics;
using Engine.Kernels;

namespace Engine.Core.Optim;

/// <summary>torch.optim.Adam; with decoupled weight decay, torch.optim.AdamW (see <see cref="AdamW{T}"/>).</summary>
public class Adam<T> : Optimizer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>?[] _expAvg, _expAvgSq, _maxExpAvgSq, _stepTensors;
    private readonly int[] _steps;

    /// <summary>True where the step tensor handed out by <see cref="NamedState"/> holds the step count (it may have
    /// been loaded since): the next update reads it back.</summary>
    private readonly bool[] _stepInTensor;

    /// <summary>Adam over <paramref name="parameters"/>, PyTorch's defaults (see <see cref="AdamParameters"/>).</summary>
    public Adam(IEnumerable<Tensor<T>> parameters, double learningRate = 1e-3, double beta1 = 0.9,
        double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0, bool amsgrad = false)
        : this(parameters, new AdamParameters(learningRate, beta1, beta2, epsilon, weightDecay, amsgrad))
    {
    }

    /// <summary>Adam or AdamW (<see cref="AdamParameters.DecoupledWeightDecay"/>) over
    /// <paramref name="parameters"/>.</summary>
    protected Adam(IEnumerable<Tensor<T>> parameters, AdamParameters hyper)
        : base(hyper.DecoupledWeightDecay ? "AdamW" : "Adam", parameters)
    {
        Hyper = hyper.Validated();
        int n = Parameters.Count;
        (_expAvg, _expAvgSq, _maxExpAvgSq, _stepTensors) =
            (new Tensor<T>?[n], new Tensor<T>?[n], new Tensor<T>?[n], new Tensor<T>?[n]);
        _steps = new int[n];
        _stepInTensor = new bool[n];
    }

    /// <summary>The hyper-parameters of the next steps.</summary>
    public AdamParameters Hyper { get; private set; }

    /// <inheritdoc/>
    public override double LearningRate
    {
        get => Hyper.LearningRate;
        set => Hyper = (Hyper with { LearningRate = value }).Validated();
    }

    /// <summary>The steps parameter <paramref name="index"/> has taken.</summary>
    public int StepCount(int index)
    {
        if (_stepInTensor[index]) ReadStep(index);
        return _steps[index];
    }

    /// <inheritdoc/>
    /// <remarks>One AdamSteps op per backend over all its parameters that have a gradient (one op, unless the
    /// parameters live on several devices); each parameter advances its own step count, so has its own
    /// coefficients.</remarks>
    protected override void Update(IReadOnlyList<int> indices)
    {
        foreach (var group in indices.GroupBy(i => Parameters[i].Device))
        {
            var steps = new List<int>();
            var parameters = new List<DeviceBuffer<T>>();
            var grads = new List<DeviceBuffer<T>>();
            var expAvgs = new List<DeviceBuffer<T>>();
            var expAvgSqs = new List<DeviceBuffer<T>>();
            var maxExpAvgSqs = new List<DeviceBuffer<T>?>();
            foreach (int index in group)
            {
                var parameter = Parameters[index];
                CreateState(index);
                steps.Add(checked(StepCount(index) + 1));
                parameters.Add(parameter.Buffer);
                grads.Add(parameter.Grad!.Buffer);
                expAvgs.Add(_expAvg[index]!.Buffer);
                expAvgSqs.Add(_expAvgSq[index]!.Buffer);
                maxExpAvgSqs.Add(_maxExpAvgSq[index]?.Buffer);
            }
            group.Key.Backend.AdamSteps(Hyper, steps, parameters, grads, expAvgs, expAvgSqs, maxExpAvgSqs);
            int k = 0;
            foreach (int index in group) _steps[index] = steps[k++];
        }
    }

    /// <summary>"exp_avg.&lt;name&gt;", "exp_avg_sq.&lt;name&gt;", with AMSGrad "max_exp_avg_sq.&lt;name&gt;", and
    /// "step.&lt;name&gt;" (the parameter's step count, a scalar) for every parameter.</summary>
    protected override IEnumerable<(string Name, Tensor<T> Tensor)> NamedState(IReadOnlyList<string> parameterNames)
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            CreateState(i);
            int steps = StepCount(i);
            T value = T.CreateChecked(steps);
            if (int.CreateChecked(value) != steps)
                throw new InvalidOperationException(
                    $"{Name} state: step count {steps} cannot be saved exactly as {typeof(T).Name}.");
            _stepTensors[i] ??= NewState(Shape.Scalar, Parameters[i].Device);
            _stepTensors[i]!.CopyFrom([value]);
            _stepInTensor[i] = true;
            yield return ("exp_avg." + parameterNames[i], _expAvg[i]!);
            yield return ("exp_avg_sq." + parameterNames[i], _expAvgSq[i]!);
            if (Hyper.Amsgrad) yield return ("max_exp_avg_sq." + parameterNames[i], _maxExpAvgSq[i]!);
            yield return ("step." + parameterNames[i], _stepTensors[i]!);
        }
    }

    private void CreateState(int index)
    {
        var p = Parameters[index];
        _expAvg[index] ??= NewState(p.Shape, p.Device);
        _expAvgSq[index] ??= NewState(p.Shape, p.Device);
        if (Hyper.Amsgrad) _maxExpAvgSq[index] ??= NewState(p.Shape, p.Device);
    }

    /// <summary>Takes the step count back from its tensor (a loaded checkpoint may have changed it).</summary>
    private void ReadStep(int index)
    {
        double value = double.CreateChecked(_stepTensors[index]!.ToArray()[0]);
        if (!(value >= 0 && value <= int.MaxValue && value == Math.Floor(value)))
            throw new InvalidDataException(
                $"{Name} state: the step count of parameter {index} is {value}, not a whole number of steps.");
        _steps[index] = (int)value;
        _stepInTensor[index] = false;
    }
}

/// <summary>torch.optim.AdamW: Adam with decoupled weight decay (param ·= 1 − lr·wd before each update), PyTorch's
/// defaults (weight decay 0.01).</summary>
public sealed class AdamW<T> : Adam<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>AdamW over <paramref name="parameters"/> (see <see cref="AdamParameters"/>).</summary>
    public AdamW(IEnumerable<Tensor<T>> parameters, double learningRate = 1e-3, double beta1 = 0.9,
        double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.01, bool amsgrad = false)
        : base(parameters, new AdamParameters(learningRate, beta1, beta2, epsilon, weightDecay, amsgrad,
            DecoupledWeightDecay: true))
    {
    }
}
