// Elementwise tensor ops with their gradients: add (the residual add), multiply, scale, ReLU, clone, and the
// in-place fill and copy. Each forward is followed by its backward closure. Add and multiply broadcast as NumPy
// (Broadcast.cs) when the shapes differ; equal shapes keep the single elementwise launch.
using System.Numerics;
using Engine.Core.Autograd;
using Engine.Core.Ops;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>a + b with NumPy broadcasting (equal shapes take one elementwise launch; otherwise the shapes,
    /// aligned from the right, must match or be 1 on every axis). Backward: each input receives the output gradient,
    /// summed over the axes it was broadcast along.</summary>
    /// <exception cref="ArgumentException">The shapes do not broadcast (the message names both) or the tensors live
    /// on different devices.</exception>
    public static Tensor<T> Add(Tensor<T> a, Tensor<T> b)
    {
        Check.SameDevice("add", a, b);
        if (a.Shape != b.Shape)
            return BroadcastZip("add", a, b, new AddOp<T>(), dy => [
                a.RequiresGrad ? dy.SumTo(a.Shape) : null,
                b.RequiresGrad ? dy.SumTo(b.Shape) : null,
            ]);
        var y = new Tensor<T>(a.Device, a.Shape);
        a.Device.Backend.Add(a.Buffer, b.Buffer, y.Buffer);
        return Graph.Record(y, "add", [a, b], dy => [dy, dy]);
    }

    /// <summary>a ⊙ b with NumPy broadcasting, as <see cref="Add"/>. Backward: da = dy ⊙ b, db = dy ⊙ a, each
    /// summed over the axes its input was broadcast along.</summary>
    /// <exception cref="ArgumentException">The shapes do not broadcast (the message names both) or the tensors live
    /// on different devices.</exception>
    public static Tensor<T> Multiply(Tensor<T> a, Tensor<T> b)
    {
        Check.SameDevice("multiply", a, b);
        BackwardFunction<T> backward = dy => [
            a.RequiresGrad ? Multiply(dy, b).SumTo(a.Shape) : null,
            b.RequiresGrad ? Multiply(dy, a).SumTo(b.Shape) : null,
        ];
        if (a.Shape != b.Shape) return BroadcastZip("multiply", a, b, new MultiplyOp<T>(), backward);
        var y = new Tensor<T>(a.Device, a.Shape);
        a.Device.Backend.Multiply(a.Buffer, b.Buffer, y.Buffer);
        return Graph.Record(y, "multiply", [a, b], backward);
    }

    /// <summary>alpha · x. Backward: dx = alpha · dy.</summary>
    public Tensor<T> Scale(T alpha)
    {
        var y = new Tensor<T>(Device, Shape);
        Device.Backend.Scale(Buffer, alpha, y.Buffer);
        return Graph.Record(y, "scale", [this], dy => [dy.Scale(alpha)]);
    }

    /// <summary>max(x, 0). Backward: dx = dy where the output is positive, else 0 (the subgradient 0 at 0).</summary>
    public Tensor<T> Relu()
    {
        var y = new Tensor<T>(Device, Shape);
        Device.Backend.Relu(Buffer, y.Buffer);
        return Graph.Record(y, "relu", [this], dy =>
        {
            var dx = new Tensor<T>(dy.Device, dy.Shape);
            dy.Device.Backend.ReluBackward(y.Buffer, dy.Buffer, dx.Buffer);
            return [dx];
        });
    }

    /// <summary>A copy of the data; gradients flow through it unchanged.</summary>
    public Tensor<T> Clone()
    {
        var y = new Tensor<T>(Device, Shape);
        Device.Backend.Copy(Buffer, y.Buffer);
        return Graph.Record(y, "clone", [this], dy => [dy]);
    }

    /// <summary>Sets every element to <paramref name="value"/> in place (no gradient).</summary>
    public Tensor<T> Fill(T value)
    {
        CheckInPlace("Fill");
        Device.Backend.Fill(Buffer, value);
        return this;
    }

    /// <summary>Copies <paramref name="source"/> into this tensor in place (same shape and device; no gradient).</summary>
    public Tensor<T> CopyFrom(Tensor<T> source)
    {
        CheckInPlace("CopyFrom");
        Check.SameShape("CopyFrom", this, "destination", source, "source");
        Check.SameDevice("CopyFrom", this, source);
        Device.Backend.Copy(source.Buffer, Buffer);
        return this;
    }

    /// <summary>Elementwise sum with NumPy broadcasting, as <see cref="Add"/> (records a backward).</summary>
    /// <exception cref="ArgumentException">The shapes do not broadcast or the devices differ.</exception>
    public static Tensor<T> operator +(Tensor<T> a, Tensor<T> b) => Add(a, b);

    /// <summary>Elementwise product with NumPy broadcasting, as <see cref="Multiply"/> (records a backward).</summary>
    /// <exception cref="ArgumentException">The shapes do not broadcast or the devices differ.</exception>
    public static Tensor<T> operator *(Tensor<T> a, Tensor<T> b) => Multiply(a, b);

    /// <summary>Every element times the scalar <paramref name="alpha"/>, as <see cref="Scale"/> (records a
    /// backward).</summary>
    public static Tensor<T> operator *(Tensor<T> x, T alpha) => x.Scale(alpha);

    /// <summary>Every element times the scalar <paramref name="alpha"/>, as <see cref="Scale"/> (records a
    /// backward).</summary>
    public static Tensor<T> operator *(T alpha, Tensor<T> x) => x.Scale(alpha);

    /// <summary>Elementwise difference a + (−1)·b with NumPy broadcasting; records a backward through the add and
    /// the scale.</summary>
    /// <exception cref="ArgumentException">The shapes do not broadcast or the devices differ.</exception>
    public static Tensor<T> operator -(Tensor<T> a, Tensor<T> b) => Add(a, b.Scale(-T.One));
}
