// Shape changes with gradients: Reshape (same elements, new shape; a copy) and Flatten ([N, …] → [N, rest]).
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

    /// <summary>[N, d1, d2, …] → [N, d1·d2·…].</summary>
    public Tensor<T> Flatten()
    {
        if (Rank < 1) throw new ArgumentException($"flatten: a scalar {Shape} has no batch axis.");
        return Reshape([Shape[0], checked((int)(Length / Math.Max(1, Shape[0])))]);
    }
}
