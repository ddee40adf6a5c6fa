// Matrix multiply, C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, row-major; and the packed, cache-blocked
// float GEMM engine that Gemm and the convolutions (Convolution.cs) share.
//
// Engine (BLIS-style, vectorised along the rows of C):
//   A is packed once per call, before the multiply: a parallel run packs every (row block of MC, depth block of
//   KC) piece into one shared area ([kc][MR] per MR rows), which every task then reads (a deep A, over the
//   PackedABudget, goes in phases of depth: pack, multiply, next phase). A convolution's weights may instead keep
//   their pack between calls (WeightPacks.cs). When only one or two chunks of columns read A (a weight gradient's
//   few panels over a deep dy), each task packs the A blocks it multiplies itself, into its L2, right before using
//   them: no packing run, no pack written out and read back, and no phases. Where a weight gradient's rows would
//   be split (few panels), with AVX-512, dy is not packed at all: a micro-kernel reads its rows in place (ARows,
//   the same sums) and each task takes one panel over every row, packing it in its own cache (whole tiles, two
//   panels a thread or more, MinInPlaceRun, MaxInPlaceRows).
//   columns of C, every column group's (one image of a batched conv output) one after another, are cut into
//   panels of NR; a panel may span groups when a group's width is not a multiple of NR (7x7 maps: 49
//   columns), and its tiles are then stored part by part through scratch. A task owns up to MaxPanelsPerTask
//   consecutive panels and a range of rows (all of them unless the panels are too few to keep every thread busy),
//   so no two tasks write the same element, and each element is summed in the same order whoever runs it and
//   wherever its panel starts.
//   for each depth block of KC (2·KC for deep K: BlockDepth):
//                                      pack the task's B panels, [kc][NR] each        (L2), in one sweep per
//                                      column group (each row of B read as one segment); when the rows are
//                                      split, B is packed once per phase, beside A, and every row part reads it
//     for each row block of MC:        (the packed A block stays in L2)
//       for each B panel:              the panel stays in L1 while …
//         for each MR rows:            … the micro-kernel runs: MR×NR accumulators in registers, one k step is
//                                      NR/16 vector loads of B, MR broadcasts of A, MR·NR/16 FMAs.
//   Micro-tiles: 8x32 with AVX-512 (16 zmm accumulators), 6x16 with AVX2+FMA (12 ymm). Edges of C go through a
//   tile in scratch; packed panels are zero-padded, so the micro-kernel never branches on shape. With AVX2 a last
//   panel of at most 4 columns (batch 1 on a 7x7 or 14x14 map) is summed along the rows instead, 3 to 8 tiles at a
//   time (NarrowPanel), not over all 16 columns: the same sums. Packing that turns rows into columns goes through
//   8x8 register transposes.
//   A single column group with few panels (a weight gradient: small C, deep K) also splits K into slices whose
//   partial C are summed in order afterwards; the slice count depends on the shape, never on the thread count.
//   Operands are structs implementing IGemmOperands: plain matrices here, implicit im2col in Convolution.cs.
//   An optional epilogue (GemmOutput: + bias per row, + residual, ReLU) runs on each tile right after its last
//   depth block, while the tile is still in L1 (after the slice sum when the depth is sliced): no extra pass.
//
// double (and float on a CPU without AVX2+FMA) takes GenericGemm: per row of C, a row accumulator over k.
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

/// <summary>The two operands of one packed GEMM, packed on demand (A: m×k, B: k×n in column groups).</summary>
internal unsafe interface IGemmOperands
{
    /// <summary>Rows [row0, row0 + rows) × depth [k0, k0 + kc) of A into dst[kk·MR + r]; rows ≥ rows are zero.
    /// <paramref name="work"/> holds PackWorkFloats floats the packer may use.</summary>
    void PackA(float* dst, int row0, int rows, int k0, int kc, float* work);

    /// <summary>Depth [k0, k0 + kc) × columns [col0, col0 + cols) of column group <paramref name="group"/> of B
    /// into consecutive panels (kc·NR floats apart) from position <paramref name="offset"/> of the first:
    /// column col0 + t goes to position offset + t, i.e. dst[q·kc·NR + kk·NR + j] = B[k0 + kk][col0 + q·NR + j −
    /// offset]; the first panel's positions below offset are left as they are (another group's columns), the last
    /// panel's past the columns are zero. A run of panels is packed in one sweep, so each row of B is read once as a
    /// whole segment. Offset is 0 unless B has several column groups.</summary>
    void PackB(float* dst, int group, int col0, int cols, int offset, int k0, int kc, float* work);

    /// <summary>Where A's rows from <paramref name="row0"/> lie when the micro-kernel may read them as they are
    /// (ARows.InPlace), instead of packing them.</summary>
    ARows RowsOfA(int row0);
}

/// <summary>Rows of A read in place: row i at depth k lies at First + i·RowStride + (k / Run)·RunStride + k % Run
/// (a weight gradient's dy: a row is a channel, contiguous over one image's positions, the next image's a
/// RunStride further). The default (First null) means A is packed.</summary>
internal unsafe struct ARows
{
    public float* First;
    public long RowStride, RunStride;
    public int Run;

    public readonly bool InPlace => First != null;
}

/// <summary>Where C lives: row i, column j of group g is C[g·GroupStride + i·RowStride + j]. The optional
/// epilogue, applied to each element once its sum is final: + Bias[i] (when Bias is set), + Residual at C's offset
/// (when Residual is set; it never aliases C), then ReLU (when Relu).</summary>
internal unsafe struct GemmOutput
{
    public float* C;
    public int Rows, Depth, Groups, GroupColumns;
    public long GroupStride, RowStride;
    public float Alpha, Beta;
    public float* Bias, Residual;
    public bool Relu;

    /// <summary>True when an epilogue follows the product.</summary>
    public readonly bool HasEpilogue => Bias != null || Residual != null || Relu;

    /// <summary>Applies the epilogue to rows [row, row + rows) × <paramref name="cols"/> columns of C starting at
    /// element offset <paramref name="offset"/> (whose row is <paramref name="row"/>).</summary>
    public readonly void ApplyEpilogue(long offset, int row, int rows, int cols)
    {
        for (int i = 0; i < rows; i++)
        {
            long start = offset + i * RowStride;
            EpilogueRow(C + start, C + start, Bias == null ? 0f : Bias[row + i],
                Residual == null ? null : Residual + start, Relu, cols);
        }
    }

    /// <summary>The convolution epilogue of one row, shared by the packed GEMM (in place), the direct convolutions
    /// (from their tile) and Winograd's output transform: destination[j] = sums[j] + bias (+ residual[j] when not
    /// null), then ReLU when asked (NaN propagates). With <paramref name="stream"/>, a row of whole cache lines (its
    /// start 64-byte aligned, a multiple of 16 floats) goes past the caches in non-temporal stores (the caller fences
    /// before its task ends); other rows are stored as usual, so a row never mixes the two.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void EpilogueRow(float* sums, float* destination, float bias, float* residual, bool relu, int count,
        bool stream = false)
    {
        float floor = relu ? 0f : float.NegativeInfinity;
        var biasVector = Vector256.Create(bias);
        var floorVector = Vector256.Create(floor);
        bool streamed = stream && ((nint)destination & 63) == 0 && count % 16 == 0;
        int j = 0;
        for (; j + 8 <= count; j += 8)
        {
            var v = Epilogue(Vector256.Load(sums + j), biasVector, residual == null ? null : residual + j,
                floorVector);
            if (streamed) v.StoreAlignedNonTemporal(destination + j);
            else v.Store(destination + j);
        }
        for (; j < count; j++)
        {
            float v = sums[j] + bias;
            if (residual != null) v += residual[j];
            destination[j] = float.Max(v, floor);
        }
    }

    /// <summary>The epilogue of a vector of sums: v + bias (+ as many residuals at <paramref name="residual"/> when
    /// not null), then max with <paramref name="floor"/> (0 for ReLU, −∞ without).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Epilogue(Vector256<float> v, Vector256<float> bias, float* residual,
        Vector256<float> floor)
    {
        v += bias;
        if (residual != null) v += Vector256.Load(residual);
        return Vector256.Max(v, floor);
    }

    /// <inheritdoc cref="Epilogue(Vector256{float}, Vector256{float}, float*, Vector256{float})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Epilogue(Vector512<float> v, Vector512<float> bias, float* residual,
        Vector512<float> floor)
    {
        v += bias;
        if (residual != null) v += Vector512.Load(residual);
        return Vector512.Max(v, floor);
    }
}

