// Elementwise ops, each defined once as a struct: a scalar Apply (run by the ILGPU kernels and by the CPU backend's
// scalar tails) and a Vector256 Apply (the CPU backend's SIMD body), computing the same value per element. One
// generic kernel per arity and backend serves them all (Backend.Map / Backend.Zip); the JIT and ILGPU specialise it
// per (T, op). Adding an op is a struct here plus its autograd wrapper in Engine.Core/Ops/Elementwise.cs.
//
// NaN: ReLU propagates it (as PyTorch), and its backward gives 0 where ReLU's output is NaN (PyTorch's
// threshold_backward). The SIMD max instructions drop a NaN operand, so ReLU is a compare and a blend instead.
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels;

/// <summary>A function of one element, applied by <see cref="Backend.Map{T, TOp}"/>; passed by value, so it can
/// carry a scalar such as alpha.</summary>
public interface IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The result for element <paramref name="x"/>.</summary>
    T Apply(T x);

    /// <summary>The results for <see cref="Vector256{T}.Count"/> elements; element i equals Apply(x[i]).</summary>
    Vector256<T> Apply(Vector256<T> x);
}

/// <summary>A function of two elements at the same index, applied by <see cref="Backend.Zip{T, TOp}"/>.</summary>
public interface IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The result for elements <paramref name="a"/> and <paramref name="b"/>.</summary>
    T Apply(T a, T b);

    /// <summary>The results for <see cref="Vector256{T}.Count"/> pairs; element i equals Apply(a[i], b[i]).</summary>
    Vector256<T> Apply(Vector256<T> a, Vector256<T> b);
}

/// <summary>value, whatever the element (fill).</summary>
/// <param name="value">The value written.</param>
public readonly struct FillOp<T>(T value) : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _value = value;

    /// <inheritdoc/>
    public T Apply(T x) => _value;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> x) => Vector256.Create(_value);
}

/// <summary>x (copy).</summary>
public readonly struct IdentityOp<T> : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T x) => x;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> x) => x;
}

/// <summary>alpha · x.</summary>
/// <param name="alpha">The scale factor.</param>
public readonly struct ScaleOp<T>(T alpha) : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = alpha;

    /// <inheritdoc/>
    public T Apply(T x) => _alpha * x;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> x) => Vector256.Create(_alpha) * x;
}

/// <summary>max(x, 0) that propagates NaN (as PyTorch): 0 where x ≤ 0, which is false for NaN, else x.</summary>
public readonly struct ReluOp<T> : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T x) => x <= T.Zero ? T.Zero : x;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> x) =>
        Vector256.ConditionalSelect(Vector256.LessThanOrEqual(x, Vector256<T>.Zero), Vector256<T>.Zero, x);
}

/// <summary>a + b.</summary>
public readonly struct AddOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T a, T b) => a + b;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) => a + b;
}

/// <summary>a · b.</summary>
public readonly struct MultiplyOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T a, T b) => a * b;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) => a * b;
}

/// <summary>alpha · a + b (not fused, as on every backend).</summary>
/// <param name="alpha">The factor of a.</param>
public readonly struct AxpyOp<T>(T alpha) : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = alpha;

    /// <inheritdoc/>
    public T Apply(T a, T b) => _alpha * a + b;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) => Vector256.Create(_alpha) * a + b;
}

/// <summary>a is ReLU's output, b the output gradient: b where a &gt; 0, else 0 (also where a is NaN, as PyTorch's
/// threshold backward).</summary>
public readonly struct ReluBackwardOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <inheritdoc/>
    public T Apply(T a, T b) => a > T.Zero ? b : T.Zero;

    /// <inheritdoc/>
    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(a, Vector256<T>.Zero), b, Vector256<T>.Zero);
}
