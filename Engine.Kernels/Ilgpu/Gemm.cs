// The tiled matrix multiply that every dense op of the ILGPU backend runs on: Gemm (linear layers) and the
// three convolution passes (implicit GEMM, Convolution.cs).
//
// C[m, n] = Σ_k A[m, k] · B[k, n]. A and B are *loaders*: structs that read an operand as (outer, depth), outer
// being A's row or B's column and depth the shared k, four elements at a time along the axis they choose (a
// plain row-major matrix loads a 16-byte vector along its contiguous axis; the convolution gathers of
// Convolution.cs take the taps from a table). What a loader needs of an outer index (a pixel's window, a row's start)
// it computes once per thread (Locate) for every stage. C is a *store* (row-major with alpha/beta, or an NCHW
// scatter with bias).
//
// Launch shape (GemmTiling picks it per problem and device): a grid of groups of GX × GY threads, GX and GY powers
// of two; a group computes a BM × BN = 8·GX × 8·GY block of C (128 × 128 with 256 threads) and each thread an 8 × 8
// register tile (GemmTile.cs, generated: 64 scalar accumulators, the K tile's 8 steps written out, fma.rn on
// CUDA). K advances in stages of 8 (an 8 × BM slice of A, an 8 × BN slice of B) through two shared buffers: each
// thread loads its first quad of the next stage of each (in a 16 × 16 group, its whole part) into registers,
// multiplies the current stage, stores the loaded quads (and copies any others) into the other buffer, and the
// group meets one barrier per stage. Shared tiles are depth-major ([k][outer])
// so a thread's fragments (rows 4tx..4tx+3 and BM/2+4tx..+3, columns likewise) are two 16-byte quads each; the
// stage copy writes consecutive outers (quads) from consecutive threads, so neither side has bank conflicts.
// Elements outside the matrices load as zero; stores are guarded. All indices are 32-bit: the host checks the
// operands' lengths.
//
// Split-K: when C has too few tiles to fill the device and K is deep (a convolution's weight gradient reduces over
// N·OH·OW pixels into a small K×CRS matrix), the grid's z dimension splits K into equal ranges; each writes its
// partial product to a scratch buffer, and SumSplits adds the partials in split order before the real store —
// deterministic, no atomics.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>Reads a GEMM operand as (outer, depth) — outer = A's row or B's column, depth = the shared k — four
/// elements at a time along one axis, zero outside the given ends.</summary>
public interface IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>True when <see cref="Load"/> returns four depths of one outer index, false for four outer indices
    /// at one depth (a uniform choice per loader: its contiguous or cheaper axis).</summary>
    bool QuadAlongDepth { get; }

    /// <summary>What <see cref="Load"/> needs of outer index <paramref name="outer"/> when quads run along depth (a
    /// pixel's image offset and window corner, a row's start), computed once per thread and reused by every K
    /// stage; loaders whose quads run along the outer axis return the default.</summary>
    OuterOrigin Locate(int outer);

    /// <summary>Elements (outer, depth + i) when <see cref="QuadAlongDepth"/>, else (outer + i, depth), i = 0..3;
    /// an element with outer ≥ <paramref name="outerEnd"/> or depth ≥ <paramref name="depthEnd"/> is zero.
    /// <paramref name="origin"/> is <see cref="Locate"/>(<paramref name="outer"/>) when quads run along depth
    /// (ignored otherwise); <paramref name="outer"/> and <paramref name="depth"/> are non-negative, and the quad's
    /// start along its axis is a multiple of 4.</summary>
    Quad<T> Load(OuterOrigin origin, int outer, int depth, int outerEnd, int depthEnd);
}

/// <summary>What a loader computes once for one outer index (<see cref="IMatrixLoader{T}.Locate"/>): an element
/// offset and, for the convolution gathers, the window's first row and column.</summary>
public readonly record struct OuterOrigin(int Offset, int Row, int Column);

/// <summary>Receives element (row, col) of the product; called only with row and col in range.</summary>
public interface IMatrixStore<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Writes <paramref name="value"/>, element (<paramref name="row"/>, <paramref name="col"/>) of the
    /// product.</summary>
    void Store(int row, int col, T value);
}