internal static unsafe class PackedGemm
{
    public static bool IsSupported => Avx512F.IsSupported || (Avx2.IsSupported && Fma.IsSupported);

    public static string InstructionSet =>
        Avx512F.IsSupported ? "AVX-512" : IsSupported ? "AVX2+FMA" : "scalar";

    /// <summary>MR: rows of a micro-tile.</summary>
    public static int TileRows => Avx512F.IsSupported ? 8 : 6;

    /// <summary>NR: columns of a micro-tile.</summary>
    public static int TileColumns => Avx512F.IsSupported ? 32 : 16;

    /// <summary>KC: the packed B panel (KC·NR floats, 32 KiB with AVX-512) stays in the 48 KiB L1.</summary>
    public const int DepthBlock = 256;

    /// <summary>MC: the packed A block (MC·KC floats, 240 KiB) stays in L2 beside the task's B panels.</summary>
    public const int RowBlock = 240;

    /// <summary>NC / NR: the task's packed B (up to 256 KiB) stays in L2.</summary>
    public const int MaxPanelsPerTask = 8;

    /// <summary>Fewest MR-row tiles in one row part when a GEMM with few panels also splits its rows.</summary>
    public const int MinTilesPerRowPart = 4;

    /// <summary>Shortest run of A's depth (ARows.Run) that the micro-kernel reads in place. ResNet-50's 7x7 maps at
    /// batch 1 (runs of 49) ran slower in place in the per-shape tables, three times over (512×7×7 → 2048 1x1's
    /// weight gradient 0.31 → 0.47–0.53 ms, 1024×14×14 → 2048 1x1/2's 0.64–0.67 → 1.2–1.3 ms), though a loop
    /// timing the weight gradients alone, plans alternated call by call, had them level or faster.</summary>
    public const int MinInPlaceRun = 128;

    /// <summary>Most rows of A read in place: a task per panel reads every row. ResNet-50's weight gradients at batch
    /// 1 onto 512 and 1024 channels ran slower so in the per-shape tables (1024×14×14 → 512 1x1 0.66 → 0.71 ms,
    /// 512×28×28 → 1024 1x1/2 0.66 → 0.71), those onto 256 faster (1024×14×14 → 256 1x1 0.40 → 0.36).</summary>
    public const int MaxInPlaceRows = 256;

    /// <summary>Floats of packed A held at once (16 MiB): every ResNet weight matrix fits whole (512 × 4608 is
    /// 9.4 MB); a deeper A (a weight gradient's dy over a large batch) is packed and used in phases of depth.</summary>
    public const long PackedABudget = 1 << 22;

    /// <summary>Most floats of B packed once for every row part of a phase (16 MiB; more, and each row part packs
    /// its own panels).</summary>
    public const long SharedBBudget = 1 << 22;

    /// <summary>Most tasks that read one piece of A for A to be packed by each of them, in its own L2, right before
    /// it multiplies (instead of once, into memory, by a packing run before the multiply run): with one or two
    /// chunks of columns (a weight gradient's few panels over a deep dy), reading the source again costs less
    /// than writing the pack out and reading it back.</summary>
    public const int MaxChunksPackingOwnA = 2;

    /// <summary>A single column group with fewer panels than this splits its depth into slices.</summary>
    public const int SlicingPanels = 32;

    /// <summary>Rows of KC floats in a packer's work buffer (rows gathered before a transposing pack).</summary>
    public const int PackWorkRows = 32;

    /// <summary>Floats of a packer's work buffer for depth blocks of <paramref name="blockDepth"/>: PackWorkRows
    /// rows of them, and at least one whole row of a task's panels (a B row gathered before it is spread).</summary>
    public static long PackWorkFloats(int blockDepth) =>
        Math.Max((long)PackWorkRows * blockDepth, MaxPanelsPerTask * TileColumns);

    /// <summary>Depth of each block: K split into equal blocks of at most KC, or of at most 2·KC beyond 4·KC (a weight
    /// gradient's images × positions): half the passes over C, each of which reads and writes it, against B panels
    /// of up to 64 KiB, past L1. Weight gradients at batch 8 (depth 1568 and 6272): 128×28×28 → 256 3x3/2 5 % faster,
    /// its 1x1/2 13 %, 64×56×56 → 128 1x1/2 8 %, ResNet-50's 512×28×28 → 1024 1x1/2 11 % and 1024×14×14 → 256 7 %;
    /// GEMMs 512×512×2048 and 2048³ 11 and 6 % faster, 256×4096×4096 3 % slower. Blocks of up to 2·KC at every depth
    /// made 256×14×14 → 512 1x1/2 (depth 392: one block, so no split-K slices) 23 % slower.</summary>
    public static int BlockDepth(int depth)
    {
        int limit = depth > 4 * DepthBlock ? 2 * DepthBlock : DepthBlock;
        int blocks = (depth + limit - 1) / limit;
        return (depth + blocks - 1) / blocks;
    }

    /// <summary>c[MR×NR] (rows rowStride apart) = alpha · a·b + beta · c, a packed [kc][MR], b packed [kc][NR];
    /// beta = 0 never reads c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernel(float* a, float* b, int kc, float* c, long rowStride, float alpha, float beta)
    {
        if (Avx512F.IsSupported) MicroKernel8x32(a, b, kc, c, rowStride, alpha, beta);
        else MicroKernel6x16(a, b, kc, c, rowStride, alpha, beta);
    }

