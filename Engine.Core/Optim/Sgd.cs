// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay — torch.optim.SGD's
// semantics (see Engine.Kernels' SgdStep). The learning rate can be changed between steps (schedules).
using System.Numerics;
using Engine.Kernels;

namespace Engine.Core.Optim;

public sealed class Sgd<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>[] _parameters;
    private readonly Tensor<T>?[] _momentumBuffers;

    public Sgd(IEnumerable<Tensor<T>> parameters, double learningRate, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false)
    {
        _parameters = parameters.ToArray();
        for (int i = 0; i < _parameters.Length; i++)
            if (!_parameters[i].IsLeaf || !_parameters[i].RequiresGrad)
                throw new ArgumentException($"SGD: parameter {i} ({_parameters[i].Shape}) is not a leaf that requires grad.");
        Hyper = new SgdParameters(learningRate, momentum, dampening, weightDecay, nesterov).Validated();
        _momentumBuffers = new Tensor<T>?[_parameters.Length];
    }

    public SgdParameters Hyper { get; private set; }

    public double LearningRate
    {
        get => Hyper.LearningRate;
        set => Hyper = (Hyper with { LearningRate = value }).Validated();
    }

    /// <summary>Updates every parameter that has a gradient; parameters without one are skipped (as PyTorch).</summary>
    public void Step()
    {
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (p.Grad is null) continue;
            bool first = false;
            if (Hyper.Momentum != 0 && _momentumBuffers[i] is null)
            {
                _momentumBuffers[i] = Tensor.Unscoped<T>(p.Shape, p.Device);
                first = true;
            }
            p.Device.Backend.SgdStep(Hyper, p.Buffer, p.Grad.Buffer, _momentumBuffers[i]?.Buffer, first);
        }
    }

    /// <summary>The momentum buffers named "momentum.&lt;parameter name&gt;" for checkpoints. Buffers not created yet
    /// are created (zero) so that a checkpoint can be loaded into them; loaded buffers continue as after a step.</summary>
    public IEnumerable<(string Name, Tensor<T> Tensor)> State(IReadOnlyList<string> parameterNames)
    {
        if (parameterNames.Count != _parameters.Length)
            throw new ArgumentException($"SGD state: {parameterNames.Count} names for {_parameters.Length} parameters.");
        if (Hyper.Momentum == 0) yield break;
        for (int i = 0; i < _parameters.Length; i++)
        {
            _momentumBuffers[i] ??= Tensor.Unscoped<T>(_parameters[i].Shape, _parameters[i].Device).Fill(T.Zero);
            yield return ("momentum." + parameterNames[i], _momentumBuffers[i]!);
        }
    }

    /// <summary>Drops every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters) p.ZeroGrad();
    }

    public void Dispose()
    {
        foreach (var buffer in _momentumBuffers) buffer?.Dispose();
    }
}
