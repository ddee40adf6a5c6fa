// TensorScope: deterministic release of the tensors a block of code creates. Every tensor created while a scope
// is the innermost one on this thread belongs to it and is disposed (its buffer returned to the device pool) when
// the scope ends, unless moved out with Keep. A training step wrapped in a scope therefore uses the same memory on
// every iteration.
//
//     using (var scope = TensorScope.Begin()) { var loss = model.Forward(x).Mean(); loss.Backward(); … }
namespace Engine.Core;

/// <summary>Owns every tensor created on this thread while it is the innermost scope, and disposes them when it
/// ends (unless moved out with <see cref="Keep{T}"/>), so a training step reuses the same pooled memory on every
/// iteration. Scopes nest and must be disposed innermost first.</summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? _current;

    private readonly TensorScope? _parent;
    private readonly List<IDisposable> _owned = new();
    private bool _disposed;

    private TensorScope()
    {
        _parent = _current;
        _current = this;
    }

    /// <summary>Opens a scope nested in the current one.</summary>
    public static TensorScope Begin() => new();

    /// <summary>Number of tensors the scope owns.</summary>
    public int Count => _owned.Count;

    internal static void Adopt(ITensorScoped tensor)
    {
        if (_current is null) return;
        tensor.Scope = _current;
        _current._owned.Add(tensor);
    }

    /// <summary>Takes a tensor out of whatever scope owns it: it then lives until disposed explicitly (module
    /// parameters and buffers).</summary>
    internal static void Release(ITensorScoped tensor) => tensor.Scope = null;

    /// <summary>Moves <paramref name="tensor"/> to the enclosing scope (or out of every scope), so it survives
    /// this one.</summary>
    /// <returns><paramref name="tensor"/> itself.</returns>
    /// <exception cref="InvalidOperationException"><paramref name="tensor"/> is not owned by this scope.</exception>
    public Tensor<T> Keep<T>(Tensor<T> tensor) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        if (!ReferenceEquals(tensor.Scope, this))
            throw new InvalidOperationException($"Keep: {tensor} does not belong to this scope.");
        tensor.Scope = _parent;
        _parent?._owned.Add(tensor);
        return tensor;
    }

    /// <summary>Ends the scope: disposes every tensor it still owns and makes the enclosing scope current again.
    /// Disposing twice has no further effect.</summary>
    /// <exception cref="InvalidOperationException">A scope opened inside this one is still open.</exception>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (!ReferenceEquals(_current, this))
            throw new InvalidOperationException("TensorScopes must be disposed innermost first.");
        _current = _parent;
        foreach (var owned in _owned)
            if (owned is ITensorScoped scoped && ReferenceEquals(scoped.Scope, this))
                owned.Dispose();
        _owned.Clear();
    }
}

/// <summary>What a scope needs to know of a tensor, whatever its element type.</summary>
internal interface ITensorScoped : IDisposable
{
    TensorScope? Scope { get; set; }
}
