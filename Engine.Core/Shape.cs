// Shape: the dimensions of a tensor, outermost first (NCHW for images). Immutable; rank 0 is a scalar of one element.
using System.Collections;
using System.Runtime.CompilerServices;

namespace Engine.Core;

[CollectionBuilder(typeof(Shape), nameof(Create))]
public sealed class Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[] _dims;

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

    public static Shape Create(ReadOnlySpan<int> dims) => new(dims);

    public static implicit operator Shape(int[] dims) => new(dims);

    /// <summary>The scalar shape [] (one element).</summary>
    public static Shape Scalar { get; } = new();

    public int Rank => _dims.Length;

    /// <summary>Number of elements: the product of the dimensions.</summary>
    public long Length { get; }

    public int this[int axis] => _dims[axis];

    public int Count => _dims.Length;

    public int[] ToArray() => (int[])_dims.Clone();

    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims);

    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in _dims) hash.Add(d);
        return hash.ToHashCode();
    }

    public static bool operator ==(Shape? a, Shape? b) => a is null ? b is null : a.Equals(b);

    public static bool operator !=(Shape? a, Shape? b) => !(a == b);

    public override string ToString() => Format(_dims);

    private static string Format(ReadOnlySpan<int> dims) => "[" + string.Join(", ", dims.ToArray()) + "]";

    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)_dims).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