/// <summary>A row-major matrix with leading dimension <c>leading</c> read as an operand: element (outer, depth) at
/// outer·leading + depth when <paramref name="depthContiguous"/>, else at depth·leading + outer. Quads run along the
/// contiguous axis and load as one vector when <paramref name="vectorised"/> (the host has checked that the
/// leading dimension and the view's start are multiples of 4 elements) and the quad is inside the matrix.</summary>
public readonly struct RowMajorLoader<T>(ArrayView<T> data, int leading, bool depthContiguous, bool vectorised)
    : IMatrixLoader<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ArrayView<T> _data = data;
    private readonly int _leading = leading;
    private readonly int _depthContiguous = depthContiguous ? 1 : 0;
    private readonly int _vectorised = vectorised ? 1 : 0;

    /// <inheritdoc/>
    public bool QuadAlongDepth => _depthContiguous != 0;

    /// <inheritdoc/>
    public OuterOrigin Locate(int outer) => _depthContiguous != 0 ? new OuterOrigin(outer * _leading, 0, 0) : default;

    /// <inheritdoc/>
    public Quad<T> Load(OuterOrigin origin, int outer, int depth, int outerEnd, int depthEnd) =>
        _depthContiguous != 0
            ? Row(origin.Offset, outer, depth, outerEnd, depthEnd)
            : Row(depth * _leading, depth, outer, depthEnd, outerEnd);

    /// <summary>Elements (row, col + i) of the stored matrix, zero past its ends; row starts at
    /// <paramref name="rowStart"/>.</summary>
    private Quad<T> Row(int rowStart, int row, int col, int rowEnd, int colEnd)
    {
        var quad = default(Quad<T>);
        if (row >= rowEnd) return quad;
        int index = rowStart + col;
        if (_vectorised != 0 && col + 3 < colEnd) return _data.Cast<Quad<T>>()[index >> 2];
        if (col < colEnd) quad.X = _data[index];
        if (col + 1 < colEnd) quad.Y = _data[index + 1];
        if (col + 2 < colEnd) quad.Z = _data[index + 2];
        if (col + 3 < colEnd) quad.W = _data[index + 3];
        return quad;
    }
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
        int index = row * _columns + col;
        _data[index] = _beta == T.Zero ? _alpha * value : _alpha * value + _beta * _data[index];
    }
}

/// <summary>The extents of one tiled GEMM launch: C is <see cref="M"/> × <see cref="N"/>, the product is over
/// <see cref="K"/> depths cut into ranges of <see cref="DepthPerSplit"/> (split z = Grid.IdxZ), and the block
/// tile is 2^<see cref="RowShift"/> × 2^<see cref="ColumnShift"/> (= 8·GX × 8·GY).</summary>
public readonly record struct GemmExtent(int M, int N, int K, int DepthPerSplit, int RowShift, int ColumnShift);

