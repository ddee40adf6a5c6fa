// The strided ops on the CPU (layouts in StridedLayout.cs): a gather (permute, broadcast expansion, slice), its
// inverse the scatter, a binary op over two strided operands (broadcasting) and a sum over the reduced axes of a
// layout. Each walks its layout row by
// row: one Offset per row of the innermost axis, then a plain loop along it with that axis's stride. Tasks own
// fixed ranges of output rows (or outputs, for the sum), and each output is summed by one task in the order
// r = 0, 1, …, so the bits never depend on the thread count.
using System.Numerics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void StridedCopyCore<T>(StridedLayout layout, DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        var job = new StridedCopyJob<T> { Layout = layout, X = Data(x), Y = Data(y), Rows = RowsPerTask(layout) };
        Parallel(TaskCount(layout.Length / layout.E5, job.Rows), ref job);
    }

    /// <inheritdoc/>
    protected override void StridedScatterCore<T>(DeviceBuffer<T> x, StridedLayout layout, DeviceBuffer<T> y)
    {
        var job = new StridedScatterJob<T> { Layout = layout, X = Data(x), Y = Data(y), Rows = RowsPerTask(layout) };
        Parallel(TaskCount(layout.Length / layout.E5, job.Rows), ref job);
    }

    /// <inheritdoc/>
    protected override void StridedZipCore<T, TOp>(StridedLayout aLayout, DeviceBuffer<T> a, StridedLayout bLayout,
        DeviceBuffer<T> b, TOp op, DeviceBuffer<T> y)
    {
        var job = new StridedZipJob<T, TOp>
        {
            ALayout = aLayout, BLayout = bLayout, A = Data(a), B = Data(b), Y = Data(y), Op = op,
            Rows = RowsPerTask(aLayout),
        };
        Parallel(TaskCount(aLayout.Length / aLayout.E5, job.Rows), ref job);
    }

    /// <inheritdoc/>
    protected override void StridedSumCore<T>(StridedLayout kept, StridedLayout reduced, DeviceBuffer<T> x, T alpha,
        DeviceBuffer<T> y)
    {
        var job = new StridedSumJob<T>
        {
            Kept = kept, Reduced = reduced, X = Data(x), Y = Data(y), Alpha = alpha,
            Outputs = (int)Math.Max(1, ChunkLength / reduced.Length),
        };
        Parallel(TaskCount(kept.Length, job.Outputs), ref job);
    }

    /// <summary>Rows of the innermost axis per task: about <see cref="ChunkLength"/> elements.</summary>
    private static int RowsPerTask(StridedLayout layout) => Math.Max(1, ChunkLength / layout.E5);

    private static int TaskCount(long items, int perTask) => (int)((items + perTask - 1) / perTask);

    /// <summary>y[i] = x[layout.Offset(i)] over rows [task·Rows, (task + 1)·Rows).</summary>
    private struct StridedCopyJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public StridedLayout Layout;
        public T* X, Y;
        public int Rows;

        public void Execute(int task, int worker)
        {
            int width = Layout.E5, step = Layout.S5;
            long rows = Layout.Length / width;
            for (long row = (long)task * Rows, end = Math.Min(rows, row + Rows); row < end; row++)
            {
                T* x = X + Layout.Offset((int)(row * width));
                T* y = Y + row * width;
                for (int j = 0; j < width; j++) y[j] = x[(long)j * step];
            }
        }
    }

    /// <summary>y[layout.Offset(i)] = x[i] over rows [task·Rows, (task + 1)·Rows); the layout is one-to-one, so
    /// tasks write disjoint elements.</summary>
    private struct StridedScatterJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public StridedLayout Layout;
        public T* X, Y;
        public int Rows;

        public void Execute(int task, int worker)
        {
            int width = Layout.E5, step = Layout.S5;
            long rows = Layout.Length / width;
            for (long row = (long)task * Rows, end = Math.Min(rows, row + Rows); row < end; row++)
            {
                T* x = X + row * width;
                T* y = Y + Layout.Offset((int)(row * width));
                for (int j = 0; j < width; j++) y[(long)j * step] = x[j];
            }
        }
    }

    /// <summary>y[i] = op(a[aLayout.Offset(i)], b[bLayout.Offset(i)]) over rows [task·Rows,
    /// (task + 1)·Rows).</summary>
    private struct StridedZipJob<T, TOp> : IParallelJob
        where T : unmanaged, IFloatingPointIeee754<T> where TOp : struct, IBinaryOp<T>
    {
        public StridedLayout ALayout, BLayout;
        public T* A, B, Y;
        public TOp Op;
        public int Rows;

        public void Execute(int task, int worker)
        {
            int width = ALayout.E5, aStep = ALayout.S5, bStep = BLayout.S5;
            long rows = ALayout.Length / width;
            for (long row = (long)task * Rows, end = Math.Min(rows, row + Rows); row < end; row++)
            {
                int first = (int)(row * width);
                T* a = A + ALayout.Offset(first), b = B + BLayout.Offset(first), y = Y + first;
                for (int j = 0; j < width; j++) y[j] = Op.Apply(a[(long)j * aStep], b[(long)j * bStep]);
            }
        }
    }

    /// <summary>y[j] = alpha · Σ_r x[kept.Offset(j) + reduced.Offset(r)] for outputs [task·Outputs,
    /// (task + 1)·Outputs), r in order.</summary>
    private struct StridedSumJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public StridedLayout Kept, Reduced;
        public T* X, Y;
        public T Alpha;
        public int Outputs;

        public void Execute(int task, int worker)
        {
            int width = Reduced.E5, step = Reduced.S5;
            long rows = Reduced.Length / width;
            for (long j = (long)task * Outputs, end = Math.Min(Kept.Length, j + Outputs); j < end; j++)
            {
                T* x = X + Kept.Offset((int)j);
                T sum = T.Zero;
                for (long row = 0; row < rows; row++)
                {
                    T* source = x + Reduced.Offset((int)(row * width));
                    for (int r = 0; r < width; r++) sum += source[(long)r * step];
                }
                Y[j] = Alpha * sum;
            }
        }
    }
}
