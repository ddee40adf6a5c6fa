// The tiled matrix multiply that every dense op of the ILGPU backend runs on: Gemm (linear layers) and the
// three convolution passes (implicit GEMM, Convolution.cs).
//
// C[m, n] = Σ_k A[m, k] · B[k, n], where A and B are *loaders* (structs that compute an element from a tensor:
// a plain row-major matrix, or an im2col gather for a convolution that is never materialised) and C a *store*
// (row-major with alpha/beta, or an NCHW scatter with bias).
//
// Launch shape: a 2-D grid of groups of GX × GY threads (16 × 16 on a GPU; as large as the device allows on the
// CPU accelerator). A group computes a BM × BN = 4·GX × 4·GY block of C; each thread a 4 × 4 register tile in 16
// scalar accumulators (rows tx + i·GX, columns ty + j·GY, so neighbouring threads touch neighbouring rows:
// coalesced loads of the gathered A and stores of C). K advances in steps of KTile: the group stages a KTile × BM
// slice of A and a KTile × BN slice of B in shared memory (dynamic, sized at launch), synchronises, and every
// thread runs the KTile-step product from shared memory with its inner loop unrolled by hand (ILGPU does not
// unroll loops). Elements outside the matrices load as zero; stores are guarded.
//
// Split-K: when C has too few tiles to fill the device and K is deep (a convolution's weight gradient reduces over
// N·OH·OW pixels into a small K×CRS matrix), the grid's z dimension splits K into equal ranges; each writes its
// partial product to a scratch buffer, and SumSplits adds the partials in split order before the real store —
// deterministic, no atomics.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>Produces element (row, col) of a matrix operand; called only with row and col in range.</summary>
public interface IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Element (<paramref name="row"/>, <paramref name="col"/>) of the operand.</summary>
    T Load(int row, int col);
}

/// <summary>Receives element (row, col) of the product; called only with row and col in range.</summary>
public interface IMatrixStore<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Writes <paramref name="value"/>, element (<paramref name="row"/>, <paramref name="col"/>) of the
    /// product.</summary>
    void Store(int row, int col, T value);
}

/// <summary>A row-major matrix with leading dimension <c>Columns</c>, read transposed when asked.</summary>
public readonly struct RowMajorLoader<T>(ArrayView<T> data, int columns, bool transposed) : IMatrixLoader<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly int _columns = columns;
    private readonly int _transposed = transposed ? 1 : 0;

    /// <inheritdoc/>
    public T Load(int row, int col) =>
        _transposed != 0 ? _data[(long)col * _columns + row] : _data[(long)row * _columns + col];
}

/// <summary>The partial product of split Grid.IdxZ, into partials[split][row][col].</summary>
public readonly struct SplitPartialStore<T>(ArrayView<T> partials, int rows, int columns) : IMatrixStore<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _partials = partials;
    private readonly int _rows = rows;
    private readonly int _columns = columns;

    /// <inheritdoc/>
    public void Store(int row, int col, T value) =>
        _partials[((long)Grid.IdxZ * _rows + row) * _columns + col] = value;
}

/// <summary>C = alpha · product + beta · C (beta = 0 ignores C's old contents, NaN included).</summary>
public readonly struct ScaledRowMajorStore<T>(ArrayView<T> data, int columns, T alpha, T beta) : IMatrixStore<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly int _columns = columns;
    private readonly T _alpha = alpha;
    private readonly T _beta = beta;

    /// <inheritdoc/>
    public void Store(int row, int col, T value)
    {
        long index = (long)row * _columns + col;
        _data[index] = _beta == T.Zero ? _alpha * value : _alpha * value + _beta * _data[index];
    }
}

/// <summary>The tiled GEMM kernel, generic over its loaders and store, and the split-K reduction; the file header
/// gives the launch shape.</summary>
public static class GemmKernels
{
    /// <summary>Rows of K per shared-memory stage.</summary>
    public const int KTile = 8;

    /// <summary>Rows and columns of C per thread.</summary>
    public const int ThreadTile = 4;

