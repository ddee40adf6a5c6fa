// Gradient-ready hooks on leaves (as PyTorch's register_post_accumulate_grad_hook): a callback that Tensor.Backward
// runs once per pass on a leaf that requires grad, right after that pass's gradient was accumulated into the leaf's
// Grad. The walk visits tensors in topological order, each after every tensor that uses it, and sums the
// contributions of several uses before it reaches the leaf; so when the hook runs, Grad holds this pass's final
// gradient (added to what an earlier pass left there), and nothing later in the same pass writes it again. A leaf
// that the pass gives no gradient (not reached, or only null gradients) is not called. Data-parallel training uses
// it to start a bucket's all-reduce while the rest of backward runs (Distributed/GradientBuckets.cs).
using System.Numerics;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    private List<Action<Tensor<T>>>? _gradReadyHooks;

    /// <summary>
    /// Registers <paramref name="hook"/> to be called with this leaf once in every <see cref="Backward"/> that gives
    /// it a gradient, right after that gradient was accumulated into <see cref="Grad"/>: after the last of its
    /// contributions (a leaf used several times is called once, with their sum), on the thread running Backward,
    /// with grad mode off, before the walk goes on. Hooks run in registration order; an exception from one ends the
    /// Backward. As torch.Tensor.register_post_accumulate_grad_hook.
    /// </summary>
    /// <param name="hook">Called with this tensor.</param>
    /// <returns>A handle whose Dispose removes the hook.</returns>
    /// <exception cref="InvalidOperationException">This tensor is not a leaf that requires grad (only leaves
    /// accumulate a Grad).</exception>
    public IDisposable RegisterGradReadyHook(Action<Tensor<T>> hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        if (!IsLeaf || !RequiresGrad)
            throw new InvalidOperationException(
                $"A gradient-ready hook goes on a leaf that requires grad; this {Shape} tensor " +
                (IsLeaf ? "does not require grad." : $"was produced by '{Node!.Op}'."));
        (_gradReadyHooks ??= []).Add(hook);
        return new HookRegistration(this, hook);
    }

    /// <summary>Runs the gradient-ready hooks of this leaf (from Backward, after accumulating into Grad).</summary>
    private void RunGradReadyHooks()
    {
        if (_gradReadyHooks is not { Count: > 0 } hooks) return;
        foreach (var hook in hooks.ToArray()) // a hook may remove itself
            hook(this);
    }

    private sealed class HookRegistration(Tensor<T> tensor, Action<Tensor<T>> hook) : IDisposable
    {
        private bool _removed;

        public void Dispose()
        {
            if (_removed) return;
            _removed = true;
            tensor._gradReadyHooks!.Remove(hook);
        }
    }
}