/// <summary>The tiled GEMM kernel, generic over its loaders and store, and the split-K reduction; the file header
/// gives the launch shape.</summary>
public static class GemmKernels
{
    /// <summary>C = A · B for A m×k, B k×n over depths [z·DepthPerSplit, (z+1)·DepthPerSplit) of split
    /// z = Grid.IdxZ; grid (⌈m/BM⌉, ⌈n/BN⌉, splits), group (GX, GY) with GX, GY powers of two ≤ 16, BM = 8·GX and
    /// BN = 8·GY as <paramref name="e"/> says, dynamic shared memory 2 · 8 · (BM + BN) elements.</summary>
    public static void Tiled<T, TA, TB, TC>(TA a, TB b, TC c, GemmExtent e)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TA : struct, IMatrixLoader<T>
        where TB : struct, IMatrixLoader<T>
        where TC : struct, IMatrixStore<T>
    {
        int tx = Group.IdxX, ty = Group.IdxY, gx = Group.DimX, gy = Group.DimY;
        int threads = gx * gy, thread = ty * gx + tx;
        int bm = 1 << e.RowShift, bn = 1 << e.ColumnShift;
        int row0 = Grid.IdxX * bm, col0 = Grid.IdxY * bn;
        int stageA = GemmTile<T>.Depth * bm, stage = stageA + GemmTile<T>.Depth * bn;
        var shared = SharedMemory.GetDynamic<T>();

        // The outer index this thread copies along depth in every stage when the group has at least a tile's outers
        // of threads (always on a GPU-sized group); located once here.
        var aOrigin = a.QuadAlongDepth ? a.Locate(row0 + (thread & (bm - 1))) : default;
        var bOrigin = b.QuadAlongDepth ? b.Locate(col0 + (thread & (bn - 1))) : default;

        int kBegin = Grid.IdxZ * e.DepthPerSplit, kEnd = Math.Min(e.K, kBegin + e.DepthPerSplit);
        Stage<T, TA>(a, aOrigin, First<T, TA>(a, aOrigin, e.RowShift, row0, e.M, kBegin, kEnd, thread),
            shared.SubView(0, stageA), e.RowShift, row0, e.M, kBegin, kEnd, thread, threads);
        Stage<T, TB>(b, bOrigin, First<T, TB>(b, bOrigin, e.ColumnShift, col0, e.N, kBegin, kEnd, thread),
            shared.SubView(stageA, stage - stageA), e.ColumnShift, col0, e.N, kBegin, kEnd, thread, threads);
        Group.Barrier();

        var tile = default(GemmTile<T>);
        int current = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += GemmTile<T>.Depth)
        {
            // Issue the next stage's first loads (all of them in a 16 × 16 group) ...
            int next = k0 + GemmTile<T>.Depth, other = stage - current;
            Quad<T> aNext = default, bNext = default;
            if (next < kEnd)
            {
                aNext = First<T, TA>(a, aOrigin, e.RowShift, row0, e.M, next, kEnd, thread);
                bNext = First<T, TB>(b, bOrigin, e.ColumnShift, col0, e.N, next, kEnd, thread);
            }
            // ... multiply this stage while they are in flight ...
            tile.MultiplyStage(Quads(shared.SubView(current, stageA)), tx, gx,
                Quads(shared.SubView(current + stageA, stage - stageA)), ty, gy);
            // ... and store them into the other buffer (its last readers passed the previous barrier).
            if (next < kEnd)
            {
                Stage<T, TA>(a, aOrigin, aNext, shared.SubView(other, stageA), e.RowShift, row0, e.M, next, kEnd,
                    thread, threads);
                Stage<T, TB>(b, bOrigin, bNext, shared.SubView(other + stageA, stage - stageA), e.ColumnShift, col0,
                    e.N, next, kEnd, thread, threads);
            }
            Group.Barrier();
            current = other;
        }