    /// <summary>C = A · B for A m×k, B k×n over depths [z·kPerSplit, (z+1)·kPerSplit) of split z = Grid.IdxZ;
    /// grid (⌈m/BM⌉, ⌈n/BN⌉, splits), group (GX, GY), dynamic shared memory KTile · (BM + BN) elements.</summary>
    public static void Tiled<T, TA, TB, TC>(TA a, TB b, TC c, int m, int n, int k, int kPerSplit)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TA : struct, IMatrixLoader<T>
        where TB : struct, IMatrixLoader<T>
        where TC : struct, IMatrixStore<T>
    {
        int gx = Group.DimX, gy = Group.DimY;
        int tx = Group.IdxX, ty = Group.IdxY;
        int threads = gx * gy, thread = ty * gx + tx;
        int bm = ThreadTile * gx, bn = ThreadTile * gy;
        int row0 = Grid.IdxX * bm, col0 = Grid.IdxY * bn;

        var shared = SharedMemory.GetDynamic<T>();
        var tileA = shared.SubView(0, KTile * bm);          // [KTile][bm]
        var tileB = shared.SubView(KTile * bm, KTile * bn); // [KTile][bn]

        T c00 = T.Zero, c01 = T.Zero, c02 = T.Zero, c03 = T.Zero;
        T c10 = T.Zero, c11 = T.Zero, c12 = T.Zero, c13 = T.Zero;
        T c20 = T.Zero, c21 = T.Zero, c22 = T.Zero, c23 = T.Zero;
        T c30 = T.Zero, c31 = T.Zero, c32 = T.Zero, c33 = T.Zero;

        int kBegin = Grid.IdxZ * kPerSplit, kEnd = Math.Min(k, kBegin + kPerSplit);
        for (int k0 = kBegin; k0 < kEnd; k0 += KTile)
        {
            // Stage A (row-fastest: neighbouring threads gather neighbouring rows) and B (k-fastest).
            for (int index = thread; index < KTile * bm; index += threads)
            {
                int kk = index / bm, mm = index - kk * bm;
                int row = row0 + mm, depth = k0 + kk;
                tileA[index] = row < m && depth < kEnd ? a.Load(row, depth) : T.Zero;
            }
            for (int index = thread; index < KTile * bn; index += threads)
            {
                int nn = index / KTile, kk = index - nn * KTile;
                int col = col0 + nn, depth = k0 + kk;
                tileB[kk * bn + nn] = col < n && depth < kEnd ? b.Load(depth, col) : T.Zero;
            }
            Group.Barrier();

            for (int kk = 0; kk < KTile; kk++)
            {
                int ia = kk * bm + tx, ib = kk * bn + ty;
                T a0 = tileA[ia], a1 = tileA[ia + gx], a2 = tileA[ia + 2 * gx], a3 = tileA[ia + 3 * gx];
                T b0 = tileB[ib], b1 = tileB[ib + gy], b2 = tileB[ib + 2 * gy], b3 = tileB[ib + 3 * gy];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }

        int r0 = row0 + tx, q0 = col0 + ty;
        StoreRow(c, m, n, r0, q0, gy, c00, c01, c02, c03);
        StoreRow(c, m, n, r0 + gx, q0, gy, c10, c11, c12, c13);
        StoreRow(c, m, n, r0 + 2 * gx, q0, gy, c20, c21, c22, c23);
        StoreRow(c, m, n, r0 + 3 * gx, q0, gy, c30, c31, c32, c33);
    }

    /// <summary>C[row, col] = Σ_split partials[split][row][col], added in split order; grid-stride over m·n.</summary>
    public static void SumSplits<T, TC>(Index1D thread, ArrayView<T> partials, TC c, int m, int n, int splits,
        int stride) where T : unmanaged, IFloatingPointIeee754<T> where TC : struct, IMatrixStore<T>
    {
        long count = (long)m * n;
        for (long i = thread; i < count; i += stride)
        {
            T sum = T.Zero;
            for (int split = 0; split < splits; split++) sum += partials[split * count + i];
            c.Store((int)(i / n), (int)(i % n), sum);
        }
    }

    private static void StoreRow<T, TC>(TC c, int m, int n, int row, int col, int step, T v0, T v1, T v2, T v3)
        where T : unmanaged, IFloatingPointIeee754<T> where TC : struct, IMatrixStore<T>
    {
        if (row >= m) return;
        if (col < n) c.Store(row, col, v0);
        if (col + step < n) c.Store(row, col + step, v1);
        if (col + 2 * step < n) c.Store(row, col + 2 * step, v2);
        if (col + 3 * step < n) c.Store(row, col + 3 * step, v3);
    }
}

public sealed partial class IlgpuBackend
{
    /// <summary>Threads per group along rows and columns of C: 16 × 16 where the device allows it.</summary>
    private (int X, int Y) GemmGroup()
    {
        int x = Math.Min(16, MaxGroupSize);
        int y = Math.Max(1, Math.Min(16, MaxGroupSize / x));
        return (x, y);
    }

