// Elementwise ops on the CPU: fill, the scalar broadcast that sum/mean backward use, and one generic loop per arity
// (Map, Zip) that serves every op of ElementwiseOps.cs with its Vector256 form and a scalar tail (memory-bound, so
// wider vectors buy nothing); the JIT specialises one loop per (T, op). All buffers are flat with n elements; the
// output may alias an input. Tasks are fixed chunks of ChunkLength elements.
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Elements per task of a streaming op (128 KiB of floats).</summary>
    private const int ChunkLength = 1 << 15;

    private static int ChunkCount(long n) => (int)((n + ChunkLength - 1) / ChunkLength);

    /// <inheritdoc/>
    protected override void FillCore<T>(DeviceBuffer<T> y, T value) => MapCore(y, new FillOp<T>(value), y);

    /// <inheritdoc/>
    protected override void BroadcastScalarCore<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y) =>
        MapCore(y, new FillOp<T>(alpha * Data(scalar)[0]), y);

    /// <inheritdoc/>
    protected override void MapCore<T, TOp>(DeviceBuffer<T> x, TOp op, DeviceBuffer<T> y)
    {
        var job = new UnaryJob<T, TOp> { X = Data(x), Y = Data(y), Length = y.Length, Op = op };
        Parallel(ChunkCount(y.Length), ref job);
    }

    /// <inheritdoc/>
    protected override void ZipCore<T, TOp>(DeviceBuffer<T> a, DeviceBuffer<T> b, TOp op, DeviceBuffer<T> y)
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