        tile.Store(c, e.M, e.N, row0 + 4 * tx, bm / 2, col0 + 4 * ty, bn / 2);
    }

    // A stage of an operand is depths [k0, k0 + 8) × outers [outer0, outer0 + 2^outerShift), copied as 2 · outers
    // quads into a depth-major shared tile ([depth][outer]); quad q goes to thread q mod threads. With GX, GY ≤ 16 a
    // stage has at least as many quads as the group has threads, so quad `thread` (the thread's first) always exists.
    // Consecutive threads write consecutive outers (scalar) or quads of outers (vector): no bank conflicts.

    /// <summary>Quad <paramref name="thread"/> of a stage (the thread's first), zeros outside the operand.</summary>
    private static Quad<T> First<T, TL>(TL loader, OuterOrigin origin, int outerShift, int outer0, int outerEnd,
        int k0, int kEnd, int thread)
        where T : unmanaged, IFloatingPointIeee754<T> where TL : struct, IMatrixLoader<T> =>
        LoadQuad<T, TL>(loader, origin, thread, outerShift, outer0, outerEnd, k0, kEnd, thread);

    /// <summary>Stores <paramref name="first"/> (from <see cref="First{T,TL}"/>) and copies the thread's other quads
    /// of the stage. <paramref name="origin"/> locates outer index outer0 + (thread mod outers), the one a thread's
    /// quads along depth usually have.</summary>
    private static void Stage<T, TL>(TL loader, OuterOrigin origin, Quad<T> first, ArrayView<T> tile, int outerShift,
        int outer0, int outerEnd, int k0, int kEnd, int thread, int threads)
        where T : unmanaged, IFloatingPointIeee754<T> where TL : struct, IMatrixLoader<T>
    {
        bool alongDepth = loader.QuadAlongDepth;
        StoreQuad(tile, first, thread, outerShift, alongDepth);
        int quads = GemmTile<T>.Depth * (1 << outerShift) / 4;
        for (int q = thread + threads; q < quads; q += threads)
            StoreQuad(tile, LoadQuad<T, TL>(loader, origin, q, outerShift, outer0, outerEnd, k0, kEnd, thread), q,
                outerShift, alongDepth);
    }

    /// <summary>Quad <paramref name="q"/> of a stage: four depths of outer q mod outers, or four outers of depth
    /// q div (outers / 4).</summary>
    private static Quad<T> LoadQuad<T, TL>(TL loader, OuterOrigin origin, int q, int outerShift, int outer0,
        int outerEnd, int k0, int kEnd, int thread)
        where T : unmanaged, IFloatingPointIeee754<T> where TL : struct, IMatrixLoader<T>
    {
        int outers = 1 << outerShift;
        if (loader.QuadAlongDepth)
        {
            int outer = q & (outers - 1), depth = (q >> outerShift) * 4;
            var located = outer == (thread & (outers - 1)) ? origin : loader.Locate(outer0 + outer);
            return loader.Load(located, outer0 + outer, k0 + depth, outerEnd, kEnd);
        }
        int outerQuad = q & ((outers >> 2) - 1), depthRow = q >> (outerShift - 2);
        return loader.Load(default, outer0 + 4 * outerQuad, k0 + depthRow, outerEnd, kEnd);
    }

    /// <summary>Writes quad <paramref name="q"/> of a stage where <see cref="LoadQuad{T,TL}"/> read it from.</summary>
    private static void StoreQuad<T>(ArrayView<T> tile, Quad<T> v, int q, int outerShift, bool alongDepth)
        where T : unmanaged
    {
        if (!alongDepth)
        {
            Quads(tile)[q] = v;
            return;
        }
        int outers = 1 << outerShift;
        int at = (q >> outerShift) * 4 * outers + (q & (outers - 1));
        tile[at] = v.X;
        tile[at + outers] = v.Y;
        tile[at + 2 * outers] = v.Z;
        tile[at + 3 * outers] = v.W;
    }

    /// <summary>A shared tile as quads, declared 16-byte aligned (every tile starts at a multiple of 4 elements of
    /// the dynamic shared buffer) so that PTX reads and writes them with one vector instruction.</summary>
    private static ArrayView<Quad<T>> Quads<T>(ArrayView<T> tile) where T : unmanaged =>
        tile.Cast<Quad<T>>().AsAligned(16);

    /// <summary>C[row, col] = Σ_split partials[split][row][col], added in split order; grid-stride over m·n. Eight
    /// partials are loaded before they are added (ILGPU does not unroll the loop): a split product has few outputs,
    /// so few threads, and one load at a time left each thread waiting out a memory latency per split.</summary>
    public static void SumSplits<T, TC>(Index1D launchIndex, ArrayView<T> partials, TC c, int m, int n, int splits,
        int stride) where T : unmanaged, IFloatingPointIeee754<T> where TC : struct, IMatrixStore<T>
    {
        int thread = KernelIndex.Global;
        long count = (long)m * n;
        for (long i = thread; i < count; i += stride)
        {
            T sum = T.Zero;
            long index = i;
            int split = 0;
            for (; split + 8 <= splits; split += 8, index += 8 * count)
            {
                T p0 = partials[index], p1 = partials[index + count], p2 = partials[index + 2 * count],
                    p3 = partials[index + 3 * count], p4 = partials[index + 4 * count],
                    p5 = partials[index + 5 * count], p6 = partials[index + 6 * count],
                    p7 = partials[index + 7 * count];
                sum = sum + p0 + p1 + p2 + p3 + p4 + p5 + p6 + p7;
            }
            for (; split < splits; split++, index += count) sum += partials[index];
            c.Store((int)(i / n), (int)(i % n), sum);
        }
    }
}

