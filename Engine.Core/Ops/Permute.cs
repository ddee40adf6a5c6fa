// Axis permutations with their gradients: Permute (any order of the axes, as numpy.transpose and ONNX Transpose;
// no axes reverses them) and Transpose (two axes swapped). A permuted copy is one strided gather; the backward is
// the inverse permutation.
using Engine.Core.Autograd;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>A copy with axis i of the result taken from axis <paramref name="axes"/>[i] of this tensor (at most
    /// <see cref="StridedLayout.MaxRank"/> axes; negative axes count from the end); no axes reverses the order, as
    /// numpy.transpose and ONNX Transpose. Backward: the gradient permuted back.</summary>
    /// <exception cref="ArgumentException"><paramref name="axes"/> is not a permutation of this tensor's axes, or the
    /// tensor has more than <see cref="StridedLayout.MaxRank"/> axes.</exception>
    public Tensor<T> Permute(params int[] axes)
    {
        var x = this;
        int rank = x.Rank;
        if (rank > StridedLayout.MaxRank)
            throw new ArgumentException($"permute: {x.Shape} has {rank} axes; at most {StridedLayout.MaxRank} are " +
                                        "supported.");
        int[] order = axes.Length == 0 ? Enumerable.Range(0, rank).Reverse().ToArray() : Normalised(axes, rank);
        var dense = StridedLayout.Dense(x.Shape.ToArray());
        int[] extents = new int[rank], strides = new int[rank], inverse = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            extents[i] = x.Shape[order[i]];
            strides[i] = dense.Stride(order[i]);
            inverse[order[i]] = i;
        }
        var y = new Tensor<T>(Device, extents);
        Device.Backend.StridedCopy(new StridedLayout(extents, strides), x.Buffer, y.Buffer);
        return Graph.Record(y, "permute", [x], dy => [dy.Permute(inverse)]);

        int[] Normalised(int[] given, int count)
        {
            var result = new int[given.Length];
            var seen = new bool[count];
            for (int i = 0; i < given.Length; i++)
            {
                int axis = given[i] < 0 ? given[i] + count : given[i];
                if (given.Length != count || axis < 0 || axis >= count || seen[axis])
                    throw new ArgumentException($"permute: axes [{string.Join(", ", given)}] are not a permutation " +
                                                $"of the {count} axes of {x.Shape}.", nameof(axes));
                seen[axis] = true;
                result[i] = axis;
            }
            return result;
        }
    }

    /// <summary>A copy with axes <paramref name="axis0"/> and <paramref name="axis1"/> swapped (negative axes count
    /// from the end), as torch.transpose. Backward: the gradient swapped back.</summary>
    /// <exception cref="ArgumentException">An axis is outside this tensor's axes.</exception>
    public Tensor<T> Transpose(int axis0, int axis1)
    {
        int rank = Rank;
        foreach (int axis in (ReadOnlySpan<int>)[axis0, axis1])
            if (axis < -rank || axis >= rank)
                throw new ArgumentException($"transpose: axis {axis} is outside [{-rank}, {rank}) for {Shape}.");
        int first = axis0 < 0 ? axis0 + rank : axis0, second = axis1 < 0 ? axis1 + rank : axis1;
        int[] order = Enumerable.Range(0, rank).ToArray();
        (order[first], order[second]) = (second, first);
        return Permute(order);
    }
}
