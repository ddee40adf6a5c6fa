// The optimizer abstraction that SGD, Adam and AdamW share: a fixed list of leaf parameters, a step that updates
// every parameter holding a gradient (those without one are skipped, as in PyTorch), a learning rate that
// schedules change between steps, and the per-parameter state as named tensors for checkpoints.
using System.Numerics;

namespace Engine.Core.Optim;

/// <summary>Updates a fixed list of parameters from their gradients.</summary>
public abstract class Optimizer<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Tensor<T>[] _parameters;
    private readonly List<Tensor<T>> _ownedState = [];

    /// <summary>Takes the parameters; each must be a leaf that requires grad.</summary>
    /// <param name="name">The optimizer's name, for messages.</param>
    /// <param name="parameters">The parameters to update.</param>
    protected Optimizer(string name, IEnumerable<Tensor<T>> parameters)
    {
        Name = name;
        _parameters = parameters.ToArray();
        for (int i = 0; i < _parameters.Length; i++)
            if (!_parameters[i].IsLeaf || !_parameters[i].RequiresGrad)
                throw new ArgumentException(
                    $"{name}: parameter {i} ({_parameters[i].Shape}) is not a leaf that requires grad.", nameof(parameters));
    }

    /// <summary>The optimizer's name ("SGD", "Adam", "AdamW").</summary>
    public string Name { get; }

    /// <summary>The parameters, in the order given.</summary>
    protected IReadOnlyList<Tensor<T>> Parameters => _parameters;

    /// <summary>The learning rate of the next steps; schedules set it between steps. Validated like the other
    /// hyper-parameters.</summary>
    public abstract double LearningRate { get; set; }

    /// <summary>Updates every parameter that has a gradient; parameters without one are skipped (as PyTorch).</summary>
    /// <exception cref="ObjectDisposedException">A parameter has been disposed (checked for all before any is
    /// updated); the message names its position and shape.</exception>
    public void Step()
    {
        for (int i = 0; i < _parameters.Length; i++)
            if (_parameters[i].IsDisposed)
                throw new ObjectDisposedException($"{Name} parameter {i}",
                    $"{Name}: parameter {i} ({_parameters[i].Shape}) has been disposed; an optimizer needs its " +
                    "parameters alive for as long as it steps.");
        var withGradient = new List<int>(_parameters.Length);
        for (int i = 0; i < _parameters.Length; i++)
            if (_parameters[i].Grad is not null)
                withGradient.Add(i);
        Update(withGradient);
    }

    /// <summary>Updates the parameters at <paramref name="indices"/> (in order, each holding a gradient) from their
    /// gradients.</summary>
    protected abstract void Update(IReadOnlyList<int> indices);

    /// <summary>The optimizer's state as named tensors for checkpoints, "&lt;kind&gt;.&lt;parameter name&gt;". State
    /// not created yet is created, so that a checkpoint can be loaded into it; the tensors may be read (saved) or
    /// overwritten (loaded) until the next step, which continues from them.</summary>
    public IEnumerable<(string Name, Tensor<T> Tensor)> State(IReadOnlyList<string> parameterNames)
    {
        if (parameterNames.Count != _parameters.Length)
            throw new ArgumentException(
                $"{Name} state: {parameterNames.Count} names for {_parameters.Length} parameters.", nameof(parameterNames));
        return NamedState(parameterNames);
    }

    /// <summary>The state tensors, named after <paramref name="parameterNames"/> (one per parameter).</summary>
    protected abstract IEnumerable<(string Name, Tensor<T> Tensor)> NamedState(IReadOnlyList<string> parameterNames);

    /// <summary>A new state tensor of <paramref name="shape"/> on <paramref name="device"/>, filled with zeros,
    /// released with the optimizer.</summary>
    protected Tensor<T> NewState(Shape shape, Device device)
    {
        var tensor = Tensor.Unscoped<T>(shape, device).Fill(T.Zero);
        _ownedState.Add(tensor);
        return tensor;
    }

    /// <summary>Drops every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters) p.ZeroGrad();
    }

    /// <summary>Releases the state tensors.</summary>
    public void Dispose()
    {
        foreach (var tensor in _ownedState) tensor.Dispose();
        _ownedState.Clear();
        GC.SuppressFinalize(this);
    }
}