    /// <summary>c[8×32] (rows rowStride apart) = a·b with AVX-512, b packed [kc][32] and a read from 8x8 blocks
    /// blockStride floats apart: a[i][k] at a[(k / 8)·blockStride + 8i + k % 8], kc a multiple of 8. So the
    /// micro-kernel's A tiles of one matrix serve its transpose: a block of 8 rows × 8 depths is, read this way, the
    /// block of 8 depths × 8 rows of the transpose (Winograd's data gradient reads the forward's transformed weights
    /// so). The sums run over k in order, as MicroKernel's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernelTransposedA(float* a, long blockStride, float* b, int kc, float* c, long rowStride)
    {
        Debug.Assert(Avx512F.IsSupported && kc % 8 == 0, "8x8 blocks of A need AVX-512's 8-row tiles");
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default,
            c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int k0 = 0; k0 < kc; k0 += 8, a += blockStride)
        for (int j = 0; j < 8; j++, b += 32)
        {
            var b0 = Avx512F.LoadAlignedVector512(b);
            var b1 = Avx512F.LoadAlignedVector512(b + 16);
            var x = Vector512.Create(a[j]);
            c00 = Avx512F.FusedMultiplyAdd(x, b0, c00);
            c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[8 + j]);
            c10 = Avx512F.FusedMultiplyAdd(x, b0, c10);
            c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[16 + j]);
            c20 = Avx512F.FusedMultiplyAdd(x, b0, c20);
            c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[24 + j]);
            c30 = Avx512F.FusedMultiplyAdd(x, b0, c30);
            c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[32 + j]);
            c40 = Avx512F.FusedMultiplyAdd(x, b0, c40);
            c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[40 + j]);
            c50 = Avx512F.FusedMultiplyAdd(x, b0, c50);
            c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[48 + j]);
            c60 = Avx512F.FusedMultiplyAdd(x, b0, c60);
            c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[56 + j]);
            c70 = Avx512F.FusedMultiplyAdd(x, b0, c70);
            c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
        }
        var one = Vector512.Create(1f);
        Store(c, c00, c01, one, default, false);
        Store(c + rowStride, c10, c11, one, default, false);
        Store(c + 2 * rowStride, c20, c21, one, default, false);
        Store(c + 3 * rowStride, c30, c31, one, default, false);
        Store(c + 4 * rowStride, c40, c41, one, default, false);
        Store(c + 5 * rowStride, c50, c51, one, default, false);
        Store(c + 6 * rowStride, c60, c61, one, default, false);
        Store(c + 7 * rowStride, c70, c71, one, default, false);
    }

    /// <summary>The scalar form of the micro-kernel's store, for edge tiles: alpha·acc + beta·old, fused.</summary>
    public static float Combine(float acc, float alpha, float beta, float old) =>
        beta == 0f ? acc * alpha : MathF.FusedMultiplyAdd(old, beta, acc * alpha);

    /// <summary>c[t] = Combine(sums[t], alpha, beta, c[t]) for t &lt; count, 8 at a time (the same bits).</summary>
    public static void CombineRow(float* sums, float* c, int count, float alpha, float beta)
    {
        var va = Vector256.Create(alpha);
        var vb = Vector256.Create(beta);
        int t = 0;
        for (; t + 8 <= count; t += 8)
        {
            var v = Vector256.Load(sums + t) * va;
            if (beta != 0f) v = Vector256.FusedMultiplyAdd(Vector256.Load(c + t), vb, v);
            v.Store(c + t);
        }
        for (; t < count; t++) c[t] = Combine(sums[t], alpha, beta, beta == 0f ? 0f : c[t]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel8x32(float* a, float* b, int kc, float* c, long rowStride, float alpha, float beta)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default,
            c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int k = 0; k < kc; k++, a += 8, b += 32)
        {
            var b0 = Avx512F.LoadAlignedVector512(b);
            var b1 = Avx512F.LoadAlignedVector512(b + 16);
            var x = Vector512.Create(a[0]);
            c00 = Avx512F.FusedMultiplyAdd(x, b0, c00);
            c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]);
            c10 = Avx512F.FusedMultiplyAdd(x, b0, c10);
            c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]);
            c20 = Avx512F.FusedMultiplyAdd(x, b0, c20);
            c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]);
            c30 = Avx512F.FusedMultiplyAdd(x, b0, c30);
            c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]);
            c40 = Avx512F.FusedMultiplyAdd(x, b0, c40);
            c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]);
            c50 = Avx512F.FusedMultiplyAdd(x, b0, c50);
            c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]);
            c60 = Avx512F.FusedMultiplyAdd(x, b0, c60);
            c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]);
            c70 = Avx512F.FusedMultiplyAdd(x, b0, c70);
            c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
        }
        var va = Vector512.Create(alpha);
        var vb = Vector512.Create(beta);
        bool read = beta != 0f;
        Store(c, c00, c01, va, vb, read);
        Store(c + rowStride, c10, c11, va, vb, read);
        Store(c + 2 * rowStride, c20, c21, va, vb, read);
        Store(c + 3 * rowStride, c30, c31, va, vb, read);
        Store(c + 4 * rowStride, c40, c41, va, vb, read);
        Store(c + 5 * rowStride, c50, c51, va, vb, read);
        Store(c + 6 * rowStride, c60, c61, va, vb, read);
        Store(c + 7 * rowStride, c70, c71, va, vb, read);
    }

    /// <summary>MicroKernel8x32 with A's 8 rows read in place (<paramref name="rows"/>) over depths [k0, k0 + kc),
    /// a run of the depth at a time: the same products summed over k in the same order as from a packed A, so the
    /// same bits, without the pack (a weight gradient's dy, transposed: as many floats as x's patches for a 1x1/2
    /// layer, twice as many as its B). AVX-512 only. A separate kernel: MicroKernel8x32 written as this one with a
    /// packed A's strides (rows 1 apart, depths 8, one run) had the same inner loop in the JIT's output, but the
    /// 3x3 stride-1 weight gradients, which call the micro-kernel most often, ran 20–66 % slower (256×14×14 → 256 at
    /// batch 8 4.6 → 7.3 ms): the strides and runs cost per call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernelInPlace(ARows rows, int k0, float* b, int kc, float* c, long rowStride, float alpha,
        float beta)
    {
        Debug.Assert(Avx512F.IsSupported && rows.InPlace, "AVX-512's 8-row tiles over rows in place");
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default,
            c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        long l1 = rows.RowStride, l2 = 2 * l1, l3 = 3 * l1, l4 = 4 * l1, l5 = 5 * l1, l6 = 6 * l1, l7 = 7 * l1;
        int run = k0 / rows.Run, at = k0 % rows.Run;
        for (int left = kc; left > 0; run++, at = 0)
        {
            int count = Math.Min(rows.Run - at, left);
            left -= count;
            for (float* a = rows.First + run * rows.RunStride + at, end = a + count; a < end; a++, b += 32)
            {
                var b0 = Avx512F.LoadAlignedVector512(b);
                var b1 = Avx512F.LoadAlignedVector512(b + 16);
                var x = Vector512.Create(a[0]);
                c00 = Avx512F.FusedMultiplyAdd(x, b0, c00);
                c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
                x = Vector512.Create(a[l1]);
                c10 = Avx512F.FusedMultiplyAdd(x, b0, c10);
                c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
                x = Vector512.Create(a[l2]);
                c20 = Avx512F.FusedMultiplyAdd(x, b0, c20);
                c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
                x = Vector512.Create(a[l3]);
                c30 = Avx512F.FusedMultiplyAdd(x, b0, c30);
                c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
                x = Vector512.Create(a[l4]);
                c40 = Avx512F.FusedMultiplyAdd(x, b0, c40);
                c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
                x = Vector512.Create(a[l5]);
                c50 = Avx512F.FusedMultiplyAdd(x, b0, c50);
                c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
                x = Vector512.Create(a[l6]);
                c60 = Avx512F.FusedMultiplyAdd(x, b0, c60);
                c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
                x = Vector512.Create(a[l7]);
                c70 = Avx512F.FusedMultiplyAdd(x, b0, c70);
                c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
            }
        }
        var va = Vector512.Create(alpha);
        var vb = Vector512.Create(beta);
        bool read = beta != 0f;
        Store(c, c00, c01, va, vb, read);
        Store(c + rowStride, c10, c11, va, vb, read);
        Store(c + 2 * rowStride, c20, c21, va, vb, read);
        Store(c + 3 * rowStride, c30, c31, va, vb, read);
        Store(c + 4 * rowStride, c40, c41, va, vb, read);
        Store(c + 5 * rowStride, c50, c51, va, vb, read);
        Store(c + 6 * rowStride, c60, c61, va, vb, read);
        Store(c + 7 * rowStride, c70, c71, va, vb, read);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> lo, Vector512<float> hi, Vector512<float> alpha,
        Vector512<float> beta, bool read)
    {
        lo = Avx512F.Multiply(lo, alpha);
        hi = Avx512F.Multiply(hi, alpha);
        if (read)
        {
            lo = Avx512F.FusedMultiplyAdd(Vector512.Load(c), beta, lo);
            hi = Avx512F.FusedMultiplyAdd(Vector512.Load(c + 16), beta, hi);
        }
        lo.Store(c);
        hi.Store(c + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel6x16(float* a, float* b, int kc, float* c, long rowStride, float alpha, float beta)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int k = 0; k < kc; k++, a += 6, b += 16)
        {
            var b0 = Avx.LoadAlignedVector256(b);
            var b1 = Avx.LoadAlignedVector256(b + 8);
            var x = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(x, b0, c00);
            c01 = Fma.MultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(x, b0, c10);
            c11 = Fma.MultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(x, b0, c20);
            c21 = Fma.MultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(x, b0, c30);
            c31 = Fma.MultiplyAdd(x, b1, c31);
            x = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(x, b0, c40);
            c41 = Fma.MultiplyAdd(x, b1, c41);
            x = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(x, b0, c50);
            c51 = Fma.MultiplyAdd(x, b1, c51);
        }
        var va = Vector256.Create(alpha);
        var vb = Vector256.Create(beta);
        bool read = beta != 0f;
        Store(c, c00, c01, va, vb, read);
        Store(c + rowStride, c10, c11, va, vb, read);
        Store(c + 2 * rowStride, c20, c21, va, vb, read);
        Store(c + 3 * rowStride, c30, c31, va, vb, read);
        Store(c + 4 * rowStride, c40, c41, va, vb, read);
        Store(c + 5 * rowStride, c50, c51, va, vb, read);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> lo, Vector256<float> hi, Vector256<float> alpha,
        Vector256<float> beta, bool read)
    {
        lo = Avx.Multiply(lo, alpha);
        hi = Avx.Multiply(hi, alpha);
        if (read)
        {
            lo = Fma.MultiplyAdd(Vector256.Load(c), beta, lo);
            hi = Fma.MultiplyAdd(Vector256.Load(c + 8), beta, hi);
        }
        lo.Store(c);
        hi.Store(c + 8);
    }

    /// <summary>Most columns a narrow last panel may have for NarrowPanel (AVX2 only; 0: none).</summary>
    public static int NarrowColumns => Avx512F.IsSupported || !IsSupported ? 0 : 4;

    /// <summary>Most MR-row tiles one NarrowPanel call sums.</summary>
    public const int NarrowTiles = 8;

    /// <summary>AVX2's MR and NR, and the floats of one tile of sums (NarrowPanel's layout).</summary>
    private const int Rows2 = 6, Columns2 = 16, TileFloats2 = Rows2 * Columns2;

    /// <summary>sums[(t·MR + i)·NR + j] = Σ_k a_t[k·MR + i] · b[k·NR + j] for tiles
    /// t &lt; <paramref name="tiles"/> (a_t = a + t·kc·MR, consecutive packed tiles), rows i &lt; MR and columns
    /// j &lt; NarrowColumns: a last panel of at most NarrowColumns columns (a 7x7 map's 49th column, a 14x14
    /// map's last 4, at batch 1), which the micro-kernel would sum over all 16 columns. Vectors run along a tile's
    /// rows instead (6 of 8 lanes), one accumulator per tile and column, each element summed in the same order as
    /// the micro-kernel's (the same bits): one column over up to 8 tiles, or up to 4 columns over up to 3 tiles;
    /// columns past the panel's (zero in the packed panel) and lanes past the tile's rows are computed and
    /// dropped. AVX2 only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void NarrowPanel(float* a, int tiles, float* b, int kc, int cols, float* sums)
    {
        Debug.Assert(tiles >= 1 && tiles <= NarrowTiles && cols >= 1 && cols <= NarrowColumns && kc >= 1);
        if (cols == 1)
        {
            NarrowColumn(a, tiles, b, kc, sums);
            return;
        }
        for (int t0 = 0; t0 < tiles; t0 += 3)
            NarrowColumns4(a + (long)t0 * kc * Rows2, Math.Min(3, tiles - t0), b, kc, sums + t0 * TileFloats2);
    }

    /// <summary>Lanes 0–5 set: a packed tile's row of 6, read without running past it (the last row's next two
    /// floats may lie past the packed block).</summary>
    private static Vector256<float> TileRowMask => Vector256.Create(-1, -1, -1, -1, -1, -1, 0, 0).AsSingle();

    /// <summary>Lane i &lt; MR of <paramref name="sum"/> to dst[i·NR]: a column of a tile of sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTileColumn(Vector256<float> sum, float* dst)
    {
        for (int i = 0; i < Rows2; i++) dst[i * Columns2] = sum.GetElement(i);
    }

    /// <summary>NarrowPanel's first column over up to 8 tiles (tiles past <paramref name="tiles"/> repeat the
    /// last: computed, never stored).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NarrowColumn(float* a, int tiles, float* b, int kc, float* sums)
    {
        long tile = (long)kc * Rows2;
        float* a0 = a, a1 = a + Math.Min(1, tiles - 1) * tile, a2 = a + Math.Min(2, tiles - 1) * tile,
            a3 = a + Math.Min(3, tiles - 1) * tile, a4 = a + Math.Min(4, tiles - 1) * tile,
            a5 = a + Math.Min(5, tiles - 1) * tile, a6 = a + Math.Min(6, tiles - 1) * tile,
            a7 = a + Math.Min(7, tiles - 1) * tile;
        var mask = TileRowMask;
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default,
            s6 = default, s7 = default;
        for (nint o = 0, end = (nint)kc * Rows2; o < end; o += Rows2, b += Columns2)
        {
            var x = Vector256.Create(*b);
            s0 = Fma.MultiplyAdd(Avx.MaskLoad(a0 + o, mask), x, s0);
            s1 = Fma.MultiplyAdd(Avx.MaskLoad(a1 + o, mask), x, s1);
            s2 = Fma.MultiplyAdd(Avx.MaskLoad(a2 + o, mask), x, s2);
            s3 = Fma.MultiplyAdd(Avx.MaskLoad(a3 + o, mask), x, s3);
            s4 = Fma.MultiplyAdd(Avx.MaskLoad(a4 + o, mask), x, s4);
            s5 = Fma.MultiplyAdd(Avx.MaskLoad(a5 + o, mask), x, s5);
            s6 = Fma.MultiplyAdd(Avx.MaskLoad(a6 + o, mask), x, s6);
            s7 = Fma.MultiplyAdd(Avx.MaskLoad(a7 + o, mask), x, s7);
        }
        StoreTileColumn(s0, sums);
        if (tiles > 1) StoreTileColumn(s1, sums + TileFloats2);
        if (tiles > 2) StoreTileColumn(s2, sums + 2 * TileFloats2);
        if (tiles > 3) StoreTileColumn(s3, sums + 3 * TileFloats2);
        if (tiles > 4) StoreTileColumn(s4, sums + 4 * TileFloats2);
        if (tiles > 5) StoreTileColumn(s5, sums + 5 * TileFloats2);
        if (tiles > 6) StoreTileColumn(s6, sums + 6 * TileFloats2);
        if (tiles > 7) StoreTileColumn(s7, sums + 7 * TileFloats2);
    }

    /// <summary>NarrowPanel's first 4 columns over up to 3 tiles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NarrowColumns4(float* a, int tiles, float* b, int kc, float* sums)
    {
        long tile = (long)kc * Rows2;
        float* a0 = a, a1 = a + Math.Min(1, tiles - 1) * tile, a2 = a + Math.Min(2, tiles - 1) * tile;
        var mask = TileRowMask;
        Vector256<float> s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default,
            s12 = default, s13 = default, s20 = default, s21 = default, s22 = default, s23 = default;
        for (nint o = 0, end = (nint)kc * Rows2; o < end; o += Rows2, b += Columns2)
        {
            var r0 = Avx.MaskLoad(a0 + o, mask);
            var r1 = Avx.MaskLoad(a1 + o, mask);
            var r2 = Avx.MaskLoad(a2 + o, mask);
            var x = Vector256.Create(b[0]);
            s00 = Fma.MultiplyAdd(r0, x, s00);
            s10 = Fma.MultiplyAdd(r1, x, s10);
            s20 = Fma.MultiplyAdd(r2, x, s20);
            x = Vector256.Create(b[1]);
            s01 = Fma.MultiplyAdd(r0, x, s01);
            s11 = Fma.MultiplyAdd(r1, x, s11);
            s21 = Fma.MultiplyAdd(r2, x, s21);
            x = Vector256.Create(b[2]);
            s02 = Fma.MultiplyAdd(r0, x, s02);
            s12 = Fma.MultiplyAdd(r1, x, s12);
            s22 = Fma.MultiplyAdd(r2, x, s22);
            x = Vector256.Create(b[3]);
            s03 = Fma.MultiplyAdd(r0, x, s03);
            s13 = Fma.MultiplyAdd(r1, x, s13);
            s23 = Fma.MultiplyAdd(r2, x, s23);
        }
        StoreTileColumn(s00, sums); StoreTileColumn(s01, sums + 1);
        StoreTileColumn(s02, sums + 2); StoreTileColumn(s03, sums + 3);
        if (tiles > 1)
        {
            float* t1 = sums + TileFloats2;
            StoreTileColumn(s10, t1); StoreTileColumn(s11, t1 + 1);
            StoreTileColumn(s12, t1 + 2); StoreTileColumn(s13, t1 + 3);
        }
        if (tiles > 2)
        {
            float* t2 = sums + 2 * TileFloats2;
            StoreTileColumn(s20, t2); StoreTileColumn(s21, t2 + 1);
            StoreTileColumn(s22, t2 + 2); StoreTileColumn(s23, t2 + 3);
        }
    }

    /// <summary>A panel from rows <paramref name="rowStride"/> apart: dst[kk·MR + r] = src[r·rowStride + kk],
    /// zero for r ≥ rows.</summary>
    public static void PackRows(float* dst, float* src, long rowStride, int rows, int kc) =>
        TransposeRows(src, srcStride: rowStride, rows, dst, dstStride: TileRows, kc);

    /// <summary>Up to eight rows to columns, in 8x8 register transposes (unpack, shuffle, lane permute):
    /// dst[kk·dstStride + r] = src[r·srcStride + kk] for kk &lt; kc and r &lt; min(dstStride, 8), zero for r ≥
    /// rows (those rows are never read). With dstStride ≥ 8 each column is 8 floats (a half of a 16-wide panel
    /// leaves the other half as it is); with a narrower dstStride (AVX2's 6-row tiles) each column's 8-float
    /// store runs into the next column, which is stored after it, and the last column stores dstStride floats
    /// only. <paramref name="streamed"/> (dstStride 8, dst 32-byte aligned) stores the columns past the caches, for
    /// packs the caller fences (Sse.StoreFence) before they are read.</summary>
    public static void TransposeRows(float* src, long srcStride, int rows, float* dst, int dstStride, int kc,
        bool streamed = false)
    {
        Debug.Assert(!streamed || dstStride == 8 && ((nint)dst & 31) == 0, "streamed: 8-float columns, aligned");
        Debug.Assert(rows <= 8 && dstStride >= 4, "eight rows at most, into columns of at least four");
        int width = Math.Min(dstStride, 8);
        // Blocks of 8 columns; where kc is at least 8 but no multiple of it, the last block is the 8 columns that end
        // at kc, its first ones stored again with the same values (with the rest a column at a time, the data
        // gradient's weight packs, 9 columns a filter, took half as long again: 256×14×14 → 512 3x3/2 0.71 → 0.49
        // ms).
        int kk = 0;
        while (kc >= 8)
        {
            float* s = src + kk;
            var r0 = LoadRow(s, srcStride, 0, rows);
            var r1 = LoadRow(s, srcStride, 1, rows);
            var r2 = LoadRow(s, srcStride, 2, rows);
            var r3 = LoadRow(s, srcStride, 3, rows);
            var r4 = LoadRow(s, srcStride, 4, rows);
            var r5 = LoadRow(s, srcStride, 5, rows);
            var r6 = LoadRow(s, srcStride, 6, rows);
            var r7 = LoadRow(s, srcStride, 7, rows);
            Transpose8x8(r0, r1, r2, r3, r4, r5, r6, r7, out var c0, out var c1, out var c2, out var c3, out var c4,
                out var c5, out var c6, out var c7);
            float* d = dst + (long)kk * dstStride;
            bool last = kk + 8 == kc;
            StoreColumn(c0, d, width, false, streamed);
            StoreColumn(c1, d + dstStride, width, false, streamed);
            StoreColumn(c2, d + 2 * dstStride, width, false, streamed);
            StoreColumn(c3, d + 3 * dstStride, width, false, streamed);
            StoreColumn(c4, d + 4 * dstStride, width, false, streamed);
            StoreColumn(c5, d + 5 * dstStride, width, false, streamed);
            StoreColumn(c6, d + 6 * dstStride, width, false, streamed);
            StoreColumn(c7, d + 7 * dstStride, width, last, streamed);
            if (last) return;
            kk = Math.Min(kk + 8, kc - 8);
        }
        for (; kk < kc; kk++)
        for (int r = 0; r < width; r++)
            dst[(long)kk * dstStride + r] = r < rows ? src[r * srcStride + kk] : 0f;
    }

    /// <summary>The columns of the 8x8 matrix whose rows are r0 … r7, c_i[r] = r_r[i]: unpack, shuffle, lane
    /// permute (24 instructions).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(Vector256<float> r0, Vector256<float> r1, Vector256<float> r2,
        Vector256<float> r3, Vector256<float> r4, Vector256<float> r5, Vector256<float> r6, Vector256<float> r7,
        out Vector256<float> c0, out Vector256<float> c1, out Vector256<float> c2, out Vector256<float> c3,
        out Vector256<float> c4, out Vector256<float> c5, out Vector256<float> c6, out Vector256<float> c7)
    {
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        c0 = Avx.Permute2x128(u0, u4, 0x20);
        c1 = Avx.Permute2x128(u1, u5, 0x20);
        c2 = Avx.Permute2x128(u2, u6, 0x20);
        c3 = Avx.Permute2x128(u3, u7, 0x20);
        c4 = Avx.Permute2x128(u0, u4, 0x31);
        c5 = Avx.Permute2x128(u1, u5, 0x31);
        c6 = Avx.Permute2x128(u2, u6, 0x31);
        c7 = Avx.Permute2x128(u3, u7, 0x31);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> LoadRow(float* src, long stride, int r, int rows) =>
        r < rows ? Vector256.Load(src + r * stride) : Vector256<float>.Zero;

    /// <summary>A column of <paramref name="width"/> floats: all 8 lanes, unless it is narrower and
    /// <paramref name="exact"/> (the last column, which nothing follows); <paramref name="streamed"/>, all 8 past the
    /// caches (TransposeRows).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreColumn(Vector256<float> column, float* dst, int width, bool exact, bool streamed)
    {
        if (streamed) Avx.StoreAlignedNonTemporal(dst, column);
        else if (width == 8 || !exact) column.Store(dst);
        else
        {
            column.GetLower().Store(dst);
            for (int r = 4; r < width; r++) dst[r] = column.GetElement(r);
        }
    }

    /// <summary>One row of B into a run of packed panels (panelStride apart) from position
    /// <paramref name="offset"/> of the first: row[t] goes to position offset + t, the last panel's positions
    /// past the row are zero.</summary>
    public static void SpreadRow(float* row, float* dst, int cols, long panelStride, int offset)
    {
        int nr = TileColumns;
        for (int j = 0; j < cols; dst += panelStride, offset = 0)
        {
            int count = Math.Min(cols - j, nr - offset);
            CopyRow(row + j, dst + offset, count);
            j += count;
            if (j == cols) ZeroRow(dst + offset + count, nr - offset - count);
        }
    }

    /// <summary>dst[0 … count) = src[0 … count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void CopyRow(float* src, float* dst, int count)
    {
        int i = 0;
        for (; i + 8 <= count; i += 8) Vector256.Store(Vector256.Load(src + i), dst + i);
        if (i + 4 <= count)
        {
            Vector128.Store(Vector128.Load(src + i), dst + i);
            i += 4;
        }
        for (; i < count; i++) dst[i] = src[i];
    }

    /// <summary>dst[0 … count) = 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ZeroRow(float* dst, int count)
    {
        int i = 0;
        for (; i + 8 <= count; i += 8) Vector256<float>.Zero.Store(dst + i);
        if (i + 4 <= count)
        {
            Vector128<float>.Zero.Store(dst + i);
            i += 4;
        }
        for (; i < count; i++) dst[i] = 0f;
    }
}

