// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay — torch.optim.SGD's
// semantics (see Engine.Kernels' SgdStep), all parameters of a device in one SgdSteps op. The learning rate can be
// changed between steps (schedules).
using System.Numerics;
using Engine.Kernels;

namespace Engine.Core.Optim;

/// <summary>torch.optim.SGD: momentum, dampening, Nesterov and L2 weight decay.</summary>
public sealed class Sgd<T> : Optimizer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>?[] _momentumBuffers;

    /// <summary>SGD over <paramref name="parameters"/> with the given hyper-parameters (see
    /// <see cref="SgdParameters"/>).</summary>
    public Sgd(IEnumerable<Tensor<T>> parameters, double learningRate, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false) : base("SGD", parameters)
    {
        Hyper = new SgdParameters(learningRate, momentum, dampening, weightDecay, nesterov).Validated();
        _momentumBuffers = new Tensor<T>?[Parameters.Count];
    }

    /// <summary>The hyper-parameters of the next steps.</summary>
    public SgdParameters Hyper { get; private set; }

    /// <inheritdoc/>
    public override double LearningRate
    {
        get => Hyper.LearningRate;
        set => Hyper = (Hyper with { LearningRate = value }).Validated();
    }

    /// <inheritdoc/>
    /// <remarks>One SgdSteps op per backend over all its parameters (one, unless the parameters live on several
    /// devices).</remarks>
    protected override void Update(IReadOnlyList<int> indices)
    {
        foreach (var group in indices.GroupBy(i => Parameters[i].Device))
        {
            var parameters = new List<DeviceBuffer<T>>();
            var grads = new List<DeviceBuffer<T>>();
            var buffers = new List<DeviceBuffer<T>?>();
            var firstSteps = new List<bool>();
            foreach (int index in group)
            {
                var parameter = Parameters[index];
                bool first = false;
                if (Hyper.Momentum != 0 && _momentumBuffers[index] is null)
                {
                    _momentumBuffers[index] = NewState(parameter.Shape, parameter.Device);
                    first = true;
                }
                parameters.Add(parameter.Buffer);
                grads.Add(parameter.Grad!.Buffer);
                buffers.Add(_momentumBuffers[index]?.Buffer);
                firstSteps.Add(first);
            }
            group.Key.Backend.SgdSteps(Hyper, parameters, grads, buffers, firstSteps);
        }
    }

    /// <summary>The momentum buffers named "momentum.&lt;parameter name&gt;" (none without momentum); loaded buffers
    /// continue as after a step.</summary>
    protected override IEnumerable<(string Name, Tensor<T> Tensor)> NamedState(IReadOnlyList<string> parameterNames)
    {
        if (Hyper.Momentum == 0) yield break;
        for (int i = 0; i < Parameters.Count; i++)
        {
            _momentumBuffers[i] ??= NewState(Parameters[i].Shape, Parameters[i].Device);
            yield return ("momentum." + parameterNames[i], _momentumBuffers[i]!);
        }
    }
}
