// Matrix products with their gradients: MatMul (a [M, K] · b [K, N]) and Linear (x [N, In], weight [Out, In],
// optional bias [Out] → y [N, Out], PyTorch's layout: y = x · weightᵀ + bias).
using Engine.Core.Autograd;
using Engine.Core.Ops;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>a · b for a [M, K], b [K, N]. Backward: da = dy · bᵀ, db = aᵀ · dy.</summary>
    public static Tensor<T> MatMul(Tensor<T> a, Tensor<T> b)
    {
        if (a.Rank != 2 || b.Rank != 2 || a.Shape[1] != b.Shape[0])
            throw new ArgumentException($"matmul: shapes {a.Shape} and {b.Shape} do not multiply ([M, K]·[K, N]).");
        Check.SameDevice("matmul", a, b);
        int m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        var backend = a.Device.Backend;
        var y = new Tensor<T>(a.Device, [m, n]);
        backend.Gemm(false, false, m, n, k, T.One, a.Buffer, b.Buffer, T.Zero, y.Buffer);
        return Graph.Record(y, "matmul", [a, b], dy =>
        {
            Tensor<T>? da = null, db = null;
            if (a.RequiresGrad)
            {
                da = new Tensor<T>(dy.Device, a.Shape);
                backend.Gemm(false, true, m, k, n, T.One, dy.Buffer, b.Buffer, T.Zero, da.Buffer);
            }
            if (b.RequiresGrad)
            {
                db = new Tensor<T>(dy.Device, b.Shape);
                backend.Gemm(true, false, k, n, m, T.One, a.Buffer, dy.Buffer, T.Zero, db.Buffer);
            }
            return [da, db];
        });
    }

    /// <summary>x · weightᵀ + bias. Backward: dx = dy · weight, dweight = dyᵀ · x, dbias = Σ_n dy.</summary>
    public Tensor<T> Linear(Tensor<T> weight, Tensor<T>? bias = null)
    {
        var x = this;
        if (x.Rank != 2 || weight.Rank != 2 || weight.Shape[1] != x.Shape[1])
            throw new ArgumentException(
                $"linear: input {x.Shape} and weight {weight.Shape} must be [N, In] and [Out, In].");
        Check.SameDevice("linear", x, weight);
        int batch = x.Shape[0], features = x.Shape[1], outputs = weight.Shape[0];
        if (bias is not null)
        {
            if (bias.Shape != new Shape(outputs))
                throw new ArgumentException($"linear: bias {bias.Shape} must be [{outputs}].");
            Check.SameDevice("linear", x, bias);
        }
        var backend = Device.Backend;
        var y = new Tensor<T>(Device, [batch, outputs]);
        backend.Gemm(false, true, batch, outputs, features, T.One, x.Buffer, weight.Buffer, T.Zero, y.Buffer);
        if (bias is not null) backend.AddPerChannel(batch, outputs, 1, bias.Buffer, y.Buffer);
        Tensor<T>[] inputs = bias is null ? [x, weight] : [x, weight, bias];
        return Graph.Record(y, "linear", inputs, dy =>
        {
            Tensor<T>? dx = null, dw = null, db = null;
            if (x.RequiresGrad)
            {
                dx = new Tensor<T>(dy.Device, x.Shape);
                backend.Gemm(false, false, batch, features, outputs, T.One, dy.Buffer, weight.Buffer, T.Zero,
                    dx.Buffer);
            }
            if (weight.RequiresGrad)
            {
                dw = new Tensor<T>(dy.Device, weight.Shape);
                backend.Gemm(true, false, outputs, features, batch, T.One, dy.Buffer, x.Buffer, T.Zero, dw.Buffer);
            }
            if (bias is { RequiresGrad: true })
            {
                db = new Tensor<T>(dy.Device, bias.Shape);
                backend.SumPerChannel(batch, outputs, 1, dy.Buffer, db.Buffer);
            }
            return bias is null ? [dx, dw] : [dx, dw, db];
        });
    }
}