/// <summary>Plain row-major matrices: op(A) m×k (A stored k×m when transposed), op(B) k×n (B stored n×k); an
/// untransposed B may have several column groups, group g's k×n at B + g·BGroupStride.</summary>
internal unsafe struct MatrixOperands : IGemmOperands
{
    public float* A, B;
    public int M, N, K;
    public long BGroupStride;
    public bool TransposeA, TransposeB;

    public readonly ARows RowsOfA(int row0) => default;

    public void PackA(float* dst, int row0, int rows, int k0, int kc, float* work)
    {
        int mr = PackedGemm.TileRows;
        if (TransposeA)
        {
            for (int kk = 0; kk < kc; kk++)
            {
                float* d = dst + kk * mr;
                PackedGemm.CopyRow(A + (long)(k0 + kk) * M + row0, d, rows);
                PackedGemm.ZeroRow(d + rows, mr - rows);
            }
            return;
        }
        PackedGemm.PackRows(dst, A + (long)row0 * K + k0, K, rows, kc);
    }

    /// <summary>PackA of a transposed A (k×m) for the tiles of rows [row0, row0 + rows), tile t at dst + t·kc·MR,
    /// <paramref name="tiles"/> tiles (those past the rows zero), read a row of k at a time across every tile: tile
    /// by tile, each of kc rows would be a new cache line and, m floats apart, a new page (ResNet-50's 512×4608 wᵀ:
    /// its packing took half of a batch-1 strided data gradient).</summary>
    public void PackTransposedATiles(float* dst, int row0, int rows, int tiles, int k0, int kc)
    {
        Debug.Assert(TransposeA, "A stored k×m");
        int mr = PackedGemm.TileRows;
        for (int kk = 0; kk < kc; kk++)
        {
            float* src = A + (long)(k0 + kk) * M + row0, d = dst + kk * mr;
            for (int t = 0; t < tiles; t++, d += (long)kc * mr)
            {
                int count = Math.Clamp(rows - t * mr, 0, mr);
                PackedGemm.CopyRow(src + t * mr, d, count);
                PackedGemm.ZeroRow(d + count, mr - count);
            }
        }
    }

