// Constant padding and strided slicing with their gradients, on the device: Pad (an amount before and after each
// axis, negative amounts crop; the new cells take a value), as ONNX Pad in constant mode and
// torch.nn.functional.pad, and Slice (a start, a step and a count per axis; a negative step walks the axis
// backwards), as ONNX Slice and numpy's x[start:stop:step]. Each is Backend's strided gather (StridedCopy reading x
// through an origin and steps) and/or its strided scatter (writing into the interior of a filled output): values
// move exactly. Pad's backward is the opposite Pad with zeros (what was padded is cropped, what was cropped is
// zero); Slice's backward scatters the gradient back into zeros, and its own backward is the Slice again.
using Engine.Core.Autograd;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>This tensor with <paramref name="before"/>[a] cells added before axis a and
    /// <paramref name="after"/>[a] after it, each new cell <paramref name="value"/>; a negative amount removes that
    /// many cells from that end instead (ONNX Pad, constant mode). At most <see cref="StridedLayout.MaxRank"/> axes.
    /// Backward: the gradient with the opposite amounts (padding cropped, cropped cells given 0).</summary>
    /// <exception cref="ArgumentException">The amounts are not one per axis, or crop an axis below nothing, or make
    /// an axis longer than 2^31 − 1.</exception>
    public Tensor<T> Pad(int[] before, int[] after, T value)
    {
        var x = this;
        int rank = x.Rank;
        string Amounts() => $"before [{string.Join(", ", before)}], after [{string.Join(", ", after)}]";
        if (before.Length != rank || after.Length != rank)
            throw new ArgumentException($"pad: {Amounts()} must give one amount per axis of {x.Shape}.");
        if (rank > StridedLayout.MaxRank)
            throw new ArgumentException($"pad: {x.Shape} has {rank} axes; at most {StridedLayout.MaxRank} are supported.");
        int[] shape = new int[rank], kept = new int[rank];
        for (int a = 0; a < rank; a++)
        {
            long keep = (long)x.Shape[a] + Math.Min(before[a], 0) + Math.Min(after[a], 0);
            long extent = keep + Math.Max(before[a], 0) + Math.Max(after[a], 0);
            if (keep < 0 || extent > int.MaxValue)
                throw new ArgumentException($"pad: {Amounts()} make axis {a} of {x.Shape} " +
                                            (keep < 0 ? "crop below nothing." : "longer than 2^31 − 1."));
            (kept[a], shape[a]) = ((int)keep, (int)extent);
        }
        var xStrides = StridedLayout.Dense(x.Shape.ToArray());
        var yStrides = StridedLayout.Dense(shape);
        int[] sourceStrides = new int[rank], targetStrides = new int[rank];
        long source = 0, target = 0;
        for (int a = 0; a < rank; a++)
        {
            (sourceStrides[a], targetStrides[a]) = (xStrides.Stride(a), yStrides.Stride(a));
            source += (long)Math.Max(-before[a], 0) * sourceStrides[a];
            target += (long)Math.Max(before[a], 0) * targetStrides[a];
        }
        var y = new Tensor<T>(Device, shape);
        var backend = Device.Backend;
        var region = new Shape(kept);
        bool grows = region != y.Shape, crops = region != x.Shape;
        if (grows) backend.Fill(y.Buffer, value);
        if (region.Length > 0)
        {
            var read = new StridedLayout(kept, sourceStrides, (int)source);
            var write = new StridedLayout(kept, targetStrides, (int)target);
            if (!grows) backend.StridedCopy(read, x.Buffer, y.Buffer);
            else if (!crops) backend.StridedScatter(x.Buffer, write, y.Buffer);
            else
            {
                using var part = backend.Allocate<T>(region.Length);
                backend.StridedCopy(read, x.Buffer, part);
                backend.StridedScatter(part, write, y.Buffer);
            }
        }
        int[] undoBefore = before.Select(p => -p).ToArray(), undoAfter = after.Select(p => -p).ToArray();
        return Graph.Record(y, "pad", [x], dy => [dy.Pad(undoBefore, undoAfter, T.Zero)]);
    }

    /// <summary>The elements x[start_a + step_a · i_a] for i_a in [0, <paramref name="counts"/>[a]) on every axis a:
    /// a strided slice (a negative step walks the axis backwards), as ONNX Slice with its starts, ends and steps
    /// resolved to counts. At most <see cref="StridedLayout.MaxRank"/> axes. Backward: the gradient written back to
    /// the sliced positions, zeros elsewhere.</summary>
    /// <exception cref="ArgumentException">The arguments are not one per axis, a step is 0, a count is negative, or
    /// a slice with elements starts or ends outside its axis.</exception>
    public Tensor<T> Slice(int[] starts, int[] steps, int[] counts)
    {
        var x = this;
        var layout = SliceLayout(x.Shape, starts, steps, counts);
        var y = new Tensor<T>(Device, counts);
        Device.Backend.StridedCopy(layout, x.Buffer, y.Buffer);
        return Graph.Record(y, "slice", [x], dy => [dy.Unslice(x.Shape, layout, starts, steps, counts)]);
    }

    /// <summary>Slice's backward: zeros of <paramref name="shape"/> with this tensor scattered to the sliced
    /// positions; its own backward is the slice.</summary>
    private Tensor<T> Unslice(Shape shape, StridedLayout layout, int[] starts, int[] steps, int[] counts)
    {
        var dy = this;
        var dx = new Tensor<T>(Device, shape);
        Device.Backend.Fill(dx.Buffer, T.Zero);
        Device.Backend.StridedScatter(dy.Buffer, layout, dx.Buffer);
        return Graph.Record(dx, "slice backward", [dy], ddx => [ddx.Slice(starts, steps, counts)]);
    }

    /// <summary>The layout that reads a slice of a dense tensor of <paramref name="shape"/>, checked.</summary>
    private static StridedLayout SliceLayout(Shape shape, int[] starts, int[] steps, int[] counts)
    {
        int rank = shape.Rank;
        string Arguments() => $"starts [{string.Join(", ", starts)}], steps [{string.Join(", ", steps)}], counts " +
                              $"[{string.Join(", ", counts)}]";
        if (starts.Length != rank || steps.Length != rank || counts.Length != rank)
            throw new ArgumentException($"slice: {Arguments()} must give one value per axis of {shape}.");
        if (rank > StridedLayout.MaxRank)
            throw new ArgumentException($"slice: {shape} has {rank} axes; at most {StridedLayout.MaxRank} are supported.");
        var dense = StridedLayout.Dense(shape.ToArray());
        var strides = new int[rank];
        long origin = 0;
        bool empty = counts.Contains(0);
        for (int a = 0; a < rank; a++)
        {
            if (steps[a] == 0 || counts[a] < 0)
                throw new ArgumentException($"slice: {Arguments()}: axis {a} has a step of 0 or a negative count.");
            long last = starts[a] + (long)steps[a] * (counts[a] - 1);
            bool startOutside = starts[a] < 0 || starts[a] >= shape[a];
            if (!empty && (startOutside || last < 0 || last >= shape[a]))
                throw new ArgumentException($"slice: {Arguments()}: axis {a} reads index " +
                                            $"{(startOutside ? starts[a] : last)}, outside [0, {shape[a]}) of {shape}.");
            strides[a] = counts[a] > 1 ? steps[a] * dense.Stride(a) : 0;
            if (!empty) origin += (long)starts[a] * dense.Stride(a);
        }
        return new StridedLayout(counts, strides, (int)origin);
    }
}
