// NumPy broadcasting with its gradients: the broadcast shape of two shapes (aligned from the right; an axis of size 1
// or a missing axis takes the other's size), BroadcastTo (expand to a larger shape; backward sums back) and SumTo
// (sum over the broadcast axes down to a smaller shape; backward expands), and the broadcasting binary op behind
// Add and Multiply. All run on Backend's strided ops over at most StridedLayout.MaxRank axes.
using System.Numerics;
using Engine.Core.Autograd;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>This tensor expanded to <paramref name="shape"/> by NumPy broadcasting (each axis of this
    /// tensor, aligned from the right, equals the target's or is 1; missing leading axes are added): a copy.
    /// Backward: the gradient summed over the broadcast axes. The same tensor when the shapes are equal.</summary>
    /// <exception cref="ArgumentException">This shape does not broadcast to <paramref name="shape"/>, or either has
    /// more than <see cref="StridedLayout.MaxRank"/> axes.</exception>
    public Tensor<T> BroadcastTo(Shape shape)
    {
        var x = this;
        if (x.Shape == shape) return x;
        Broadcasting.CheckTarget("broadcast", x.Shape, shape);
        var y = new Tensor<T>(Device, shape);
        Device.Backend.StridedCopy(Broadcasting.Expand(x.Shape, shape), x.Buffer, y.Buffer);
        return Graph.Record(y, "broadcast", [x], dy => [dy.SumTo(x.Shape)]);
    }

    /// <summary>This tensor summed over the axes on which <paramref name="shape"/> broadcasts to it (the
    /// inverse of <see cref="BroadcastTo"/>, as PyTorch's sum_to_size): every element of the result is the
    /// sum, in a fixed order, of the elements that broadcast from it. Backward: the gradient expanded back.
    /// The same tensor when the shapes are equal.</summary>
    /// <exception cref="ArgumentException"><paramref name="shape"/> does not broadcast to this shape, or either
    /// has more than <see cref="StridedLayout.MaxRank"/> axes.</exception>
    public Tensor<T> SumTo(Shape shape)
    {
        var x = this;
        if (x.Shape == shape) return x;
        Broadcasting.CheckTarget("sum to", shape, x.Shape);
        var y = x.SumToCore(shape, T.One);
        return Graph.Record(y, "sum to", [x], dy => [dy.BroadcastTo(x.Shape)]);
    }

    /// <summary>alpha · the sum of this tensor down to <paramref name="shape"/> (checked to broadcast to it),
    /// without a gradient record: one strided sum.</summary>
    internal Tensor<T> SumToCore(Shape shape, T alpha)
    {
        var y = new Tensor<T>(Device, shape);
        var (kept, reduced) = Broadcasting.Reduction(shape, Shape);
        Device.Backend.StridedSum(kept, reduced, Buffer, alpha, y.Buffer);
        return y;
    }

    /// <summary>op(a, b) with NumPy broadcasting into their broadcast shape, recorded with
    /// <paramref name="backward"/>.</summary>
    private static Tensor<T> BroadcastZip<TOp>(string op, Tensor<T> a, Tensor<T> b, TOp binary,
        BackwardFunction<T> backward) where TOp : struct, IBinaryOp<T>
    {
        var shape = Broadcasting.ResultShape(op, a.Shape, b.Shape);
        var y = new Tensor<T>(a.Device, shape);
        a.Device.Backend.StridedZip(Broadcasting.Expand(a.Shape, shape), a.Buffer, Broadcasting.Expand(b.Shape, shape),
            b.Buffer, binary, y.Buffer);
        return Graph.Record(y, op, [a, b], backward);
    }
}

