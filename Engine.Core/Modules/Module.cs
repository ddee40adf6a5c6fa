// Module: a layer or network with named parameters (learned, RequiresGrad) and buffers (state such as batch-norm
// running statistics), child modules, and a training/eval mode. Names compose with dots, as in PyTorch's
// state_dict: "layer1.0.bn1.running_mean".
using System.Numerics;

namespace Engine.Core.Modules;

/// <summary>A layer or network, as torch.nn.Module: named parameters (learned leaves that require grad), named
/// buffers (state such as batch-norm running statistics), named child modules, and a training/eval mode. Names
/// compose with dots as in a PyTorch state_dict (<c>layer1.0.bn1.running_mean</c>). The module owns its
/// tensors: they live outside every <see cref="TensorScope"/> until the module is disposed.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public abstract class Module<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly List<(string Name, Tensor<T> Tensor)> _parameters = [];
    private readonly List<(string Name, Tensor<T> Tensor)> _buffers = [];
    private readonly List<(string Name, Module<T> Module)> _children = [];

    /// <summary>True in training mode (batch statistics), false in eval mode (running statistics).</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Applies the module to a batch <paramref name="x"/>; records a backward through every op it runs
    /// when grad mode is on (as torch.nn.Module.forward).</summary>
    public abstract Tensor<T> Forward(Tensor<T> x);

    /// <summary>Sets training (true) or eval (false) mode on this module and every descendant.</summary>
    public Module<T> Train(bool training = true)
    {
        Training = training;
        foreach (var (_, child) in _children) child.Train(training);
        return this;
    }

    /// <summary>Eval mode on this module and every descendant (batch norm uses its running statistics), as
    /// torch.nn.Module.eval; same as <c>Train(false)</c>.</summary>
    /// <returns>This module.</returns>
    public Module<T> Eval() => Train(false);

    /// <summary>Every parameter with its dotted name, depth-first in registration order.</summary>
    public IEnumerable<(string Name, Tensor<T> Tensor)> NamedParameters() => Walk(m => m._parameters);

    /// <summary>Every buffer with its dotted name.</summary>
    public IEnumerable<(string Name, Tensor<T> Tensor)> NamedBuffers() => Walk(m => m._buffers);

    /// <summary>Parameters then buffers: everything a checkpoint holds.</summary>
    public IEnumerable<(string Name, Tensor<T> Tensor)> StateDict() => NamedParameters().Concat(NamedBuffers());

    /// <summary>Every parameter, in <see cref="NamedParameters"/> order: what an optimiser updates.</summary>
    public IEnumerable<Tensor<T>> Parameters() => NamedParameters().Select(p => p.Tensor);

    /// <summary>The direct children with their names, in registration order (not recursive).</summary>
    public IEnumerable<(string Name, Module<T> Module)> NamedChildren() => _children;

    private IEnumerable<(string, Tensor<T>)> Walk(Func<Module<T>, List<(string, Tensor<T>)>> select, string prefix = "")
    {
        foreach (var (name, tensor) in select(this)) yield return (prefix + name, tensor);
        foreach (var (name, child) in _children)
            foreach (var item in child.Walk(select, prefix + name + "."))
                yield return item;
    }

    /// <summary>Registers a learned tensor (made a leaf that requires grad). The module owns it: it leaves any
    /// TensorScope and is disposed with the module.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty, contains a dot, or is already used.
    /// </exception>
    protected Tensor<T> Parameter(string name, Tensor<T> tensor)
    {
        CheckName(name);
        TensorScope.Release(tensor);
        tensor.RequiresGrad = true;
        _parameters.Add((name, tensor));
        return tensor;
    }

    /// <summary>Registers non-learned state saved with the model (owned like a parameter).</summary>
    protected Tensor<T> Buffer(string name, Tensor<T> tensor)
    {
        CheckName(name);
        TensorScope.Release(tensor);
        _buffers.Add((name, tensor));
        return tensor;
    }

    /// <summary>Registers a child module under <paramref name="name"/>: its entries are named
    /// <c>name.entry</c>, it follows this module's mode and is disposed with it.</summary>
    /// <returns><paramref name="module"/> itself.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty, contains a dot, or is already used by
    /// a parameter, buffer or child of this module.</exception>
    protected TModule Child<TModule>(string name, TModule module) where TModule : Module<T>
    {
        CheckName(name);
        _children.Add((name, module));
        return module;
    }

    private void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('.'))
            throw new ArgumentException($"Invalid module entry name '{name}'.");
        if (_parameters.Any(p => p.Name == name) || _buffers.Any(b => b.Name == name) ||
            _children.Any(c => c.Name == name))
            throw new ArgumentException($"Duplicate module entry name '{name}'.");
    }

    /// <summary>Disposes every parameter, buffer and child.</summary>
    public virtual void Dispose()
    {
        foreach (var (_, tensor) in _parameters) tensor.Dispose();
        foreach (var (_, tensor) in _buffers) tensor.Dispose();
        foreach (var (_, child) in _children) child.Dispose();
    }
}
