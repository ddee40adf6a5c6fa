// Data movement by an index map, with its gradient: y[i] = x[source[i]], or a fill value where source[i] is −1.
// One op serves the importer's rearrangements that the strided device ops do not cover — constant padding (and
// cropping) and slicing with any step, negative ones included — each described by the map its caller builds.
// It runs on the host (one copy down and one up), so it suits the small tensors and occasional layers of imported
// graphs rather than a hot loop; the backward scatters dy back and sums where one source fed several outputs.
using Engine.Core.Autograd;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>y [<paramref name="shape"/>] with y[i] = x[<paramref name="source"/>[i]] (row-major flat
    /// indices), or <paramref name="fill"/> where the index is −1. Backward: dx[source[i]] += dy[i].</summary>
    /// <exception cref="ArgumentException">The map's length is not the shape's, or an index is outside x.</exception>
    internal Tensor<T> Remap(string op, Shape shape, int[] source, T fill)
    {
        var x = this;
        if (source.Length != shape.Length)
            throw new ArgumentException($"{op}: an index map of {source.Length} entries for an output of shape {shape}.");
        foreach (int index in source)
            if (index < -1 || index >= x.Length)
                throw new ArgumentException($"{op}: index {index} is outside the input {x.Shape}.");
        var values = x.ToArray();
        var result = Tensor.HostArray<T>(shape);
        for (int i = 0; i < result.Length; i++) result[i] = source[i] < 0 ? fill : values[source[i]];
        var y = Tensor.FromArray(result, shape, Device);
        return Graph.Record(y, op, [x], dy =>
        {
            var upstream = dy.ToArray();
            var dx = Tensor.HostArray<T>(x.Shape);
            for (int i = 0; i < upstream.Length; i++)
                if (source[i] >= 0) dx[source[i]] += upstream[i];
            return [Tensor.FromArray(dx, x.Shape, dy.Device)];
        });
    }
}