/// <summary>The block tile of a GEMM: groups of <see cref="GroupX"/> × <see cref="GroupY"/> threads, each computing
/// 8 × 8 outputs, so a block of <see cref="Rows"/> × <see cref="Columns"/>.</summary>
public readonly record struct GemmTiling(int GroupX, int GroupY)
{
    /// <summary>Threads of the largest group: 16 × 16, a 128 × 128 block.</summary>
    public const int MaxThreads = 256;

    /// <summary>Rows of C per block, 8·GX.</summary>
    public int Rows => GemmTile<float>.Size * GroupX;

    /// <summary>Columns of C per block, 8·GY.</summary>
    public int Columns => GemmTile<float>.Size * GroupY;

    /// <summary>K is split only into ranges at least this deep (all but the last range of a split).</summary>
    public const int MinimumSplitDepth = 128;

    /// <summary>The most ranges K is split into.</summary>
    public const int MaxSplits = 512;

    /// <summary>Full groups of the device per multiprocessor that split-K fills the grid up to.</summary>
    public const int GroupsPerMultiprocessor = 2;

    /// <summary>Blocks of the grid along m (rows of C).</summary>
    public int RowBlocks(int m) => (m + Rows - 1) / Rows;

    /// <summary>Blocks of the grid along n (columns of C).</summary>
    public int ColumnBlocks(int n) => (n + Columns - 1) / Columns;

    /// <summary>
    /// The tile and K's splits for an m × n × k product on a device allowing <paramref name="maxGroupThreads"/>
    /// threads per group with <paramref name="multiprocessors"/> multiprocessors.
    /// <para>The tile: each side starts at the smallest power of two (8 to 128) that covers its extent — a 16-channel
    /// convolution gets 16 columns, not 128 — then the larger side is halved while the group exceeds the device's
    /// (or 256) threads, and while the grid, even with K split as far as <see cref="MaxSplitsFor"/> allows, would
    /// leave multiprocessors idle and the block is larger than 32 × 32. So: 128 × 128 for large products on a GPU,
    /// 64 × 64 where 128 × 128 tiles are too few and K too shallow to split, down to 32 × 32 or thin tiles
    /// (128 × 16) for small channel counts, and 8 × 16 on ILGPU's 2-thread CPU device; a weight gradient (a small
    /// K×CRS product over N·OH·OW pixels) keeps its covering tile and is split instead: shrinking it below a warp
    /// left most of a GPU's lanes idle.</para>
    /// <para>The splits: enough that the groups hold as many threads as <see cref="GroupsPerMultiprocessor"/> full
    /// groups on every multiprocessor, within <see cref="MaxSplitsFor"/>.</para>
    /// </summary>
    public static GemmPlan Plan(int m, int n, int k, int maxGroupThreads, int multiprocessors)
    {
        int budget = ThreadBudget(maxGroupThreads);
        var tiling = new GemmTiling(Cover(m), Cover(n));
        while (tiling.Threads > budget) tiling = tiling.Halved();
        while (tiling.Threads > 16 &&
               (long)tiling.RowBlocks(m) * tiling.ColumnBlocks(n) * MaxSplitsFor(k) < multiprocessors)
            tiling = tiling.Halved();

        long threads = (long)tiling.RowBlocks(m) * tiling.ColumnBlocks(n) * tiling.Threads;
        long wanted = (long)GroupsPerMultiprocessor * budget * multiprocessors;
        int splits = (int)Math.Clamp((wanted + threads - 1) / threads, 1, MaxSplitsFor(k));
        return new GemmPlan(tiling, splits);

        static int Cover(int extent)
        {
            int g = 1;
            while (g < 16 && GemmTile<float>.Size * g < extent) g *= 2;
            return g;
        }
    }

    /// <summary>Threads of a group.</summary>
    public int Threads => GroupX * GroupY;

    /// <summary>The tile with its larger side halved (its rows when square).</summary>
    private GemmTiling Halved() => GroupX >= GroupY ? new(GroupX / 2, GroupY) : new(GroupX, GroupY / 2);

    /// <summary>The most ranges a K of <paramref name="k"/> depths may be split into: each but the last at least
    /// <see cref="MinimumSplitDepth"/> deep, at most <see cref="MaxSplits"/>.</summary>
    public static int MaxSplitsFor(int k) => Math.Clamp(k / MinimumSplitDepth, 1, MaxSplits);

    /// <summary>Threads of the largest group on a device allowing <paramref name="maxGroupThreads"/>: the greatest
    /// power of two up to that and <see cref="MaxThreads"/>.</summary>
    private static int ThreadBudget(int maxGroupThreads)
    {
        int budget = 1;
        while (budget * 2 <= Math.Min(MaxThreads, maxGroupThreads)) budget *= 2;
        return budget;
    }
}

/// <summary>How a GEMM launches: its block tile and the ranges K is split into (1: not split).</summary>
public readonly record struct GemmPlan(GemmTiling Tiling, int Splits);

public sealed partial class IlgpuBackend
{
    /// <summary>The tile and splits <see cref="LaunchGemm{T,TA,TB,TC}"/> uses for an m × n × k product on this
    /// device.</summary>
    public GemmPlan GemmPlanFor(int m, int n, int k) =>
        GemmTiling.Plan(m, n, k, MaxGroupSize, _accelerator.NumMultiprocessors);

