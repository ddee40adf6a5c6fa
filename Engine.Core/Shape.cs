// Shape: the dimensions of a tensor, outermost first (NCHW for images). Immutable; rank 0 is a scalar of one element.
using System.Collections;
using System.Runtime.CompilerServices;

namespace Engine.Core;

/// <summary>The dimensions of a tensor, outermost first (NCHW for images); immutable and compared by value, as
/// torch.Size. Written as a collection expression (<c>Shape s = [2, 3];</c>) or converted from an int array.</summary>
[CollectionBuilder(typeof(Shape), nameof(Create))]
public sealed class Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[] _dims;

    /// <summary>A shape with the given dimensions; none gives the scalar shape.</summary>
    /// <exception cref="ArgumentException">A dimension is negative.</exception>
    /// <exception cref="OverflowException">The element count overflows a long.</exception>
    public Shape(params ReadOnlySpan<int> dims)
    {
        foreach (int d in dims)
            if (d < 0)
                throw new ArgumentException($"Shape dimensions must be non-negative; got {Format(dims)}.");
        _dims = dims.ToArray();
        long length = 1;
        foreach (int d in _dims) length = checked(length * d);
        Length = length;
    }

    /// <summary>The builder behind collection expressions; same as the constructor.</summary>
    public static Shape Create(ReadOnlySpan<int> dims) => new(dims);

    /// <summary>A shape from an array of dimensions (copied); same checks as the constructor.</summary>
    public static implicit operator Shape(int[] dims) => new(dims);

    /// <summary>The scalar shape [] (one element).</summary>
    public static Shape Scalar { get; } = new();

    /// <summary>Number of dimensions (0 for a scalar).</summary>
    public int Rank => _dims.Length;

    /// <summary>Number of elements: the product of the dimensions.</summary>
    public long Length { get; }

    /// <summary>The size of dimension <paramref name="axis"/> (0 = outermost; no negative indexing).</summary>
    /// <exception cref="IndexOutOfRangeException"><paramref name="axis"/> is not in [0, Rank).</exception>
    public int this[int axis] => _dims[axis];

    /// <summary>Number of dimensions, as <see cref="Rank"/> (the <see cref="IReadOnlyCollection{T}"/> count, not the
    /// element count: that is <see cref="Length"/>).</summary>
    public int Count => _dims.Length;

    /// <summary>A copy of the dimensions.</summary>
    public int[] ToArray() => (int[])_dims.Clone();

    /// <summary>True when <paramref name="other"/> has the same dimensions in the same order.</summary>
    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in _dims) hash.Add(d);
        return hash.ToHashCode();
    }

    /// <summary>Dimension-wise equality; two nulls are equal.</summary>
    public static bool operator ==(Shape? a, Shape? b) => a is null ? b is null : a.Equals(b);

    /// <summary>Negation of <c>==</c>.</summary>
    public static bool operator !=(Shape? a, Shape? b) => !(a == b);

    /// <summary>The dimensions in brackets, e.g. <c>[64, 3, 32, 32]</c>; <c>[]</c> for a scalar.</summary>
    public override string ToString() => Format(_dims);

    private static string Format(ReadOnlySpan<int> dims) => "[" + string.Join(", ", dims.ToArray()) + "]";

    /// <summary>The dimensions, outermost first.</summary>
    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)_dims).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
