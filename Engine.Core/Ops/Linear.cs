// Matrix products with their gradients: MatMul (a [M, K] · b [K, N]), Linear (x [N, In], weight [Out, In],
// optional bias [Out] → y [N, Out], PyTorch's layout: y = x · weightᵀ + bias) and ONNX's Gemm
// (y [M, N] = alpha · op(a) · op(b) + beta · c, c broadcast to [M, N]).
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

    /// <summary>ONNX Gemm: y = alpha · op(a) · op(b) + beta · c, where op(a) is a [M, K] (aᵀ when
    /// <paramref name="transposeA"/>, a then stored [K, M]), op(b) is b [K, N] (bᵀ when
    /// <paramref name="transposeB"/>), and <paramref name="c"/>, when given, broadcasts to [M, N] (a scalar, [N],
    /// [1, N], [M, 1] or [M, N]). As BLAS, beta = 0 or no c ignores c. Backward: da and db from two GEMMs,
    /// dc = beta · dy summed over c's broadcast axes.</summary>
    /// <exception cref="ArgumentException">a or b is not a matrix, their inner sizes differ, c does not broadcast to
    /// [M, N], or the tensors live on different devices.</exception>
    public static Tensor<T> Gemm(Tensor<T> a, Tensor<T> b, Tensor<T>? c = null, double alpha = 1, double beta = 1,
        bool transposeA = false, bool transposeB = false)
    {
        const string op = "gemm";
        if (a.Rank != 2 || b.Rank != 2)
            throw new ArgumentException($"{op}: a {a.Shape} and b {b.Shape} must both be matrices.");
        int m = transposeA ? a.Shape[1] : a.Shape[0], k = transposeA ? a.Shape[0] : a.Shape[1];
        int n = transposeB ? b.Shape[0] : b.Shape[1];
        if ((transposeB ? b.Shape[1] : b.Shape[0]) != k)
            throw new ArgumentException($"{op}: op(a) of a {a.Shape}{(transposeA ? "ᵀ" : "")} and op(b) of b " +
                                        $"{b.Shape}{(transposeB ? "ᵀ" : "")} do not multiply ([M, K]·[K, N]).");
        Check.SameDevice(op, a, b);
        Shape shape = [m, n];
        if (c is not null)
        {
            Check.SameDevice(op, a, c);
            if (c.Rank > 2) throw new ArgumentException($"{op}: c {c.Shape} must have at most 2 axes to broadcast " +
                                                       $"to [M, N] = {shape}.");
            Broadcasting.CheckTarget(op, c.Shape, shape);
        }
        T scaleProduct = T.CreateChecked(alpha), scaleC = T.CreateChecked(beta);
        var backend = a.Device.Backend;
        var y = new Tensor<T>(a.Device, shape);
        bool addC = c is not null && scaleC != T.Zero;
        if (addC && c!.Shape == shape) backend.Copy(c.Buffer, y.Buffer);
        else if (addC) backend.StridedCopy(Broadcasting.Expand(c!.Shape, shape), c.Buffer, y.Buffer);
        backend.Gemm(transposeA, transposeB, m, n, k, scaleProduct, a.Buffer, b.Buffer, addC ? scaleC : T.Zero,
            y.Buffer);
        Tensor<T>[] inputs = c is null ? [a, b] : [a, b, c];
        return Graph.Record(y, op, inputs, dy =>
        {
            Tensor<T>? da = null, db = null, dc = null;
            if (a.RequiresGrad)
            {
                // d op(a) = alpha · dy · op(b)ᵀ [M, K]; stored transposed, da = alpha · op(b) · dyᵀ [K, M].
                da = new Tensor<T>(dy.Device, a.Shape);
                if (transposeA)
                    backend.Gemm(transposeB, true, k, m, n, scaleProduct, b.Buffer, dy.Buffer, T.Zero, da.Buffer);
                else
                    backend.Gemm(false, !transposeB, m, k, n, scaleProduct, dy.Buffer, b.Buffer, T.Zero, da.Buffer);
            }
            if (b.RequiresGrad)
            {
                // d op(b) = alpha · op(a)ᵀ · dy [K, N]; stored transposed, db = alpha · dyᵀ · op(a) [N, K].
                db = new Tensor<T>(dy.Device, b.Shape);
                if (transposeB)
                    backend.Gemm(true, transposeA, n, k, m, scaleProduct, dy.Buffer, a.Buffer, T.Zero, db.Buffer);
                else
                    backend.Gemm(!transposeA, false, k, n, m, scaleProduct, a.Buffer, dy.Buffer, T.Zero, db.Buffer);
            }
            if (c is { RequiresGrad: true })
                dc = dy.SumToCore(c.Shape, addC ? scaleC : T.Zero);
            return c is null ? [da, db] : [da, db, dc];
        });
    }
}