/// <summary>NumPy's broadcasting rules on shapes, and the strided layouts that read a tensor as its broadcast
/// or reduce it back.</summary>
internal static class Broadcasting
{
    /// <summary>The broadcast shape of <paramref name="a"/> and <paramref name="b"/>: aligned from the right,
    /// each axis the size both share, or the other's where one is 1 or missing.</summary>
    /// <exception cref="ArgumentException">An axis differs and neither size is 1 (the message names both
    /// shapes), or a shape has more than <see cref="StridedLayout.MaxRank"/> axes.</exception>
    public static Shape ResultShape(string op, Shape a, Shape b)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        CheckRank(op, a, b, rank);
        var dims = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            int da = Aligned(a, d, rank), db = Aligned(b, d, rank);
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {a} and {b} do not broadcast: axis {d} of the " +
                                            $"result would need sizes {da} and {db} (each must match or be 1).");
            dims[d] = da == 1 ? db : da;
        }
        return dims;
    }

    /// <summary>Checks that <paramref name="source"/> broadcasts to exactly <paramref name="target"/>.</summary>
    public static void CheckTarget(string op, Shape source, Shape target)
    {
        if (source.Rank > target.Rank || ResultShape(op, source, target) != target)
            throw new ArgumentException($"{op}: shape {source} does not broadcast to {target} (aligned from " +
                                        "the right, each axis must equal the target's or be 1).");
    }

    /// <summary>The layout that reads a dense tensor of shape <paramref name="source"/> as
    /// <paramref name="target"/>, to which it broadcasts: the target's extents, the source's row-major
    /// strides, 0 on broadcast axes.</summary>
    public static StridedLayout Expand(Shape source, Shape target)
    {
        Span<int> extents = stackalloc int[target.Rank], strides = stackalloc int[target.Rank];
        int stride = 1;
        for (int d = target.Rank - 1; d >= 0; d--)
        {
            int size = Aligned(source, d, target.Rank);
            extents[d] = target[d];
            strides[d] = size == 1 ? 0 : stride;
            stride = (int)Math.Min((long)stride * size, int.MaxValue);
        }
        return new StridedLayout(extents, strides);
    }

    /// <summary>The layouts that sum a dense tensor of shape <paramref name="source"/> down to
    /// <paramref name="target"/> (which broadcasts to it): the kept axes (the target's, in order) and the
    /// reduced ones, both with the source's row-major strides.</summary>
    public static (StridedLayout Kept, StridedLayout Reduced) Reduction(Shape target, Shape source)
    {
        int rank = source.Rank, kept = 0, reduced = 0;
        Span<int> keptExtents = stackalloc int[rank], keptStrides = stackalloc int[rank];
        Span<int> reducedExtents = stackalloc int[rank], reducedStrides = stackalloc int[rank];
        int stride = 1;
        for (int d = rank - 1; d >= 0; d--)
        {
            int size = source[d];
            if (Aligned(target, d, rank) == size)
            {
                keptExtents[rank - 1 - kept] = size;
                keptStrides[rank - 1 - kept++] = stride;
            }
            else
            {
                reducedExtents[rank - 1 - reduced] = size;
                reducedStrides[rank - 1 - reduced++] = stride;
            }
            stride = (int)Math.Min((long)stride * size, int.MaxValue);
        }
        return (new StridedLayout(keptExtents[(rank - kept)..], keptStrides[(rank - kept)..]),
            new StridedLayout(reducedExtents[(rank - reduced)..], reducedStrides[(rank - reduced)..]));
    }

    /// <summary>Checks that the op's shapes fit a strided layout.</summary>
    public static void CheckRank(string op, Shape a, Shape b, int rank)
    {
        if (rank > StridedLayout.MaxRank)
            throw new ArgumentException($"{op}: shapes {a} and {b} have {rank} axes; broadcasting supports " +
                                        $"at most {StridedLayout.MaxRank}.");
    }

    /// <summary>Axis <paramref name="d"/> of <paramref name="shape"/> aligned from the right within
    /// <paramref name="rank"/> axes; 1 where the shape has no such axis.</summary>
    private static int Aligned(Shape shape, int d, int rank)
    {
        int axis = d - (rank - shape.Rank);
        return axis < 0 ? 1 : shape[axis];
    }
}
