// Reverse-mode automatic differentiation.
//
// Each op that sees an input requiring grad (with grad mode on) attaches a GradNode to its output: the op's
// name, its inputs, and a closure written beside the forward math that maps the output gradient to one gradient
// per input. Tensor.Backward sorts the graph topologically (iteratively, so deep networks cannot overflow the
// stack), walks it from the output, sums the gradients that reach a tensor from several uses, accumulates (+=)
// into the Grad of leaves that require grad (running each leaf's gradient-ready hooks, GradReadyHooks.cs, once its
// gradient of the pass is final), and finally releases the graph: a second Backward through the same
// graph is an error, as in PyTorch.
using System.Numerics;

namespace Engine.Core.Autograd;

/// <summary>Turns gradient recording off for a block: <c>using (GradMode.NoGrad()) { … }</c>.</summary>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    /// <summary>True unless inside a NoGrad block on this thread.</summary>
    public static bool IsEnabled => _disabledDepth == 0;

    /// <summary>Disables gradient recording on this thread until the returned handle is disposed (as
    /// torch.no_grad): ops then attach no backward and their outputs do not require grad. Blocks nest; disposing
    /// a handle twice has no further effect.</summary>
    /// <returns>The handle that re-enables recording when disposed.</returns>
    public static IDisposable NoGrad()
    {
        _disabledDepth++;
        return new Restore();
    }

    private sealed class Restore : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            _disabledDepth--;
        }
    }
}

/// <summary>Maps the gradient of an op's output to the gradients of its inputs (null where none flows).</summary>
internal delegate Tensor<T>?[] BackwardFunction<T>(Tensor<T> outputGrad) where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>The record an op leaves on its output, with the versions of its inputs at the time (an input written
/// in place before the backward would make its saved values stale).</summary>
internal sealed class GradNode<T>(string op, Tensor<T>[] inputs, BackwardFunction<T> backward)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    public string Op { get; } = op;
    public Tensor<T>[] Inputs { get; private set; } = inputs;
    public BackwardFunction<T> Backward { get; private set; } = backward;
    public bool Released { get; private set; }
    private readonly int[] _inputVersions = inputs.Select(input => input.Version).ToArray();

    /// <summary>Throws when an input, or the output itself, was written in place after the forward pass.</summary>
    public void CheckUnchanged(Tensor<T> output, int outputVersion)
    {
        for (int i = 0; i < Inputs.Length; i++)
            if (Inputs[i].Version != _inputVersions[i])
                throw new InvalidOperationException(
                    $"Backward of '{Op}': input {i} ({Inputs[i].Shape}) was modified in place after the forward " +
                    "pass; its gradient would be computed from the new values.");
        if (output.Version != outputVersion)
            throw new InvalidOperationException(
                $"Backward of '{Op}': its output ({output.Shape}) was modified in place after the forward pass.");
    }

    public void Release()
    {
        Released = true;
        Inputs = [];
        Backward = static _ => [];
    }
}

internal static class Graph
{
    /// <summary>Attaches a node to <paramref name="output"/> when grad mode is on and an input requires grad.</summary>
    public static Tensor<T> Record<T>(Tensor<T> output, string op, Tensor<T>[] inputs, BackwardFunction<T> backward)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!GradMode.IsEnabled) return output;
        foreach (var input in inputs)
            if (input.RequiresGrad)
            {
                output.SetNode(new GradNode<T>(op, inputs, backward));
                break;
            }
        return output;
    }

    /// <summary>Tensors that require grad reachable from <paramref name="root"/>, each after every tensor that
    /// uses it (reverse post-order of an iterative depth-first search).</summary>
    public static List<Tensor<T>> TopologicalOrder<T>(Tensor<T> root) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var postOrder = new List<Tensor<T>>();
        var visited = new HashSet<Tensor<T>>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor<T> Tensor, int NextInput)>();
        visited.Add(root);
        stack.Push((root, 0));
        while (stack.Count > 0)
        {
            var (tensor, next) = stack.Pop();
            var inputs = tensor.Node?.Inputs ?? [];
            if (tensor.IsDisposed)
                throw new InvalidOperationException(
                    $"Backward reached a {tensor.Shape} tensor that was disposed before Backward; keep every tensor " +
                    "of the graph alive (e.g. in its TensorScope) until Backward has run.");
            if (tensor.Node is { Released: true })
                throw new InvalidOperationException(
                    $"Backward through the graph of '{tensor.Node.Op}' ({tensor.Shape}) a second time: the graph " +
                    "was released by the first Backward. Run the forward pass again.");
            if (next < inputs.Length)
            {
                stack.Push((tensor, next + 1));
                var input = inputs[next];
                if (input.RequiresGrad && visited.Add(input))
                    stack.Push((input, 0));
            }
            else
            {
                postOrder.Add(tensor);
            }
        }
        postOrder.Reverse();
        return postOrder;
    }
}
