// Whole-tensor reductions with their gradients: sum and mean, each giving a scalar (shape []).
using System.Numerics;
using Engine.Core.Autograd;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>The sum of every element, as a scalar. Backward: every element receives dy.</summary>
    public Tensor<T> Sum() => ScaledSum("sum", T.One);

    /// <summary>The mean of every element, as a scalar. Backward: every element receives dy / n.</summary>
    public Tensor<T> Mean()
    {
        if (Length == 0)
            throw new InvalidOperationException($"Mean of an empty tensor (shape {Shape}) is undefined.");
        return ScaledSum("mean", T.One / T.CreateChecked(Length));
    }

    private Tensor<T> ScaledSum(string op, T alpha)
    {
        var y = new Tensor<T>(Device, Shape.Scalar);
        Device.Backend.Sum(Buffer, alpha, y.Buffer);
        var inputShape = Shape;
        return Graph.Record(y, op, [this], dy =>
        {
            var dx = new Tensor<T>(dy.Device, inputShape);
            dy.Device.Backend.BroadcastScalar(dy.Buffer, alpha, dx.Buffer);
            return [dx];
        });
    }
}
