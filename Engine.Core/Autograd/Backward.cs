// Tensor.Backward: the reverse walk over the recorded graph (see Autograd.cs for the rules).
using System.Numerics;
using Engine.Core.Autograd;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>
    /// Back-propagates from this tensor: a one-element tensor gets gradient 1; otherwise pass
    /// <paramref name="outputGrad"/> of the same shape. Gradients accumulate (+=) into the Grad of every leaf that
    /// requires grad, each leaf's gradient-ready hooks running as soon as its gradient of this pass is final
    /// (<see cref="RegisterGradReadyHook"/>); intermediate gradients are freed as soon as they are used; the graph
    /// is released. As torch.Tensor.backward.
    /// </summary>
    /// <exception cref="InvalidOperationException">This tensor does not require grad; no
    /// <paramref name="outputGrad"/> is given for a tensor of more than one element; the graph was already released
    /// by an earlier Backward; a tensor of the graph was disposed, or one an op saved was written in place, since
    /// the forward pass.</exception>
    /// <exception cref="ArgumentException"><paramref name="outputGrad"/> differs in shape or device.</exception>
    public void Backward(Tensor<T>? outputGrad = null)
    {
        if (!RequiresGrad)
            throw new InvalidOperationException(
                $"Backward on a {Shape} tensor that does not require grad: no input of its graph requires grad.");
        if (outputGrad is null && Length != 1)
            throw new InvalidOperationException(
                $"Backward without an output gradient needs a one-element output; this one has shape {Shape}.");
        if (outputGrad is not null)
        {
            Ops.Check.SameShape("Backward", this, "output", outputGrad, "outputGrad");
            Ops.Check.SameDevice("Backward", this, outputGrad);
        }

        var order = Graph.TopologicalOrder(this);
        var backend = Device.Backend;
        using var scope = TensorScope.Begin();
        var grads = new Dictionary<Tensor<T>, Tensor<T>>(ReferenceEqualityComparer.Instance);
        using (GradMode.NoGrad())
        {
            grads[this] = outputGrad is null ? Tensor.Ones<T>(Shape, Device) : outputGrad.Clone();
            foreach (var tensor in order)
            {
                if (!grads.Remove(tensor, out var grad)) continue; // no gradient reached it
                if (tensor.IsLeaf)
                {
                    if (!AccumulateIntoLeaf(tensor, grad)) grad.Dispose();
                    if (tensor.RequiresGrad) tensor.RunGradReadyHooks();
                    continue;
                }

                var node = tensor.Node!;
                node.CheckUnchanged(tensor, tensor.NodeVersion);
                var inputGrads = node.Backward(grad);
                if (inputGrads.Length != node.Inputs.Length)
                    throw new InvalidOperationException(
                        $"Backward of '{node.Op}' returned {inputGrads.Length} gradients for {node.Inputs.Length} inputs.");
                bool gradTaken = false;
                for (int i = 0; i < inputGrads.Length; i++)
                {
                    var input = node.Inputs[i];
                    var inputGrad = inputGrads[i];
                    if (inputGrad is null || !input.RequiresGrad) continue;
                    Ops.Check.SameShape($"backward of '{node.Op}'", input, $"input {i}", inputGrad, "its gradient");
                    if (grads.TryGetValue(input, out var sum))
                    {
                        backend.Axpy(T.One, inputGrad.Buffer, sum.Buffer);
                    }
                    else
                    {
                        // A gradient tensor may be returned for several inputs (e.g. both sides of an add) or be
                        // the output gradient itself: store each tensor once, copy it for any further use.
                        bool shared = ReferenceEquals(inputGrad, grad) ? gradTaken : IsStored(grads, inputGrad);
                        grads[input] = shared ? inputGrad.Clone() : inputGrad;
                        if (ReferenceEquals(inputGrad, grad)) gradTaken = true;
                    }
                }
                foreach (var inputGrad in inputGrads)
                    if (inputGrad is not null && !ReferenceEquals(inputGrad, grad) && !IsStored(grads, inputGrad))
                        inputGrad.Dispose();
                if (!gradTaken) grad.Dispose();
            }
        }

        foreach (var tensor in order)
            tensor.Node?.Release();
    }

    private static bool IsStored(Dictionary<Tensor<T>, Tensor<T>> grads, Tensor<T> candidate)
    {
        foreach (var stored in grads.Values)
            if (ReferenceEquals(stored, candidate)) return true;
        return false;
    }

    /// <summary>Adds <paramref name="grad"/> (owned by the walk, shared with nothing) into the leaf's Grad;
    /// returns true when the leaf took the tensor itself as its first gradient (no copy).</summary>
    private static bool AccumulateIntoLeaf(Tensor<T> leaf, Tensor<T> grad)
    {
        if (!leaf.RequiresGrad) return false;
        if (leaf.Grad is null)
        {
            TensorScope.Release(grad);
            leaf.Grad = grad;
            return true;
        }
        leaf.Device.Backend.Axpy(T.One, grad.Buffer, leaf.Grad.Buffer);
        return false;
    }
}
