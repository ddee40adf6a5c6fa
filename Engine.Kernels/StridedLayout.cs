// StridedLayout: how the strided ops (Backend's "strided" section) walk a flat buffer. A layout is up to six
// extents with one stride per extent, in elements, outermost first, and an origin: element i of the layout (i
// counted row-major over the extents) lives at origin + Σ index_d · stride_d. Stride 0 repeats an element along an
// axis (broadcasting); permuted strides read a permuted tensor; an origin with larger or negative strides reads a
// window, every k-th element or a reversed axis (slicing). Layouts are small values passed to kernels by value:
// the extents and strides are fields padded at the front with extent 1 and stride 0, so a kernel decomposes an
// index with straight-line code (no arrays, nothing in local memory). Backend checks a layout against its buffer
// before any kernel sees it.
using System.Text;

namespace Engine.Kernels;

/// <summary>Up to <see cref="MaxRank"/> extents with one stride each (in elements, outermost first) and an origin:
/// element i, counted row-major over the extents, lives at offset Origin + Σ index_d · stride_d of a flat buffer.
/// Stride 0 broadcasts an axis; permuted strides permute a tensor; an origin with steps (negative ones too) slices
/// it. Checked by <see cref="Backend"/> against its buffer.</summary>
public readonly struct StridedLayout : IEquatable<StridedLayout>
{
    /// <summary>The most axes a layout holds.</summary>
    public const int MaxRank = 6;

    // Extents E0..E5 and strides S0..S5, outermost first, padded at the front with extent 1 and stride 0.
    internal readonly int E0, E1, E2, E3, E4, E5;
    internal readonly int S0, S1, S2, S3, S4, S5;

    /// <summary>The offset of element 0.</summary>
    public readonly int Origin;

    /// <summary>The number of axes given at construction (0 for a single element).</summary>
    public readonly int Rank;

    /// <summary>A layout of <paramref name="extents"/> read with <paramref name="strides"/>, both outermost
    /// first, element 0 at offset <paramref name="origin"/>.</summary>
    /// <exception cref="ArgumentException">The spans differ in length or hold more than <see cref="MaxRank"/>
    /// axes.</exception>
    public StridedLayout(ReadOnlySpan<int> extents, ReadOnlySpan<int> strides, int origin = 0)
    {
        Origin = origin;
        if (extents.Length != strides.Length)
            throw new ArgumentException($"strided layout: {extents.Length} extents {Format(extents)} but " +
                                        $"{strides.Length} strides {Format(strides)}.");
        if (extents.Length > MaxRank)
            throw new ArgumentException($"strided layout: extents {Format(extents)} have {extents.Length} axes; at " +
                                        $"most {MaxRank} are supported.");
        Span<int> e = stackalloc int[MaxRank], s = stackalloc int[MaxRank];
        e.Fill(1);
        s.Clear();
        int pad = MaxRank - extents.Length;
        extents.CopyTo(e[pad..]);
        strides.CopyTo(s[pad..]);
        (E0, E1, E2, E3, E4, E5) = (e[0], e[1], e[2], e[3], e[4], e[5]);
        (S0, S1, S2, S3, S4, S5) = (s[0], s[1], s[2], s[3], s[4], s[5]);
        Rank = extents.Length;
    }

    /// <summary>A dense row-major layout of <paramref name="extents"/> (each stride the product of the extents
    /// inside it).</summary>
    /// <exception cref="ArgumentException">More than <see cref="MaxRank"/> axes.</exception>
    public static StridedLayout Dense(ReadOnlySpan<int> extents)
    {
        Span<int> strides = stackalloc int[extents.Length];
        long stride = 1;
        for (int d = extents.Length - 1; d >= 0; d--)
        {
            strides[d] = (int)Math.Min(stride, int.MaxValue);
            stride *= Math.Max(extents[d], 1);
        }
        return new StridedLayout(extents, strides);
    }

    /// <summary>The extent of <paramref name="axis"/> in [0, Rank).</summary>
    public int Extent(int axis) => Padded(axis, E0, E1, E2, E3, E4, E5);

    /// <summary>The stride of <paramref name="axis"/> in [0, Rank).</summary>
    public int Stride(int axis) => Padded(axis, S0, S1, S2, S3, S4, S5);

    /// <summary>The number of elements: the product of the extents (1 for rank 0, 0 for the default
    /// value).</summary>
    public long Length => Rank == 0 && E5 == 0 ? 0 : (long)E0 * E1 * E2 * E3 * E4 * E5;

    /// <summary>The largest offset any element reads, Origin + Σ (extent − 1) · max(stride, 0), for a non-empty
    /// layout with non-negative extents.</summary>
    internal long MaxOffset => Origin + Reach(positive: true);

    /// <summary>The smallest offset any element reads, Origin + Σ (extent − 1) · min(stride, 0), for a non-empty
    /// layout with non-negative extents.</summary>
    internal long MinOffset => Origin + Reach(positive: false);

    private long Reach(bool positive)
    {
        long reach = 0;
        for (int d = 0; d < MaxRank; d++)
        {
            long stride = PaddedStride(d);
            if (positive == stride > 0) reach += (Padded(d) - 1L) * stride;
        }
        return reach;
    }

    /// <summary>Whether no two elements share an offset, by a sufficient rule: ordered by |stride|, each axis of
    /// extent above 1 steps past everything the axes inside it reach (as any slice or permutation of a dense
    /// tensor). A layout that broadcasts (stride 0 on an axis of extent above 1) is not.</summary>
    internal bool IsOneToOne()
    {
        Span<long> steps = stackalloc long[MaxRank];
        Span<long> spans = stackalloc long[MaxRank];
        int count = 0;
        for (int d = 0; d < MaxRank; d++)
            if (Padded(d) > 1)
            {
                steps[count] = Math.Abs((long)PaddedStride(d));
                spans[count++] = (Padded(d) - 1L) * Math.Abs((long)PaddedStride(d));
            }
        steps[..count].Sort(spans[..count]);
        long reach = 0;
        for (int k = 0; k < count; k++)
        {
            if (steps[k] <= reach) return false;
            reach += spans[k];
        }
        return true;
    }

    /// <summary>The offset of element <paramref name="index"/> (in [0, Length), checked extents), Origin
    /// included: peels the
    /// axes off from the innermost, straight-line so kernels keep it in registers.</summary>
    public int Offset(int index)
    {
        int q = index / E5, offset = (index - q * E5) * S5;
        index = q;
        q = index / E4;
        offset += (index - q * E4) * S4;
        index = q;
        q = index / E3;
        offset += (index - q * E3) * S3;
        index = q;
        q = index / E2;
        offset += (index - q * E2) * S2;
        index = q;
        q = index / E1;
        offset += (index - q * E1) * S1;
        return Origin + offset + q * S0;
    }

    /// <summary>The extents in brackets, then the strides and a non-zero origin, e.g. <c>extents [2, 3] strides
    /// [3, 1]</c>.</summary>
    public override string ToString()
    {
        var builder = new StringBuilder("extents [");
        for (int d = 0; d < Rank; d++) builder.Append(d > 0 ? ", " : "").Append(Extent(d));
        builder.Append("] strides [");
        for (int d = 0; d < Rank; d++) builder.Append(d > 0 ? ", " : "").Append(Stride(d));
        builder.Append(']');
        return (Origin != 0 ? builder.Append(" origin ").Append(Origin) : builder).ToString();
    }

    /// <summary>The extents alone in brackets, e.g. <c>[2, 3]</c>.</summary>
    internal string ExtentsText()
    {
        Span<int> e = stackalloc int[Rank];
        for (int d = 0; d < Rank; d++) e[d] = Extent(d);
        return Format(e);
    }

    /// <summary>True when both layouts cover the same padded extents (the same elements in the same
    /// order).</summary>
    internal bool SameExtents(StridedLayout other) =>
        Length == other.Length && E0 == other.E0 && E1 == other.E1 && E2 == other.E2 && E3 == other.E3 &&
        E4 == other.E4 && E5 == other.E5;

    /// <summary>Equal rank, extents, strides and origin.</summary>
    public bool Equals(StridedLayout other) =>
        Rank == other.Rank && Origin == other.Origin && SameExtents(other) && S0 == other.S0 && S1 == other.S1 && S2 == other.S2 &&
        S3 == other.S3 && S4 == other.S4 && S5 == other.S5;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is StridedLayout other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() =>
        HashCode.Combine(HashCode.Combine(E0, E1, E2, E3, E4, E5), HashCode.Combine(S0, S1, S2, S3, S4, S5), Rank, Origin);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(StridedLayout a, StridedLayout b) => a.Equals(b);

    /// <summary>Negation of <c>==</c>.</summary>
    public static bool operator !=(StridedLayout a, StridedLayout b) => !a.Equals(b);

    /// <summary>Merges axes that every one of <paramref name="layouts"/> (same extents) walks as one: drops extent-1
    /// axes and joins an axis to the one inside it when each layout's stride is the inner stride times the inner
    /// extent (negative strides alike). The element order and every offset stay the same; kernels then divide less.
    /// </summary>
    internal static void Collapse(Span<StridedLayout> layouts)
    {
        Span<int> extents = stackalloc int[MaxRank];
        Span<int> strides = stackalloc int[MaxRank * 2];   // at most two layouts are collapsed together
        int rank = 0;                                       // axes kept, built innermost first
        for (int d = MaxRank - 1; d >= 0; d--)
        {
            int extent = layouts[0].Padded(d);
            if (extent == 1) continue;
            bool merge = rank > 0;
            for (int k = 0; k < layouts.Length && merge; k++)
                merge = (long)strides[k * MaxRank + rank - 1] * extents[rank - 1] == layouts[k].PaddedStride(d);
            if (merge)
            {
                extents[rank - 1] *= extent;
                continue;
            }
            extents[rank] = extent;
            for (int k = 0; k < layouts.Length; k++) strides[k * MaxRank + rank] = layouts[k].PaddedStride(d);
            rank++;
        }
        extents[..rank].Reverse();
        for (int k = 0; k < layouts.Length; k++)
        {
            var layoutStrides = strides.Slice(k * MaxRank, rank);
            layoutStrides.Reverse();
            layouts[k] = new StridedLayout(extents[..rank], layoutStrides, layouts[k].Origin);
        }
    }

    private int Padded(int d) => d switch { 0 => E0, 1 => E1, 2 => E2, 3 => E3, 4 => E4, _ => E5 };

    private int PaddedStride(int d) => d switch { 0 => S0, 1 => S1, 2 => S2, 3 => S3, 4 => S4, _ => S5 };

    private int Padded(int axis, int e0, int e1, int e2, int e3, int e4, int e5)
    {
        if ((uint)axis >= (uint)Rank)
            throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is outside [0, {Rank}).");
        return (axis + MaxRank - Rank) switch { 0 => e0, 1 => e1, 2 => e2, 3 => e3, 4 => e4, _ => e5 };
    }

    private static string Format(ReadOnlySpan<int> values) => "[" + string.Join(", ", values.ToArray()) + "]";
}
