// Elementwise ops: fill, copy, add, multiply, scale, axpy, ReLU forward and backward, and the scalar broadcast
// that sum/mean backward use. All buffers are flat with n elements; the output may alias an input.
//
// One generic loop per arity serves every op: the op is a struct implementing IUnaryOp/IBinaryOp with a scalar
// and a Vector256 form (memory-bound, so wider vectors buy nothing), and the JIT specialises one loop per
// (T, op). Tasks are fixed chunks of ChunkLength elements.
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

internal interface IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    T Apply(T x);
    Vector256<T> Apply(Vector256<T> x);
}

internal interface IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    T Apply(T a, T b);
    Vector256<T> Apply(Vector256<T> a, Vector256<T> b);
}

internal readonly struct FillOp<T>(T value) : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _value = value;
    public T Apply(T x) => _value;
    public Vector256<T> Apply(Vector256<T> x) => Vector256.Create(_value);
}

internal readonly struct IdentityOp<T> : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public T Apply(T x) => x;
    public Vector256<T> Apply(Vector256<T> x) => x;
}

internal readonly struct ScaleOp<T>(T alpha) : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = alpha;
    public T Apply(T x) => _alpha * x;
    public Vector256<T> Apply(Vector256<T> x) => Vector256.Create(_alpha) * x;
}

/// <summary>max(x, 0) that propagates NaN (as PyTorch): 0 where x ≤ 0, which is false for NaN, else x. One
/// compare and a blend, since the SIMD max instructions drop a NaN operand.</summary>
internal readonly struct ReluOp<T> : IUnaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public T Apply(T x) => x <= T.Zero ? T.Zero : x;

    public Vector256<T> Apply(Vector256<T> x) =>
        Vector256.ConditionalSelect(Vector256.LessThanOrEqual(x, Vector256<T>.Zero), Vector256<T>.Zero, x);
}

internal readonly struct AddOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public T Apply(T a, T b) => a + b;
    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) => a + b;
}

internal readonly struct MultiplyOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public T Apply(T a, T b) => a * b;
    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) => a * b;
}

/// <summary>alpha * a + b (not fused, as on every backend).</summary>
internal readonly struct AxpyOp<T>(T alpha) : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _alpha = alpha;
    public T Apply(T a, T b) => _alpha * a + b;
    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) => Vector256.Create(_alpha) * a + b;
}

/// <summary>a is ReLU's output, b the output gradient: b where a &gt; 0, else 0 (also where a is NaN, as PyTorch's
/// threshold backward).</summary>
internal readonly struct ReluBackwardOp<T> : IBinaryOp<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public T Apply(T a, T b) => a > T.Zero ? b : T.Zero;

    public Vector256<T> Apply(Vector256<T> a, Vector256<T> b) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(a, Vector256<T>.Zero), b, Vector256<T>.Zero);
}

public sealed unsafe partial class CpuBackend
{
    /// <summary>Elements per task of a streaming op (128 KiB of floats).</summary>
    private const int ChunkLength = 1 << 15;

    private static int ChunkCount(long n) => (int)((n + ChunkLength - 1) / ChunkLength);

    /// <inheritdoc/>
    protected override void FillCore<T>(DeviceBuffer<T> y, T value)
    {
        RunUnary(y, y, new FillOp<T>(value));
    }

    /// <inheritdoc/>
    protected override void CopyCore<T>(DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        RunUnary(x, y, new IdentityOp<T>());
    }

    /// <inheritdoc/>
    protected override void ScaleCore<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> y)
    {
        RunUnary(x, y, new ScaleOp<T>(alpha));
    }

    /// <inheritdoc/>
    protected override void ReluCore<T>(DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        RunUnary(x, y, new ReluOp<T>());
    }

    /// <inheritdoc/>
    protected override void AddCore<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y)
    {
        RunBinary(a, b, y, new AddOp<T>());
    }

    /// <inheritdoc/>
    protected override void MultiplyCore<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y)
    {
        RunBinary(a, b, y, new MultiplyOp<T>());
    }

    /// <inheritdoc/>
    protected override void AxpyCore<T>(T alpha, DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        RunBinary(x, y, y, new AxpyOp<T>(alpha));
    }

    /// <inheritdoc/>
    protected override void ReluBackwardCore<T>(DeviceBuffer<T> y, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
    {
        RunBinary(y, dy, dx, new ReluBackwardOp<T>());
    }

    /// <inheritdoc/>
    protected override void BroadcastScalarCore<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y)
    {
        RunUnary(y, y, new FillOp<T>(alpha * Data(scalar)[0]));
    }

    private void RunUnary<T, TOp>(DeviceBuffer<T> x, DeviceBuffer<T> y, TOp op)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T>
    {
        var job = new UnaryJob<T, TOp> { X = Data(x), Y = Data(y), Length = y.Length, Op = op };
        Parallel(ChunkCount(y.Length), ref job);
    }

    private void RunBinary<T, TOp>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y, TOp op)
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        var job = new BinaryJob<T, TOp> { A = Data(a), B = Data(b), Y = Data(y), Length = y.Length, Op = op };
        Parallel(ChunkCount(y.Length), ref job);
    }

    /// <summary>y[i] = op(x[i]) over one chunk.</summary>
    private struct UnaryJob<T, TOp> : IParallelJob
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IUnaryOp<T>
    {
        public T* X, Y;
        public long Length;
        public TOp Op;

        public void Execute(int task, int worker)
        {
            long i = (long)task * ChunkLength, end = Math.Min(Length, i + ChunkLength);
            for (; i + Vector256<T>.Count <= end; i += Vector256<T>.Count)
                Op.Apply(Vector256.Load(X + i)).Store(Y + i);
            for (; i < end; i++)
                Y[i] = Op.Apply(X[i]);
        }
    }

    /// <summary>y[i] = op(a[i], b[i]) over one chunk.</summary>
    private struct BinaryJob<T, TOp> : IParallelJob
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        public T* A, B, Y;
        public long Length;
        public TOp Op;

        public void Execute(int task, int worker)
        {
            long i = (long)task * ChunkLength, end = Math.Min(Length, i + ChunkLength);
            for (; i + Vector256<T>.Count <= end; i += Vector256<T>.Count)
                Op.Apply(Vector256.Load(A + i), Vector256.Load(B + i)).Store(Y + i);
            for (; i < end; i++)
                Y[i] = Op.Apply(A[i], B[i]);
        }
    }
}