    public void PackB(float* dst, int group, int col0, int cols, int offset, int k0, int kc, float* work)
    {
        int nr = PackedGemm.TileColumns;
        if (!TransposeB)
        {
            float* b = B + group * BGroupStride;
            for (int kk = 0; kk < kc; kk++)
                PackedGemm.SpreadRow(b + (long)(k0 + kk) * N + col0, dst + kk * nr, cols, (long)kc * nr, offset);
            return;
        }
        Debug.Assert(offset == 0, "a transposed B has one column group");
        for (int j = 0; j < cols; j += nr, dst += (long)kc * nr)
            PackTransposedPanel(dst, col0 + j, Math.Min(nr, cols - j), k0, kc);
    }

    /// <summary>One panel of a transposed B (stored n×k): dst[kk·NR + j] = B[col0 + j][k0 + kk], zero past
    /// cols.</summary>
    private readonly void PackTransposedPanel(float* dst, int col0, int cols, int k0, int kc)
    {
        int nr = PackedGemm.TileColumns;
        for (int j = 0; j < nr; j += 8)
            PackedGemm.TransposeRows(B + (long)(col0 + j) * K + k0, K, Math.Clamp(cols - j, 0, 8), dst + j, nr, kc);
    }
}

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void GemmCore<T>(bool transposeA, bool transposeB, int m, int n, int k, T alpha,
        DeviceBuffer<T> a,
        DeviceBuffer<T> b, T beta, DeviceBuffer<T> c)
    {
        if (typeof(T) == typeof(float) && PackedGemm.IsSupported)
        {
            var operands = new MatrixOperands
            {
                A = (float*)Data(a), B = (float*)Data(b), M = m, N = n, K = k,
                TransposeA = transposeA, TransposeB = transposeB,
            };
            var output = new GemmOutput
            {
                C = (float*)Data(c), Rows = m, Depth = k, Groups = 1, GroupColumns = n, GroupStride = 0,
                RowStride = n, Alpha = float.CreateTruncating(alpha), Beta = float.CreateTruncating(beta),
            };
            RunPackedGemm(operands, output);
            return;
        }

        var job = new GenericGemmJob<T>
        {
            A = Data(a), B = Data(b), C = Data(c), M = m, N = n, K = k, Alpha = alpha, Beta = beta,
            TransposeA = transposeA, TransposeB = transposeB, Backend = this,
        };
        Parallel(m, ref job);
    }

    /// <summary>
    /// Runs one packed float GEMM over the pool (see the file header for the loop nest): per depth phase, A packed
    /// once into worker 0's PackedASlot by a parallel first run (pieces of RowBlock rows × one depth block, a pure
    /// copy; the same run packs B into worker 0's SharedBSlot when the rows are split), then the multiply run,
    /// whose tasks share them; or, when the plan has each task pack its own A (PacksOwnA), the multiply run
    /// alone (after B's packing run when the rows are split). When A is the <paramref name="weights"/> of a convolution
    /// and fits one phase, its pack may be kept between calls (WeightPacks.cs) and the packing run skipped. A
    /// single column group with few panels (a weight gradient: small C, deep K) also splits the depth into Slices
    /// fixed ranges; each (slice, chunk, row part) task writes its own partial C, and the slices are summed in order
    /// afterwards. The slice count depends on the shape only, never on the thread count, so the bits do not either
    /// (the chunks and row parts only decide who computes an element, not how). Without <paramref name="slicing"/>,
    /// each column group is summed as a GEMM of that group alone would sum it, whatever the number of groups.
    /// </summary>
    private void RunPackedGemm<TOperands>(TOperands operands, GemmOutput output,
        DeviceBuffer<float>? weights = null, WeightPackKey weightPack = default, bool slicing = true)
        where TOperands : struct, IGemmOperands
    {
        var job = PlanPackedGemm(operands, output, slicing, aKept: weights is not null);
        long sliceLength = (long)output.Rows * output.GroupColumns;
        if (job.Slices > 1)
            job.Partials = (float*)WorkerScratch(0, PartialsSlot, job.Slices * sliceLength * sizeof(float));
        for (int phaseStart = 0; phaseStart < output.Depth; phaseStart += job.PhaseDepth)
        {
            float* packedA = null;
            bool ready = job.PacksOwnA || job.ReadsAInPlace;
            if (!ready)
            {
                packedA = (float*)WorkerScratch(0, PackedASlot, job.PackedALength * sizeof(float));
                if (weights is not null && job.PhaseDepth >= output.Depth)
                    packedA = WeightPack(weights, weightPack, job.PackedALength, packedA, out ready);
            }
            float* sharedB = job.SharesB
                ? (float*)WorkerScratch(0, SharedBSlot, job.SharedBLength * sizeof(float))
                : null;
            var pack = job.StartPhase(phaseStart, packedA, ready, sharedB);
            if (pack.Pieces > 0) Parallel(pack.Pieces, ref pack);
            Parallel(job.PhaseTasks, ref job);
        }
        GC.KeepAlive(weights);   // its kept pack must outlive the runs that read it
        if (job.Slices == 1) return;

        var reduce = new SliceSumJob
            { Partials = job.Partials, Slices = job.Slices, Output = output, SliceLength = sliceLength };
        Parallel(output.Rows, ref reduce);
    }

    /// <summary>
    /// How one GEMM is cut. Columns: panels of NR, PanelsPerTask consecutive ones per chunk (about four chunks per
    /// thread; with few panels and enough rows, full chunks of MaxPanelsPerTask and the rows split instead). Depth:
    /// blocks of BlockDepth; with slicing, a single column group with few panels takes Slices fixed ranges of blocks
    /// (shape only). Rows: when chunks × slices give fewer than four tasks per thread (batch 1 on
    /// 7x7 or 14x14 maps), the row tiles are also cut into RowParts ranges of at least four tiles, so every thread
    /// gets an equal share, and B is then packed once per phase for all of them (SharesB, within SharedBBudget).
    /// Where the rows would be split and A may be read in place (ARows; AVX-512, whole tiles, at least two panels a
    /// thread, MinInPlaceRun, MaxInPlaceRows): one panel a task over every row, so each task packs its B in its own
    /// cache. A, unless read in place:
    /// packed by each task for itself (PacksOwnA) unless its pack is kept between calls or more than
    /// MaxChunksPackingOwnA chunks read it. Phases: the depth blocks whose shared packed A fits in PackedABudget
    /// floats (with PacksOwnA: the whole depth, or as much as the shared B's budget allows), ending with a slice
    /// where a phase holds whole slices.
    /// </summary>
    private PackedGemmJob<TOperands> PlanPackedGemm<TOperands>(TOperands operands, GemmOutput output,
        bool slicing, bool aKept) where TOperands : struct, IGemmOperands
    {
        int threads = ThreadCount;
        int mr = PackedGemm.TileRows, nr = PackedGemm.TileColumns;
        int panels = (int)(((long)output.Groups * output.GroupColumns + nr - 1) / nr);
        int rowTiles = (output.Rows + mr - 1) / mr;
        // Few panels and rows to split: as few chunks as MaxPanelsPerTask allows, so each task streams A past many
        // columns (one panel per task reads A for 8 FLOPs a byte); else about four chunks per thread.
        int chunks = rowTiles >= 2 * PackedGemm.MinTilesPerRowPart && panels < 4 * threads * PackedGemm.MaxPanelsPerTask
            ? (panels + PackedGemm.MaxPanelsPerTask - 1) / PackedGemm.MaxPanelsPerTask
            : Math.Min(panels, 4 * threads);
        int panelsPerTask = Math.Clamp((panels + chunks - 1) / chunks, 1, PackedGemm.MaxPanelsPerTask);
        chunks = (panels + panelsPerTask - 1) / panelsPerTask;
        int blockDepth = PackedGemm.BlockDepth(output.Depth);
        int depthBlocks = (output.Depth + blockDepth - 1) / blockDepth;
        int slices = slicing && output.Groups == 1
            ? Math.Clamp(Math.Min((PackedGemm.SlicingPanels + panels - 1) / panels, depthBlocks / 4), 1, depthBlocks)
            : 1;
        int blocksPerSlice = (depthBlocks + slices - 1) / slices;
        slices = (depthBlocks + blocksPerSlice - 1) / blocksPerSlice;

        int rowParts = Math.Clamp((4 * threads + chunks * slices - 1) / (chunks * slices), 1,
            Math.Max(1, rowTiles / PackedGemm.MinTilesPerRowPart));
        // Where the rows would be split (few panels), B would be packed once for every row part: written by one
        // core and read by both, its lines went back and forth between the caches on every call (a batch-8 weight
        // gradient's gathers took twice as long on two threads as on one). With A read in place instead (AVX-512,
        // whole tiles, runs of MinInPlaceRun, up to MaxInPlaceRows rows) and two panels a thread or more, each task
        // takes one panel over every row and packs it in its own cache.
        var rowsOfA = operands.RowsOfA(0);
        bool aInPlace = rowParts > 1 && panels >= 2 * threads && Avx512F.IsSupported && rowsOfA.InPlace &&
            rowsOfA.Run >= PackedGemm.MinInPlaceRun && output.Rows <= PackedGemm.MaxInPlaceRows &&
            output.Rows % mr == 0 && output.Groups == 1 && output.GroupColumns % nr == 0;
        if (aInPlace) (panelsPerTask, chunks, rowParts) = (1, panels, 1);
        int tilesPerPart = (rowTiles + rowParts - 1) / rowParts;
        rowParts = (rowTiles + tilesPerPart - 1) / tilesPerPart;
        bool ownA = !aKept && !aInPlace && chunks <= PackedGemm.MaxChunksPackingOwnA;
        long blockB = (long)chunks * panelsPerTask * blockDepth * nr;
        int blocksPerPhase = ownA || aInPlace
            ? rowParts > 1 ? (int)Math.Clamp(PackedGemm.SharedBBudget / blockB, 1, depthBlocks) : depthBlocks
            : (int)Math.Clamp(PackedGemm.PackedABudget / ((long)rowTiles * mr * blockDepth), 1, depthBlocks);
        // When the depth goes in phases, a phase ends where a slice does, so no slice's task is cut in two by the
        // barrier between phases. (A depth that fits one phase stays one: a kept weight pack needs the whole.)
        if (blocksPerPhase < depthBlocks && blocksPerPhase >= blocksPerSlice)
            blocksPerPhase = blocksPerPhase / blocksPerSlice * blocksPerSlice;
        return new PackedGemmJob<TOperands>
        {
            Operands = operands, Output = output, Panels = panels,
            PanelsPerTask = panelsPerTask, Chunks = chunks, RowParts = rowParts,
            RowsPerPart = tilesPerPart * mr, PaddedRows = rowTiles * mr, BlockDepth = blockDepth,
            SliceDepth = blocksPerSlice * blockDepth, Slices = slices, PhaseDepth = blocksPerPhase * blockDepth,
            SharesB = rowParts > 1 && blockB * blocksPerPhase <= PackedGemm.SharedBBudget, PacksOwnA = ownA,
            ReadsAInPlace = aInPlace, Backend = this,
        };
    }

    /// <summary>
    /// One task of the multiply run of one phase: rows [part·RowsPerPart, …) of C over PanelsPerTask consecutive
    /// column panels, over the depth blocks of its slice that lie in the phase, reading A from the phase's packed A
    /// (block at k0: PaddedRows × kc floats at (k0 − PhaseStart) · PaddedRows, MR-row tiles kc·MR apart), or
    /// packing each RowBlock rows of it into its worker's TaskASlot when PacksOwnA, and B from the phase's shared B
    /// when SharesB, else packing its panels itself.
    /// </summary>
    private struct PackedGemmJob<TOperands> : IParallelJob where TOperands : struct, IGemmOperands
    {
        public TOperands Operands;
        public GemmOutput Output;
        public int Panels, PanelsPerTask, Chunks, RowParts, RowsPerPart, PaddedRows, BlockDepth;
        public int SliceDepth, Slices, PhaseDepth, PhaseStart, PhaseEnd, FirstSlice, PhaseTasks;
        public bool SharesB, PacksOwnA, ReadsAInPlace;
        public float* PackedA, SharedB, Partials;
        public CpuBackend Backend;

        /// <summary>Floats of the packed A of one phase.</summary>
        public readonly long PackedALength => (long)PaddedRows * PhaseDepth;

        /// <summary>Floats of the shared B of one phase: every chunk's panels for every depth block.</summary>
        public readonly long SharedBLength => (long)Chunks * PanelsPerTask * PhaseDepth * PackedGemm.TileColumns;

        /// <summary>Where chunk <paramref name="chunk"/>'s panels for the depth block at <paramref name="k0"/> lie in
        /// the shared B.</summary>
        public readonly float* SharedPanels(int chunk, int k0) =>
            SharedB + ((long)(k0 - PhaseStart) / BlockDepth * Chunks + chunk) * PanelsPerTask * BlockDepth *
            PackedGemm.TileColumns;

        /// <summary>Sets the phase that starts at depth <paramref name="phaseStart"/>, with its packed A in
        /// <paramref name="packedA"/> (already there when <paramref name="packedAReady"/>) and its shared B in
        /// <paramref name="sharedB"/> (null unless SharesB), and returns the job that packs them.</summary>
        public PackPhaseJob<TOperands> StartPhase(int phaseStart, float* packedA, bool packedAReady, float* sharedB)
        {
            PhaseStart = phaseStart;
            PhaseEnd = Math.Min(Output.Depth, phaseStart + PhaseDepth);
            PackedA = packedA;
            SharedB = sharedB;
            FirstSlice = PhaseStart / SliceDepth;
            PhaseTasks = ((PhaseEnd - 1) / SliceDepth - FirstSlice + 1) * Chunks * RowParts;
            int rowBlocks = (Output.Rows + PackedGemm.RowBlock - 1) / PackedGemm.RowBlock;
            int blocks = (PhaseEnd - PhaseStart + BlockDepth - 1) / BlockDepth;
            int aPieces = packedAReady ? 0 : rowBlocks * blocks;
            return new PackPhaseJob<TOperands>
            {
                Gemm = this, RowBlocks = rowBlocks, APieces = aPieces,
                Pieces = aPieces + (sharedB == null ? 0 : Panels * blocks),
            };
        }

        /// <summary>Packs the panels of chunk <paramref name="chunk"/> over depth [k0, k0 + kc) into
        /// <paramref name="dst"/>, one run per column group.</summary>
        public readonly void PackChunk(float* dst, int chunk, int k0, int kc, float* work) =>
            PackPanels(dst, chunk * PanelsPerTask, PanelsPerTask, k0, kc, work);

        /// <summary>Packs <paramref name="count"/> panels from panel <paramref name="first"/> over depth
        /// [k0, k0 + kc) into <paramref name="dst"/>, one run per column group.</summary>
        private readonly void PackPanels(float* dst, int first, int count, int k0, int kc, float* work)
        {
            int nr = PackedGemm.TileColumns;
            long start = (long)first * nr;
            long end = Math.Min(TotalColumns, start + (long)count * nr);
            for (long column = start; column < end;)
            {
                var (group, col0) = Locate(column);
                int cols = (int)Math.Min(end - column, Output.GroupColumns - col0);
                long local = column - start;
                Operands.PackB(dst + local / nr * kc * nr, group, col0, cols, (int)(local % nr), k0, kc, work);
                column += cols;
            }
        }

        /// <summary>Packs piece <paramref name="piece"/> of the phase's shared B: one panel of one depth block, so
        /// that the few chunks of a GEMM whose rows are split (a weight gradient at batch 1) still pack on every
        /// thread.</summary>
        public readonly void PackSharedPanel(int piece, float* work)
        {
            int panel = piece % Panels, chunk = panel / PanelsPerTask, inChunk = panel % PanelsPerTask;
            int k0 = PhaseStart + piece / Panels * BlockDepth, kc = Math.Min(BlockDepth, PhaseEnd - k0);
            PackPanels(SharedPanels(chunk, k0) + (long)inChunk * kc * PackedGemm.TileColumns, panel, 1, k0, kc, work);
        }

        /// <summary>Columns of C over every column group: a panel is NR consecutive ones, and may span groups
        /// (images) when a group's width is not a multiple of NR.</summary>
        private readonly long TotalColumns => (long)Output.Groups * Output.GroupColumns;

        /// <summary>The column group and the column within it of column <paramref name="column"/> of all
        /// groups'.</summary>
        private readonly (int Group, int Column) Locate(long column) =>
            ((int)(column / Output.GroupColumns), (int)(column % Output.GroupColumns));

        public void Execute(int task, int worker)
        {
            int mr = PackedGemm.TileRows, nr = PackedGemm.TileColumns;
            int part = task % RowParts, chunk = task / RowParts % Chunks, slice = FirstSlice + task / RowParts / Chunks;
            int rowStart = part * RowsPerPart, rowEnd = Math.Min(Output.Rows, rowStart + RowsPerPart);
            int firstPanel = chunk * PanelsPerTask;
            int panelCount = Math.Min(PanelsPerTask, Panels - firstPanel);
            var packedB = SharedB != null ? null : (float*)Backend.WorkerScratch(worker, PackedBSlot,
                (long)panelCount * BlockDepth * nr * sizeof(float));
            var edge = (float*)Backend.WorkerScratch(worker, EdgeTileSlot,
                (PackedGemm.NarrowColumns > 0 ? PackedGemm.NarrowTiles : 1) * mr * nr * sizeof(float));
            var work = SharedB != null && !PacksOwnA ? null : (float*)Backend.WorkerScratch(worker, PackWorkSlot,
                PackedGemm.PackWorkFloats(BlockDepth) * sizeof(float));
            var ownA = !PacksOwnA ? null : (float*)Backend.WorkerScratch(worker, TaskASlot,
                (long)PackedGemm.RowBlock * BlockDepth * sizeof(float));

            float* target = Output.C;
            long groupStride = Output.GroupStride, rowStride = Output.RowStride;
            float alpha = Output.Alpha, firstBeta = Output.Beta;
            if (Partials != null)
            {
                target = Partials + slice * (long)Output.Rows * Output.GroupColumns;
                rowStride = Output.GroupColumns;
                (alpha, firstBeta) = (1f, 0f);
            }

            int depthStart = slice * SliceDepth, depthEnd = Math.Min(Output.Depth, depthStart + SliceDepth);
            int from = Math.Max(depthStart, PhaseStart), to = Math.Min(depthEnd, PhaseEnd);
            for (int k0 = from; k0 < to; k0 += BlockDepth)
            {
                int kc = Math.Min(BlockDepth, to - k0);
                float beta = k0 == depthStart ? firstBeta : 1f;
                float* packedA = PacksOwnA ? null : PackedA + (long)(k0 - PhaseStart) * PaddedRows;
                // The last depth block (of the last phase) finishes each tile's sums: the epilogue runs on the tile
                // while it is hot.
                bool finishes = Partials == null && k0 + kc == depthEnd && Output.HasEpilogue;
                if (SharedB != null) packedB = SharedPanels(chunk, k0);
                else PackChunk(packedB, chunk, k0, kc, work);

                for (int row0 = rowStart; row0 < rowEnd; row0 += PackedGemm.RowBlock)
                {
                    int rows = Math.Min(PackedGemm.RowBlock, rowEnd - row0);
                    if (PacksOwnA)
                    {
                        for (int r = 0; r < rows; r += mr)
                            Operands.PackA(ownA + (long)r * kc, row0 + r, Math.Min(mr, rows - r), k0, kc, work);
                        packedA = ownA - (long)row0 * kc;
                    }
                    for (int p = 0; p < panelCount; p++)
                    {
                        long column = (long)(firstPanel + p) * nr;
                        int cols = (int)Math.Min(nr, TotalColumns - column);
                        var (group, col0) = Locate(column);
                        bool oneGroup = col0 + cols <= Output.GroupColumns;
                        float* panelB = packedB + (long)p * kc * nr;
                        if (cols <= PackedGemm.NarrowColumns)
                        {
                            // A last panel of a few columns: summed along the rows, several tiles at a time.
                            for (int r = 0; r < rows; r += mr * PackedGemm.NarrowTiles)
                            {
                                int tiles = Math.Min(PackedGemm.NarrowTiles, (rows - r + mr - 1) / mr);
                                PackedGemm.NarrowPanel(packedA + (long)(row0 + r) * kc, tiles, panelB, kc, cols,
                                    edge);
                                for (int t = 0; t < tiles; t++)
                                    StoreEdge(edge + t * mr * nr, target, group, col0, cols, row0 + r + t * mr,
                                        Math.Min(mr, rows - r - t * mr), rowStride, alpha, beta, finishes);
                            }
                            continue;
                        }
                        for (int r = 0; r < rows; r += mr)
                        {
                            int tileRows = Math.Min(mr, rows - r);
                            float* tileA = packedA + (long)(row0 + r) * kc;
                            if (tileRows == mr && cols == nr && oneGroup)
                            {
                                float* c = target + group * groupStride + (row0 + r) * rowStride + col0;
                                if (ReadsAInPlace)
                                    PackedGemm.MicroKernelInPlace(Operands.RowsOfA(row0 + r), k0, panelB, kc, c,
                                        rowStride, alpha, beta);
                                else PackedGemm.MicroKernel(tileA, panelB, kc, c, rowStride, alpha, beta);
                                if (finishes) Output.ApplyEpilogue(c - target, row0 + r, tileRows, cols);
                                continue;
                            }
                            // An edge tile, or one across column groups: through scratch, each group's part stored
                            // at its own place (the sums are the same chains either way).
                            PackedGemm.MicroKernel(tileA, panelB, kc, edge, nr, 1f, 0f);
                            StoreEdge(edge, target, group, col0, cols, row0 + r, tileRows, rowStride, alpha, beta,
                                finishes);
                        }
                    }
                }
            }
        }

        /// <summary>An edge tile's sums (<paramref name="tileRows"/> rows of NR, <paramref name="cols"/> of them
        /// C's) into C at <paramref name="row"/>, column <paramref name="col0"/> of <paramref name="group"/>, each
        /// column group's part at its own place, combined with alpha and beta, then the epilogue when the sums are
        /// final.</summary>
        private readonly void StoreEdge(float* sums, float* target, int group, int col0, int cols, int row,
            int tileRows, long rowStride, float alpha, float beta, bool finishes)
        {
            int nr = PackedGemm.TileColumns;
            for (int j = 0, g = group, col = col0; j < cols; g++, col = 0)
            {
                int count = Math.Min(cols - j, Output.GroupColumns - col);
                float* c = target + g * Output.GroupStride + row * rowStride + col;
                for (int i = 0; i < tileRows; i++)
                    PackedGemm.CombineRow(sums + i * nr + j, c + i * rowStride, count, alpha, beta);
                if (finishes) Output.ApplyEpilogue(c - target, row, tileRows, count);
                j += count;
            }
        }
    }

    /// <summary>The packing run of one phase: pieces [0, APieces) each pack RowBlock rows of A over one depth block
    /// into the phase's packed A, the rest one chunk's B panels over one depth block into the shared B. Pure copies,
    /// so who packs a piece never changes a bit.</summary>
    private struct PackPhaseJob<TOperands> : IParallelJob where TOperands : struct, IGemmOperands
    {
        public PackedGemmJob<TOperands> Gemm;
        public int RowBlocks, APieces, Pieces;

        public void Execute(int task, int worker)
        {
            int mr = PackedGemm.TileRows, blockDepth = Gemm.BlockDepth;
            var work = (float*)Gemm.Backend.WorkerScratch(worker, PackWorkSlot,
                PackedGemm.PackWorkFloats(blockDepth) * sizeof(float));
            if (task >= APieces)
            {
                Gemm.PackSharedPanel(task - APieces, work);
                return;
            }
            int k0 = Gemm.PhaseStart + task / RowBlocks * blockDepth, kc = Math.Min(blockDepth, Gemm.PhaseEnd - k0);
            int row0 = task % RowBlocks * PackedGemm.RowBlock;
            int rows = Math.Min(PackedGemm.RowBlock, Gemm.Output.Rows - row0);
            float* block = Gemm.PackedA + (long)(k0 - Gemm.PhaseStart) * Gemm.PaddedRows;
            for (int r = 0; r < rows; r += mr)
                Gemm.Operands.PackA(block + (long)(row0 + r) * kc, row0 + r, Math.Min(mr, rows - r), k0, kc, work);
        }
    }

    /// <summary>Row <c>task</c> of C (one column group): C = alpha · Σ over slices, in order, + beta · C.</summary>
    private struct SliceSumJob : IParallelJob
    {
        public float* Partials;
        public int Slices;
        public long SliceLength;
        public GemmOutput Output;

        public void Execute(int task, int worker)
        {
            float* row = Output.C + task * Output.RowStride;
            float* partial = Partials + (long)task * Output.GroupColumns;
            for (int j = 0; j < Output.GroupColumns; j++)
            {
                float sum = partial[j];
                for (int s = 1; s < Slices; s++) sum += partial[s * SliceLength + j];
                row[j] = PackedGemm.Combine(sum, Output.Alpha, Output.Beta, Output.Beta == 0f ? 0f : row[j]);
            }
            if (Output.HasEpilogue) Output.ApplyEpilogue(task * Output.RowStride, task, 1, Output.GroupColumns);
        }
    }

    /// <summary>Row <c>task</c> of C: a row accumulator over k (B untransposed) or one dot product per element.</summary>
    private struct GenericGemmJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* A, B, C;
        public int M, N, K;
        public T Alpha, Beta;
        public bool TransposeA, TransposeB;
        public CpuBackend Backend;

        public void Execute(int task, int worker)
        {
            int i = task;
            T* row = C + (long)i * N;
            var sums = (T*)Backend.WorkerScratch(worker, PackedBSlot, (long)N * sizeof(T));
            if (TransposeB)
            {
                for (int j = 0; j < N; j++)
                {
                    T sum = T.Zero;
                    T* bRow = B + (long)j * K;
                    for (int p = 0; p < K; p++) sum += ElementA(i, p) * bRow[p];
                    sums[j] = sum;
                }
            }
            else
            {
                for (int j = 0; j < N; j++) sums[j] = T.Zero;
                for (int p = 0; p < K; p++)
                {
                    T a = ElementA(i, p);
                    T* bRow = B + (long)p * N;
                    for (int j = 0; j < N; j++) sums[j] += a * bRow[j];
                }
            }
            for (int j = 0; j < N; j++)
                row[j] = Beta == T.Zero ? Alpha * sums[j] : Alpha * sums[j] + Beta * row[j];
        }

        private readonly T ElementA(int i, int p) => TransposeA ? A[(long)p * M + i] : A[(long)i * K + p];
    }
}
