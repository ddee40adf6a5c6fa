// Shape changes with gradients: Reshape (same elements, new shape; a copy), Flatten ([N, …] → [N, rest]) and ONNX's
// Flatten(axis) ([d0 … d(axis−1)] × [d(axis) …] → 2-D).
using Engine.Core.Autograd;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>The same elements in row-major order under <paramref name="shape"/>.</summary>
    public Tensor<T> Reshape(Shape shape)
    {
        if (shape.Length != Length)
            throw new ArgumentException($"reshape: {Shape} ({Length} elements) cannot become {shape} ({shape.Length}).");
        var x = this;
        var y = new Tensor<T>(Device, shape);
        Device.Backend.Copy(Buffer, y.Buffer);
        return Graph.Record(y, "reshape", [x], dy => [dy.Reshape(x.Shape)]);
    }

    /// <summary>The same elements under <paramref name="dims"/>, one of which may be −1: that axis takes whatever
    /// size keeps the element count (as numpy.reshape and ONNX Reshape).</summary>
    /// <exception cref="ArgumentException">More than one −1, another negative size, or sizes that cannot hold this
    /// tensor's elements.</exception>
    public Tensor<T> Reshape(params int[] dims)
    {
        int inferred = Array.IndexOf(dims, -1);
        long known = 1;
        for (int d = 0; d < dims.Length; d++)
            if (d != inferred) known *= Math.Max(dims[d], 0);
        string given = $"[{string.Join(", ", dims)}]";
        if (dims.Count(v => v == -1) > 1 || dims.Any(v => v < -1))
            throw new ArgumentException($"reshape: {given} may hold one −1 and no other negative size.",
                nameof(dims));
        if (inferred < 0) return Reshape(new Shape(dims));
        if (known == 0 || Length % known != 0)
            throw new ArgumentException($"reshape: {Shape} ({Length} elements) cannot become {given}.", nameof(dims));
        var resolved = (int[])dims.Clone();
        resolved[inferred] = checked((int)(Length / known));
        return Reshape(new Shape(resolved));
    }

    /// <summary>[N, d1, d2, …] → [N, d1·d2·…].</summary>
    public Tensor<T> Flatten()
    {
        if (Rank < 1) throw new ArgumentException($"flatten: a scalar {Shape} has no batch axis.");
        return Flatten(1);
    }

    /// <summary>ONNX Flatten: [d0, …, d(axis−1), d(axis), …] → [d0·…·d(axis−1), d(axis)·…], the products of the
    /// axes before and from <paramref name="axis"/> (1 for none). <paramref name="axis"/> lies in [−Rank, Rank];
    /// a negative one counts from the end, 0 gives [1, all]. Backward: the gradient reshaped back.</summary>
    /// <exception cref="ArgumentException"><paramref name="axis"/> is outside [−Rank, Rank].</exception>
    public Tensor<T> Flatten(int axis)
    {
        if (axis < -Rank || axis > Rank)
            throw new ArgumentException($"flatten: axis {axis} is outside [{-Rank}, {Rank}] for {Shape}.",
                nameof(axis));
        if (axis < 0) axis += Rank;
        long outer = 1, inner = 1;
        for (int d = 0; d < Rank; d++)
            if (d < axis) outer *= Shape[d];
            else inner *= Shape[d];
        return Reshape([checked((int)outer), checked((int)inner)]);
    }
}