    /// <summary>K is split only into ranges at least this deep.</summary>
    private const int MinimumSplitDepth = 1024;

    /// <summary>Splits for an m×n×k product with <paramref name="tiles"/> output tiles: enough for two groups per
    /// multiprocessor, each split at least <see cref="MinimumSplitDepth"/> deep, at most 64.</summary>
    private int SplitCount(int tiles, int k)
    {
        int wanted = (2 * _accelerator.NumMultiprocessors + tiles - 1) / tiles;
        return Math.Clamp(Math.Min(wanted, k / MinimumSplitDepth), 1, 64);
    }

    /// <summary>Launches <see cref="GemmKernels.Tiled{T,TA,TB,TC}"/> for an m×n×k product, split along K (then
    /// summed by <see cref="GemmKernels.SumSplits{T,TC}"/>) when C alone would leave the device idle.</summary>
    private void LaunchGemm<T, TA, TB, TC>(TA a, TB b, TC c, int m, int n, int k)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TA : struct, IMatrixLoader<T>
        where TB : struct, IMatrixLoader<T>
        where TC : struct, IMatrixStore<T>
    {
        if (m == 0 || n == 0) return;
        var (gx, gy) = GemmGroup();
        int bm = GemmKernels.ThreadTile * gx, bn = GemmKernels.ThreadTile * gy;
        int tilesM = (m + bm - 1) / bm, tilesN = (n + bn - 1) / bn;
        int splits = SplitCount(tilesM * tilesN, k);
        int kPerSplit = ((k + splits - 1) / splits + GemmKernels.KTile - 1) / GemmKernels.KTile * GemmKernels.KTile;
        splits = (k + kPerSplit - 1) / kPerSplit;
        var config = new KernelConfig(new Index3D(tilesM, tilesN, splits), new Index3D(gx, gy, 1),
            SharedMemoryConfig.RequestDynamic<T>(GemmKernels.KTile * (bm + bn)));
        if (splits == 1)
        {
            TiledKernel<T, TA, TB, TC>()(_accelerator.DefaultStream, config, a, b, c, m, n, k, k);
            return;
        }

        var partials = ScratchBuffer<T>(SplitSlot, (long)splits * m * n).View;
        TiledKernel<T, TA, TB, SplitPartialStore<T>>()(_accelerator.DefaultStream, config, a, b,
            new SplitPartialStore<T>(partials, m, n), m, n, k, kPerSplit);
        var sum = Kernel<(T, TC), Action<AcceleratorStream, Index1D, ArrayView<T>, TC, int, int, int, int>>(
            nameof(GemmKernels.SumSplits),
            static acc => acc.LoadAutoGroupedKernel<Index1D, ArrayView<T>, TC, int, int, int, int>(
                GemmKernels.SumSplits));
        int extent = StreamExtent((long)m * n);
        sum(_accelerator.DefaultStream, extent, partials, c, m, n, splits, extent);
    }

    private Action<AcceleratorStream, KernelConfig, TA, TB, TC, int, int, int, int> TiledKernel<T, TA, TB, TC>()
        where T : unmanaged, IFloatingPointIeee754<T>
        where TA : struct, IMatrixLoader<T>
        where TB : struct, IMatrixLoader<T>
        where TC : struct, IMatrixStore<T> =>
        Kernel<(T, TA, TB, TC), Action<AcceleratorStream, KernelConfig, TA, TB, TC, int, int, int, int>>(
            nameof(GemmKernels.Tiled),
            static acc => acc.LoadKernel<TA, TB, TC, int, int, int, int>(GemmKernels.Tiled<T, TA, TB, TC>));

    /// <inheritdoc/>
    protected override void GemmCore<T>(bool transposeA, bool transposeB, int m, int n, int k, T alpha,
        DeviceBuffer<T> a,
        DeviceBuffer<T> b, T beta, DeviceBuffer<T> c)
    {
        LaunchGemm<T, RowMajorLoader<T>, RowMajorLoader<T>, ScaledRowMajorStore<T>>(
            new RowMajorLoader<T>(View(a), transposeA ? m : k, transposeA),
            new RowMajorLoader<T>(View(b), transposeB ? k : n, transposeB),
            new ScaledRowMajorStore<T>(View(c), n, alpha, beta), m, n, k);
    }
}