    /// <summary>Launches <see cref="GemmKernels.Tiled{T,TA,TB,TC}"/> for an m×n×k product, split along K (then
    /// summed by <see cref="GemmKernels.SumSplits{T,TC}"/>) when C alone would leave the device idle.</summary>
    private void LaunchGemm<T, TA, TB, TC>(TA a, TB b, TC c, int m, int n, int k)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TA : struct, IMatrixLoader<T>
        where TB : struct, IMatrixLoader<T>
        where TC : struct, IMatrixStore<T>
    {
        if (m == 0 || n == 0) return;
        var (tiling, splits) = GemmPlanFor(m, n, k);
        int tilesM = tiling.RowBlocks(m), tilesN = tiling.ColumnBlocks(n);
        int depth = GemmTile<T>.Depth;
        int kPerSplit = ((k + splits - 1) / splits + depth - 1) / depth * depth;
        splits = (k + kPerSplit - 1) / kPerSplit;
        var config = new KernelConfig(new Index3D(tilesM, tilesN, splits), new Index3D(tiling.GroupX, tiling.GroupY, 1),
            SharedMemoryConfig.RequestDynamic<T>(2 * depth * (tiling.Rows + tiling.Columns)));
        var extent = new GemmExtent(m, n, k, kPerSplit, Log2(tiling.Rows), Log2(tiling.Columns));
        if (splits == 1)
        {
            TiledKernel<T, TA, TB, TC>()(_accelerator.DefaultStream, config, a, b, c, extent);
            return;
        }

        var partials = ScratchBuffer<T>(SplitSlot, (long)splits * m * n).View;
        TiledKernel<T, TA, TB, SplitPartialStore<T>>()(_accelerator.DefaultStream, config, a, b,
            new SplitPartialStore<T>(partials, m, n), extent);
        var sum = Kernel<(T, TC), Action<AcceleratorStream, Index1D, ArrayView<T>, TC, int, int, int, int>>(
            nameof(GemmKernels.SumSplits),
            static acc => acc.LoadAutoGroupedKernel<Index1D, ArrayView<T>, TC, int, int, int, int>(
                GemmKernels.SumSplits));
        int extentThreads = StreamExtent((long)m * n);
        sum(_accelerator.DefaultStream, extentThreads, partials, c, m, n, splits, extentThreads);

        static int Log2(int powerOfTwo) => BitOperations.Log2((uint)powerOfTwo);
    }

    private Action<AcceleratorStream, KernelConfig, TA, TB, TC, GemmExtent> TiledKernel<T, TA, TB, TC>()
        where T : unmanaged, IFloatingPointIeee754<T>
        where TA : struct, IMatrixLoader<T>
        where TB : struct, IMatrixLoader<T>
        where TC : struct, IMatrixStore<T> =>
        Kernel<(T, TA, TB, TC), Action<AcceleratorStream, KernelConfig, TA, TB, TC, GemmExtent>>(
            nameof(GemmKernels.Tiled),
            static acc => acc.LoadKernel<TA, TB, TC, GemmExtent>(GemmKernels.Tiled<T, TA, TB, TC>));

    /// <summary>True when a view starting <paramref name="offset"/> elements into its buffer, with rows of <paramref name="leading"/> elements, can be read in aligned 16-byte quads
    /// (float32; a double quad is 32 bytes, also aligned then).</summary>
    private static bool QuadAligned(long offset, int leading) => offset % 4 == 0 && leading % 4 == 0;

    /// <inheritdoc/>
    protected override void GemmCore<T>(bool transposeA, bool transposeB, int m, int n, int k, T alpha,
        DeviceBuffer<T> a,
        DeviceBuffer<T> b, T beta, DeviceBuffer<T> c)
    {
        if ((long)m * k > int.MaxValue || (long)k * n > int.MaxValue || (long)m * n > int.MaxValue)
            throw new NotSupportedException(
                $"gemm on {Kind}: operands of 2^31 or more elements (m {m}, n {n}, k {k}) are not supported.");
        // A: outer = row m, depth = k; stored m×k (k contiguous) or, transposed, k×m.
        // B: outer = column n, depth = k; stored k×n (n contiguous) or, transposed, n×k.
        int leadingA = transposeA ? m : k, leadingB = transposeB ? k : n;
        LaunchGemm<T, RowMajorLoader<T>, RowMajorLoader<T>, ScaledRowMajorStore<T>>(
            new RowMajorLoader<T>(View(a), leadingA, depthContiguous: !transposeA, QuadAligned(0, leadingA)),
            new RowMajorLoader<T>(View(b), leadingB, depthContiguous: transposeB, QuadAligned(0, leadingB)),
            new ScaledRowMajorStore<T>(View(c), n, alpha, beta), m, n, k);
    }
}
