// Winograd F(2x2, 3x3) and, with AVX-512, F(4x4, 3x3) for the 3x3, stride-1 float convolutions (AVX2+FMA, and
// AVX-512): the forward pass, the stride-1 data gradient (the forward convolution of dy with the kernel flipped and
// its channels swapped) and the weight gradient (the same transforms transposed: WinogradWeightJob). Each m×m block
// of outputs (a tile, m = 2 or 4) of an output channel k is
//   y = Aᵀ · [ Σ_c (G·w[k, c]·Gᵀ) ⊙ (Bᵀ·d_c·B) ] · A,
// d_c the (m + 2)² input patch under the tile in channel c: 16 multiplies per tile of 4 outputs and channel pair, or
// 36 per tile of 16, where the direct convolution has 36 or 144. The (m + 2)² elements ξ of the transformed tiles
// make as many independent products M_ξ[k][tile] = Σ_c U_ξ[k][c] · V_ξ[c][tile], run by the packed GEMM's
// micro-kernel (U packed as its A tiles, V as its B panels). A task owns a band of tile rows of one image, or a run
// of whole images (where an image has too few tiles to fill the micro-kernel's panels), or, where U is too large for
// L2, a run of whole images and a part of the output channels: it copies its input rows, zero-padded, then goes
// through its tiles a block at a time (transform the inputs into V, the products into M, transform M back into
// outputs, with the epilogue: + bias, + residual, ReLU), so V and M stay in cache while U streams from L2 or L3.
// Inputs are transformed 8 tiles at a time (a tile row's 8m + 2 input columns, split into even and odd ones for
// m = 2, into 4 phases by a two-register permute for m = 4; where a row has 4 tiles, 4 tiles of each of two tile
// rows), outputs 8 tiles at a time likewise. Every output element is computed the same way whatever block or task
// holds its tile, so the result does not depend on the thread count. F(2x2, 3x3) serves 512 ≤ K·C ≤ 512² with both
// counts at least 16 (with 16 × 16 channels the transforms cost more than the products save; with AVX-512 from 32²,
// and to 256² for one image: see WinogradChannelProducts) and a tile row of nearly whole vectors of 8 tiles (at most
// an eighth of the tiles computed and dropped: maps 7, 8, 13 to 16, 27 to 32, 55 to 64 … wide). F(4x4, 3x3) takes
// over on AVX-512 for 16² ≤ K·C ≤ 512² (the weight gradient 32² to 256²) where its tiles waste at most an eighth of
// the outputs (maps 15 or 16, 27 to 32, 53 to 64 … wide whose heights are nearly whole tiles too: WinogradTileOf).
// Other shapes keep the direct kernels and the GEMM. Outputs of 2 MiB or more go to memory in non-temporal stores
// (CpuBackend.StreamedOutputBytes), and the input copies fetch their source ahead (ShiftedSource.FetchAhead).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

/// <summary>One Winograd F(Tile×Tile, 3x3) convolution over a batch (Tile 2, or 4 with AVX-512): out[n, k, y, x] =
/// Σ_c Σ_{r,s} U⁻¹-side weights applied to In[n, c, y + r − PadTop, x + s − PadLeft] (zero outside), through the
/// transformed weights <see cref="Weights"/> (WinogradWeightsJob), plus the epilogue. Tiles go 8 to a group: 8 tiles
/// of one tile row, or with PairedRows (4 tiles a row) 4 tiles of each of two tile rows. Task t: output rows
/// [p·PartRows, (p + 1)·PartRows) of the transformed weights for part p = t % Parts, then, of r = t / Parts, group
/// rows [b·BandRows, (b + 1)·BandRows) of band b = r % Bands of the run of Images images r / Bands (whole images
/// when a run holds more than one).</summary>
internal unsafe struct WinogradJob : IParallelJob
{
    /// <summary>Tiles of a transform vector: 8 tiles, 8·Tile output columns.</summary>
    private const int GroupTiles = 8;

    /// <summary>Floats (one cache line) between the end of one element's plane of V or M (and of U and of the weight
    /// gradient's sums S) and the start of the next. A plane is channels × 128 bytes a panel of V, output channels ×
    /// 128 bytes a panel of M: from 32 channels a multiple of 4 KiB, so without it the transforms' 16 loads or
    /// stores of a tile group, one a plane, all fall in one set of L1 and thrash its 12 ways (32×16×16 at batch 128
    /// took 2.33 ms instead of 1.59, its transforms half the time; the 128–512-channel layers ran 6–10 % slower).
    /// </summary>
    internal const int PlaneSkew = 16;

    public float* Input, Weights, Output, Bias, Residual;
    public int Batch, Channels, Height, Width, OutChannels, OutHeight, OutWidth, PadTop, PadLeft;
    public int Tile, TileRows, RowGroups, BandRows, Bands, Images, PartRows, Parts, BlockGroups;
    public bool PairedRows, Relu;

    /// <summary>Rows of whole cache lines go to the output in non-temporal stores (CpuBackend.StreamedOutputBytes),
    /// fenced before the task ends.</summary>
    public bool Streaming;

    /// <summary>Weights holds the forward's transformed weights of F(2x2, 3x3), read for the data gradient: its
    /// element ξ = 4a + b is the forward's element 4·p(a) + p(b), p swapping 0 and 3 (G·J = P·G for the kernel
    /// flipped by J, P that swap), each plane's tiles read transposed (PackedGemm.MicroKernelTransposedA); both
    /// channel counts are multiples of 8.</summary>
    public bool ForwardWeights;
    public CpuBackend Backend;

    /// <summary>Output channels rounded up to the micro-kernel's rows.</summary>
    private readonly int PaddedOut => WinogradWeightsJob.PaddedRows(OutChannels);

    /// <summary>Floats of a band row in the input copy: a group's columns (8 tiles) per group of a row, the 2 of the
    /// last tiles' halo, and slack to a whole vector.</summary>
    public readonly int Pitch => PitchOf(Tile, RowGroups);

    /// <summary>Floats of a band row for tiles of <paramref name="tile"/> outputs a side, groups of 8 tiles.</summary>
    internal static int PitchOf(int tile, int rowGroups) => GroupTiles * tile * rowGroups + 8;

    /// <summary>Floats from a group's first tile to its fifth in a band whose rows are <paramref name="pitch"/>
    /// apart: 4 tiles along the row, or with <paramref name="paired"/> rows a tile row down.</summary>
    internal static int SecondHalf(int tile, int pitch, bool paired) => paired ? tile * pitch : GroupTiles / 2 * tile;

    /// <summary>Elements ξ of a transformed tile: (Tile + 2)².</summary>
    public readonly int Planes => WinogradWeightsJob.PlanesOf(Tile);

    /// <summary>Tile rows of a group row: 2 with PairedRows, else 1.</summary>
    public readonly int GroupRowTiles => PairedRows ? 2 : 1;

    public void Execute(int task, int worker)
    {
        int step = GroupRowTiles, part = task % Parts, run = task / Parts / Bands;
        int n0 = run * Images, images = Math.Min(Images, Batch - n0), ty0 = task / Parts % Bands * BandRows * step;
        int groupRows = (Math.Min(BandRows * step, TileRows - ty0) + step - 1) / step;
        int mr = PackedGemm.TileRows, nr = PackedGemm.TileColumns, panelGroups = nr / GroupTiles;
        int tile = Tile, planes = Planes, groupColumns = GroupTiles * tile;
        int rows = tile * groupRows * step + 2, pitch = Pitch, panels = (BlockGroups * GroupTiles + nr - 1) / nr;
        int tb = panels * nr, kp = PaddedOut, half = SecondHalf(tile, pitch, PairedRows);
        int k0 = part * PartRows, partRows = Math.Min(PartRows, kp - k0);
        long bandFloats = (long)Channels * rows * pitch;
        float* band = Backend.WinogradScratch(worker, 0, images * bandFloats);
        long vPlane = (long)panels * Channels * nr + PlaneSkew, mPlane = (long)PartRows * tb + PlaneSkew;
        long uPlane = WinogradWeightsJob.PlaneFloats(OutChannels, Channels);
        float* v = Backend.WinogradScratch(worker, 1, planes * vPlane);
        float* m = Backend.WinogradScratch(worker, 2, planes * mPlane);
        for (int i = 0; i < images; i++)
            CopyBand(Input + (long)(n0 + i) * Channels * Height * Width, band + i * bandFloats, tile * ty0 - PadTop,
                rows, pitch);
        float* transformRows = stackalloc float[Winograd4.TransformFloats + 16];
        transformRows = Winograd4.CacheLineAligned(transformRows);
        int bandGroups = groupRows * RowGroups, groups = images * bandGroups;
        for (int q0 = 0; q0 < groups; q0 += BlockGroups)
        {
            int count = Math.Min(BlockGroups, groups - q0), blockPanels = (count * GroupTiles + nr - 1) / nr;
            for (int j = 0; j < count; j++)
            {
                int q = q0 + j, local = q % bandGroups, row = local / RowGroups, gx = local % RowGroups;
                float* patch = band + q / bandGroups * bandFloats + (long)tile * row * step * pitch +
                    groupColumns * gx;
                float* dst = v + (long)(j / panelGroups) * Channels * nr + j % panelGroups * GroupTiles;
                for (int c = 0; c < Channels; c++, patch += (long)rows * pitch)
                {
                    if (tile == 4) Winograd4.TransformInput(patch, pitch, half, dst + c * nr, vPlane, transformRows);
                    else TransformInput(patch, pitch, half, dst + c * nr, vPlane);
                }
            }
            int k1 = Math.Min(k0 + partRows, OutChannels);
            if (Residual != null)
                for (int j = 0; j < count; j++)
                {
                    int q = q0 + j, local = q % bandGroups, ty = ty0 + local / RowGroups * step;
                    FetchResidual(n0 + q / bandGroups, tile * ty, groupColumns * (local % RowGroups), k0, k1);
                }
            // A tile of U stays in L1 while it meets every panel of the block.
            for (int xi = 0; xi < planes; xi++)
            for (int kt = 0; kt < partRows; kt += mr)
            {
                if (ForwardWeights)
                {
                    // Rows k0 + kt … of the transpose: the forward's input channels, 8 floats each in every tile.
                    float* blocks = Weights + FlippedPlane(xi) * uPlane + (long)(k0 + kt) * mr;
                    for (int p = 0; p < blockPanels; p++)
                        PackedGemm.MicroKernelTransposedA(blocks, (long)mr * OutChannels,
                            v + xi * vPlane + (long)p * Channels * nr, Channels,
                            m + xi * mPlane + (long)kt * tb + p * nr, tb);
                    continue;
                }
                float* a = Weights + xi * uPlane + (long)(k0 + kt) * Channels;
                for (int p = 0; p < blockPanels; p++)
                    PackedGemm.MicroKernel(a, v + xi * vPlane + (long)p * Channels * nr, Channels,
                        m + xi * mPlane + (long)kt * tb + p * nr, tb, 1f, 0f);
            }
            for (int j = 0; j < count; j++)
            {
                int q = q0 + j, local = q % bandGroups, ty = ty0 + local / RowGroups * step, gx = local % RowGroups;
                int n = n0 + q / bandGroups;
                if (tile == 4) StoreGroup4(m + j * GroupTiles, tb, mPlane, n, 4 * ty, groupColumns * gx, k0, k1);
                else StoreGroup(m + j * GroupTiles, tb, mPlane, n, 2 * ty, groupColumns * gx, k0, k1);
            }
        }
        if (Streaming) Sse.StoreFence(); // the streamed stores are visible before the task counts as done
    }

    /// <summary>Prefetches the residual under a group's outputs (rows y … and columns x … of image n, channels
    /// [k0, k1)), before the block's products: the residual is the block's input, written two layers before and
    /// read from memory, and its loads had stalled the output transform. ResNet-20 inference at batch 128 in one
    /// process, alternated: 28.9 → 28.1 ms.</summary>
    private readonly void FetchResidual(int n, int y, int x, int k0, int k1)
    {
        int rows = Math.Min(Tile * GroupRowTiles, OutHeight - y);
        int columns = Math.Min(PairedRows ? GroupTiles / 2 * Tile : GroupTiles * Tile, OutWidth - x);
        for (int k = k0; k < k1; k++)
        {
            float* plane = Residual + ((long)n * OutChannels + k) * OutHeight * OutWidth;
            for (int i = 0; i < rows; i++)
            {
                float* row = plane + (long)(y + i) * OutWidth + x;
                for (int c = 0; c < columns; c += 16) Sse.Prefetch0(row + c);
                Sse.Prefetch0(row + columns - 1);
            }
        }
    }

    /// <summary>The forward's element of F(2x2, 3x3) that holds element ξ of the flipped kernel's transform.
    /// </summary>
    private static int FlippedPlane(int xi)
    {
        static int Swap(int i) => i == 0 ? 3 : i == 3 ? 0 : i;
        return 4 * Swap(xi / 4) + Swap(xi % 4);
    }

    /// <summary>Rows [y0, y0 + rows) of every channel of one image into band[c][i][·], each row shifted right by
    /// PadLeft and zero outside the image.</summary>
    private readonly void CopyBand(float* image, float* band, int y0, int rows, int pitch) =>
        CopyPlanes(image, Channels, Height, Width, y0, PadLeft, band, rows, pitch);

    /// <summary>Rows [y0, y0 + rows) of <paramref name="planes"/> planes (height × width each) into
    /// dst[p][i][·], rows <paramref name="pitch"/> floats apart, each shifted right by x0 and zero outside the plane;
    /// with AVX-512 a row at a time by ShiftedSource.PaddedRow (a clear and a copy call a row cost as much as the
    /// copy itself on 8- to 32-float rows). Where the rows cover the planes, the source ahead of each row is fetched
    /// as the row is copied (ShiftedSource.FetchAhead; a band of a larger map would fetch other bands' rows).
    /// </summary>
    internal static void CopyPlanes(float* src, int planes, int height, int width, int y0, int x0, float* dst,
        int rows, int pitch)
    {
        int count = Math.Min(width, pitch - x0);
        bool padded = Avx512F.IsSupported && x0 >= 0 && pitch >= 8;
        bool prefetch = Sse.IsSupported && y0 <= 0 && y0 + rows >= height;
        for (int p = 0; p < planes; p++)
        for (int i = 0; i < rows; i++)
        {
            float* row = dst + ((long)p * rows + i) * pitch, source = src + ((long)p * height + y0 + i) * width;
            int y = y0 + i;
            if (prefetch && y >= 0 && y < height) ShiftedSource.FetchAhead(source, count);
            if (padded && y >= 0 && y < height)
            {
                ShiftedSource.PaddedRow(source, count, x0, pitch, row);
                continue;
            }
            new Span<float>(row, pitch).Clear();
            if (y < 0 || y >= height) continue;
            new ReadOnlySpan<float>(source, count).CopyTo(new Span<float>(row + x0, count));
        }
    }

    /// <summary>Bᵀ·d·B for 8 tiles: d[i][j] = patch[i·pitch + 2t + j] for tile t &lt; 4 and
    /// patch[half + i·pitch + 2(t − 4) + j] for the others (half = 8: one row of 8 tiles; twice the pitch: 4 tiles
    /// of two tile rows); element ξ = 4a + b of the result goes to dst[ξ·xiStride + t].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void TransformInput(float* patch, int pitch, int half, float* dst, long xiStride)
    {
        // Each row's columns j = 0 … 3 of the 8 tiles, combined across the row (·B) as they are read.
        Row(patch, half, out var r00, out var r01, out var r02, out var r03);
        Row(patch + pitch, half, out var r10, out var r11, out var r12, out var r13);
        Row(patch + 2 * pitch, half, out var r20, out var r21, out var r22, out var r23);
        Row(patch + 3 * pitch, half, out var r30, out var r31, out var r32, out var r33);
        // Bᵀ· down the columns: rows 0 − 2, 1 + 2, 2 − 1, 1 − 3.
        Store(dst, xiStride, 0, r00 - r20, r01 - r21, r02 - r22, r03 - r23);
        Store(dst, xiStride, 4, r10 + r20, r11 + r21, r12 + r22, r13 + r23);
        Store(dst, xiStride, 8, r20 - r10, r21 - r11, r22 - r12, r23 - r13);
        Store(dst, xiStride, 12, r10 - r30, r11 - r31, r12 - r32, r13 - r33);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Row(float* row, int half, out Vector256<float> c0, out Vector256<float> c1,
            out Vector256<float> c2, out Vector256<float> c3)
        {
            var d0 = ShiftedSource.EveryOtherElement(row, row + half, false);
            var d1 = ShiftedSource.EveryOtherElement(row, row + half, true);
            var d2 = ShiftedSource.EveryOtherElement(row + 2, row + half + 2, false);
            var d3 = ShiftedSource.EveryOtherElement(row + 2, row + half + 2, true);
            (c0, c1, c2, c3) = (d0 - d2, d1 + d2, d2 - d1, d1 - d3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Store(float* dst, long xiStride, int xi, Vector256<float> v0, Vector256<float> v1,
            Vector256<float> v2, Vector256<float> v3)
        {
            v0.Store(dst + xi * xiStride);
            v1.Store(dst + (xi + 1) * xiStride);
            v2.Store(dst + (xi + 2) * xiStride);
            v3.Store(dst + (xi + 3) * xiStride);
        }
    }

    /// <summary>Aᵀ·M·A for the 8 tiles of a group of output channels [k0, k1) (M_ξ[k][t] at
    /// m[ξ·xiStride + (k − k0)·rowStride + t]) into image n, through the epilogue: rows y, y + 1 and columns
    /// x … x + 15, or with PairedRows columns 0 … 7 of rows y, y + 1 (tiles 0–3) and y + 2, y + 3 (tiles 4–7); rows
    /// and columns past the output are dropped. An 8-wide map's 4 rows, 32 consecutive outputs, are stored as one
    /// row (of two cache lines, when streamed). The vectors stay in registers, as StoreGroup4's.</summary>
    private readonly void StoreGroup(float* m, int rowStride, long xiStride, int n, int y, int x, int k0, int k1)
    {
        float* staging = stackalloc float[32 + 16];
        staging = Winograd4.CacheLineAligned(staging);
        for (int k = k0; k < k1; k++)
        {
            float* mk = m + (long)(k - k0) * rowStride;
            // ·A across each row of M (columns 0 + 1 + 2 and 1 − 2 − 3), then Aᵀ· down the columns: output rows 0
            // (v0, v1) and 1 (v2, v3) of the 8 tiles, 16 consecutive outputs each.
            Across(mk, xiStride, 0, out var a0, out var b0);
            Across(mk, xiStride, 4, out var a1, out var b1);
            Across(mk, xiStride, 8, out var a2, out var b2);
            Across(mk, xiStride, 12, out var a3, out var b3);
            ShiftedSource.Interleave(a0 + a1 + a2, b0 + b1 + b2, out var v0, out var v1);
            ShiftedSource.Interleave(a1 - a2 - a3, b1 - b2 - b3, out var v2, out var v3);
            long plane = ((long)n * OutChannels + k) * OutHeight * OutWidth;
            float bias = Bias == null ? 0f : Bias[k];
            if (!PairedRows)
            {
                int count = Math.Min(16, OutWidth - x);
                StoreOutputs(v0, v1, v0, v1, 16, plane + (long)y * OutWidth + x, count, bias, staging);
                if (y + 1 < OutHeight)
                    StoreOutputs(v2, v3, v2, v3, 16, plane + (long)(y + 1) * OutWidth + x, count, bias, staging);
            }
            else if (OutWidth == 8)
                // Tiles 0–3 hold rows y (v0), y + 1 (v2), tiles 4–7 rows y + 2 (v1), y + 3 (v3).
                StoreOutputs(v0, v2, v1, v3, 32, plane + (long)y * 8, 8 * Math.Min(4, OutHeight - y), bias, staging);
            else
            {
                int count = Math.Min(8, OutWidth - x);
                for (int i = 0; i < 4 && y + i < OutHeight; i++)
                {
                    var row = i switch { 0 => v0, 1 => v2, 2 => v1, _ => v3 };
                    StoreOutputs(row, row, row, row, 8, plane + (long)(y + i) * OutWidth + x, count, bias, staging);
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Across(float* mk, long xiStride, int xi, out Vector256<float> left, out Vector256<float> right)
        {
            var m0 = Vector256.Load(mk + xi * xiStride);
            var m1 = Vector256.Load(mk + (xi + 1) * xiStride);
            var m2 = Vector256.Load(mk + (xi + 2) * xiStride);
            var m3 = Vector256.Load(mk + (xi + 3) * xiStride);
            (left, right) = (m0 + m1 + m2, m1 - m2 - m3);
        }

    }

    /// <summary>Aᵀ·M·A for the 8 tiles of a group of F(4x4, 3x3) for output channels [k0, k1) (M_ξ[k][t] at
    /// m[ξ·xiStride + (k − k0)·rowStride + t]) into image n, through the epilogue: rows y … y + 3 and columns
    /// x … x + 31, or with PairedRows columns 0 … 15 of rows y … y + 3 (tiles 0–3) and y + 4 … y + 7 (tiles 4–7);
    /// rows and columns past the output are dropped. A channel's 36 elements, the 24 vectors across and the 16
    /// outputs stay in registers (through stack arrays, their stores and loads had made this a fifth of ResNet-20's
    /// inference).</summary>
    private readonly void StoreGroup4(float* m, int rowStride, long xiStride, int n, int y, int x, int k0, int k1)
    {
        float* staging = stackalloc float[32 + 16];
        staging = Winograd4.CacheLineAligned(staging);
        for (int k = k0; k < k1; k++)
        {
            float* mk = m + (long)(k - k0) * rowStride;
            // ·A across each row a of M into (ra0 … ra3), then Aᵀ· down each column j into output row i's oij.
            Across(mk, xiStride, 0, out var r00, out var r01, out var r02, out var r03);
            Across(mk, xiStride, 1, out var r10, out var r11, out var r12, out var r13);
            Across(mk, xiStride, 2, out var r20, out var r21, out var r22, out var r23);
            Across(mk, xiStride, 3, out var r30, out var r31, out var r32, out var r33);
            Across(mk, xiStride, 4, out var r40, out var r41, out var r42, out var r43);
            Across(mk, xiStride, 5, out var r50, out var r51, out var r52, out var r53);
            Winograd4.OutputCombine(r00, r10, r20, r30, r40, r50, out var o00, out var o10, out var o20, out var o30);
            Winograd4.OutputCombine(r01, r11, r21, r31, r41, r51, out var o01, out var o11, out var o21, out var o31);
            Winograd4.OutputCombine(r02, r12, r22, r32, r42, r52, out var o02, out var o12, out var o22, out var o32);
            Winograd4.OutputCombine(r03, r13, r23, r33, r43, r53, out var o03, out var o13, out var o23, out var o33);
            long plane = ((long)n * OutChannels + k) * OutHeight * OutWidth;
            float bias = Bias == null ? 0f : Bias[k];
            StoreRow4(o00, o01, o02, o03, plane, y, x, bias, staging);
            StoreRow4(o10, o11, o12, o13, plane, y + 1, x, bias, staging);
            StoreRow4(o20, o21, o22, o23, plane, y + 2, x, bias, staging);
            StoreRow4(o30, o31, o32, o33, plane, y + 3, x, bias, staging);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Across(float* mk, long xiStride, int a, out Vector256<float> r0, out Vector256<float> r1,
            out Vector256<float> r2, out Vector256<float> r3)
        {
            float* at = mk + 6 * a * xiStride;
            Winograd4.OutputCombine(Vector256.Load(at), Vector256.Load(at + xiStride),
                Vector256.Load(at + 2 * xiStride), Vector256.Load(at + 3 * xiStride),
                Vector256.Load(at + 4 * xiStride), Vector256.Load(at + 5 * xiStride), out r0, out r1, out r2, out r3);
        }
    }

    /// <summary>Row i of a group's F(4x4, 3x3) outputs (column j of tile t in lane t of yj) through the epilogue:
    /// 32 outputs at row y, column x, or with PairedRows 16 at row y (tiles 0–3) and 16 at row y + 4 (tiles 4–7);
    /// rows past the output are dropped, and a row that ends past it goes through <paramref name="staging"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private readonly void StoreRow4(Vector256<float> y0, Vector256<float> y1, Vector256<float> y2,
        Vector256<float> y3, long plane, int y, int x, float bias, float* staging)
    {
        if (y >= OutHeight) return;
        Winograd4.InterleaveColumns(y0, y1, y2, y3, out var v0, out var v1, out var v2, out var v3);
        if (!PairedRows)
        {
            StoreOutputs(v0, v1, v2, v3, 32, plane + (long)y * OutWidth + x, Math.Min(32, OutWidth - x), bias,
                staging);
            return;
        }
        int count = Math.Min(16, OutWidth - x);
        StoreOutputs(v0, v1, v0, v1, 16, plane + (long)y * OutWidth + x, count, bias, staging);
        if (y + 4 < OutHeight)
            StoreOutputs(v2, v3, v2, v3, 16, plane + (long)(y + 4) * OutWidth + x, count, bias, staging);
    }

    /// <summary>The first <paramref name="width"/> (8, 16 or 32) of the consecutive outputs v0 … v3 at element
    /// <paramref name="at"/> through the epilogue (as GemmOutput.EpilogueRow: + bias, + residual, ReLU), the first
    /// <paramref name="count"/> of them stored: a whole row straight from the registers (in non-temporal stores when
    /// Streaming and it starts a cache line), a part through <paramref name="staging"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private readonly void StoreOutputs(Vector256<float> v0, Vector256<float> v1, Vector256<float> v2,
        Vector256<float> v3, int width, long at, int count, float bias, float* staging)
    {
        float* residual = Residual == null ? null : Residual + at, dst = Output + at;
        if (count < width)
        {
            v0.Store(staging);
            v1.Store(staging + 8);
            v2.Store(staging + 16);
            v3.Store(staging + 24);
            GemmOutput.EpilogueRow(staging, dst, bias, residual, Relu, count, Streaming);
            return;
        }
        var biasVector = Vector256.Create(bias);
        var floor = Vector256.Create(Relu ? 0f : float.NegativeInfinity);
        bool stream = Streaming && ((nint)dst & 63) == 0 && width >= 16;
        Put(v0, 0);
        if (width == 8) return;
        Put(v1, 8);
        if (width == 16) return;
        Put(v2, 16);
        Put(v3, 24);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Put(Vector256<float> v, int offset)
        {
            v = GemmOutput.Epilogue(v, biasVector, residual == null ? null : residual + offset, floor);
            if (stream) v.StoreAlignedNonTemporal(dst + offset);
            else v.Store(dst + offset);
        }
    }
}

/// <summary>Winograd F(4x4, 3x3)'s transforms on 8 tiles of a tile row (AVX-512: 8 tiles in a ymm vector, lane t the
/// tile 4t … 4t + 3 columns on), with the points 0, ±1, ±2 and ∞:
///   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1],
///   G = [1/4 0 0; −1/6 −1/6 −1/6; −1/6 1/6 −1/6; 1/24 1/12 1/6; 1/24 −1/12 1/6; 0 0 1],
///   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1].</summary>
internal static unsafe class Winograd4
{
    /// <summary>Floats of TransformInput's scratch: the 6 × 6 vectors of its rows transformed.</summary>
    public const int TransformFloats = 36 * 8;

    /// <summary>The first 64-byte boundary at or after <paramref name="buffer"/> (a stack buffer allocated 16 floats
    /// longer): vectors in a buffer the stack left 16 bytes off a line straddle two lines, and a process ran 30–60 %
    /// slower for it than another whose stack fell on a line.</summary>
    public static float* CacheLineAligned(float* buffer) => (float*)(((nint)buffer + 63) & ~(nint)63);

    /// <summary>Column j of 4 tiles from each of two 16-float vectors (lane t: column 4t + j of the first for
    /// t &lt; 4, 4(t − 4) + j of the second), in the low 8 lanes.</summary>
    private static Vector512<int> Columns(int j) =>
        Vector512.Create(j, j + 4, j + 8, j + 12, j + 16, j + 20, j + 24, j + 28, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>Bᵀ·(d0 … d5), stored at dst, dst + stride, …, dst + 5·stride.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void InputCombine(Vector256<float> d0, Vector256<float> d1, Vector256<float> d2,
        Vector256<float> d3, Vector256<float> d4, Vector256<float> d5, float* dst, long stride)
    {
        var four = Vector256.Create(4f);
        var two = Vector256.Create(2f);
        var minusFive = Vector256.Create(-5f);
        var t1 = Fma.MultiplyAddNegated(four, d2, d4);
        var t2 = Fma.MultiplyAddNegated(four, d1, d3);
        var t3 = d4 - d2;
        var t4 = d3 - d1;
        Fma.MultiplyAdd(four, d0, Fma.MultiplyAdd(minusFive, d2, d4)).Store(dst);
        (t1 + t2).Store(dst + stride);
        (t1 - t2).Store(dst + 2 * stride);
        Fma.MultiplyAdd(two, t4, t3).Store(dst + 3 * stride);
        Fma.MultiplyAddNegated(two, t4, t3).Store(dst + 4 * stride);
        Fma.MultiplyAdd(four, d1, Fma.MultiplyAdd(minusFive, d3, d5)).Store(dst + 5 * stride);
    }

    /// <summary>Bᵀ·d·B for 8 tiles: d[i][j] = patch[i·pitch + 4t + j] for tile t &lt; 4 and
    /// patch[second + i·pitch + 4(t − 4) + j] for the others (second = 16: one row of 8 tiles; 4 pitches: 4 tiles of
    /// two tile rows); element ξ = 6a + b of the result goes to dst[ξ·xiStride + t]. Reads 20 columns from each
    /// of the two starts, on 6 rows; scratch holds TransformFloats, 64-byte aligned.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void TransformInput(float* patch, int pitch, int second, float* dst, long xiStride, float* scratch)
    {
        // ·B across each row into rows[i][b] (a vector of 8 tiles each, in scratch), then Bᵀ· down each column b.
        var rows = (Vector256<float>*)scratch;
        Vector512<int> c0 = Columns(0), c1 = Columns(1), c2 = Columns(2), c3 = Columns(3);
        for (int i = 0; i < 6; i++)
        {
            float* row = patch + (long)i * pitch;
            Vector512<float> low = Vector512.Load(row), high = Vector512.Load(row + second);
            Vector512<float> shiftedLow = Vector512.Load(row + 4), shiftedHigh = Vector512.Load(row + second + 4);
            InputCombine(Avx512F.PermuteVar16x32x2(low, c0, high).GetLower(),
                Avx512F.PermuteVar16x32x2(low, c1, high).GetLower(),
                Avx512F.PermuteVar16x32x2(low, c2, high).GetLower(),
                Avx512F.PermuteVar16x32x2(low, c3, high).GetLower(),
                Avx512F.PermuteVar16x32x2(shiftedLow, c0, shiftedHigh).GetLower(),
                Avx512F.PermuteVar16x32x2(shiftedLow, c1, shiftedHigh).GetLower(), (float*)(rows + 6 * i), 8);
        }
        for (int b = 0; b < 6; b++)
            InputCombine(rows[b], rows[6 + b], rows[12 + b], rows[18 + b], rows[24 + b], rows[30 + b],
                dst + b * xiStride, 6 * xiStride);
    }

    /// <summary>Aᵀ·(m0 … m5): the 4 vectors o0 … o3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputCombine(Vector256<float> m0, Vector256<float> m1, Vector256<float> m2,
        Vector256<float> m3, Vector256<float> m4, Vector256<float> m5, out Vector256<float> o0,
        out Vector256<float> o1, out Vector256<float> o2, out Vector256<float> o3)
    {
        Vector256<float> sum12 = m1 + m2, difference12 = m1 - m2, sum34 = m3 + m4, difference34 = m3 - m4;
        o0 = m0 + sum12 + sum34;
        o1 = Fma.MultiplyAdd(Vector256.Create(2f), difference34, difference12);
        o2 = Fma.MultiplyAdd(Vector256.Create(4f), sum34, sum12);
        o3 = Fma.MultiplyAdd(Vector256.Create(8f), difference34, difference12) + m5;
    }

    /// <summary>An output row of 8 tiles, its column j of tile t in lane t of yj, as 32 consecutive outputs
    /// (output 4t + j) in v0 … v3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void InterleaveColumns(Vector256<float> y0, Vector256<float> y1, Vector256<float> y2,
        Vector256<float> y3, out Vector256<float> v0, out Vector256<float> v1, out Vector256<float> v2,
        out Vector256<float> v3)
    {
        var low01 = Avx.UnpackLow(y0, y1);      // tiles 0, 1 | 4, 5: columns 0, 1 of each
        var high01 = Avx.UnpackHigh(y0, y1);    // tiles 2, 3 | 6, 7
        var low23 = Avx.UnpackLow(y2, y3);
        var high23 = Avx.UnpackHigh(y2, y3);
        var t04 = Avx.UnpackLow(low01.AsDouble(), low23.AsDouble()).AsSingle();     // tile 0 | tile 4
        var t15 = Avx.UnpackHigh(low01.AsDouble(), low23.AsDouble()).AsSingle();    // tile 1 | tile 5
        var t26 = Avx.UnpackLow(high01.AsDouble(), high23.AsDouble()).AsSingle();   // tile 2 | tile 6
        var t37 = Avx.UnpackHigh(high01.AsDouble(), high23.AsDouble()).AsSingle();  // tile 3 | tile 7
        v0 = Avx.Permute2x128(t04, t15, 0x20);
        v1 = Avx.Permute2x128(t26, t37, 0x20);
        v2 = Avx.Permute2x128(t04, t15, 0x31);
        v3 = Avx.Permute2x128(t26, t37, 0x31);
    }

    /// <summary>A·(d0 … d3) (A = (Aᵀ)ᵀ, 6 × 4), stored at dst, dst + stride, …, dst + 5·stride.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void GradientCombine(Vector256<float> d0, Vector256<float> d1, Vector256<float> d2,
        Vector256<float> d3, float* dst, long stride)
    {
        Vector256<float> even = d0 + d2, odd = d1 + d3;
        var evenFour = Fma.MultiplyAdd(Vector256.Create(4f), d2, d0);
        var oddEight = Vector256.Create(2f) * Fma.MultiplyAdd(Vector256.Create(4f), d3, d1);
        d0.Store(dst);
        (even + odd).Store(dst + stride);
        (even - odd).Store(dst + 2 * stride);
        (evenFour + oddEight).Store(dst + 3 * stride);
        (evenFour - oddEight).Store(dst + 4 * stride);
        d3.Store(dst + 5 * stride);
    }

    /// <summary>A·dY·Aᵀ for 8 tiles, the weight gradient's transform of the 4x4 output gradients: dY[i][j] as
    /// TransformInput's d (4 rows, 16 columns from each start; 0 past the output); element ξ = 6a + b of the result
    /// goes to dst[ξ·xiStride + t]; scratch as TransformInput's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void TransformOutputGradient(float* patch, int pitch, int second, float* dst, long xiStride,
        float* scratch)
    {
        var rows = (Vector256<float>*)scratch;
        Vector512<int> c0 = Columns(0), c1 = Columns(1), c2 = Columns(2), c3 = Columns(3);
        for (int i = 0; i < 4; i++)
        {
            float* row = patch + (long)i * pitch;
            Vector512<float> low = Vector512.Load(row), high = Vector512.Load(row + second);
            GradientCombine(Avx512F.PermuteVar16x32x2(low, c0, high).GetLower(),
                Avx512F.PermuteVar16x32x2(low, c1, high).GetLower(),
                Avx512F.PermuteVar16x32x2(low, c2, high).GetLower(),
                Avx512F.PermuteVar16x32x2(low, c3, high).GetLower(), (float*)(rows + 6 * i), 8);
        }
        for (int b = 0; b < 6; b++)
            GradientCombine(rows[b], rows[6 + b], rows[12 + b], rows[18 + b], dst + b * xiStride, 6 * xiStride);
    }

    /// <summary>Gᵀ·(s0 … s5) (Gᵀ = [1/4 −1/6 −1/6 1/24 1/24 0; 0 −1/6 1/6 1/12 −1/12 0; 0 −1/6 −1/6 1/6 1/6 1]),
    /// lane by lane, into dst[0 … 2].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WeightCombine(Vector256<float> s0, Vector256<float> s1, Vector256<float> s2,
        Vector256<float> s3, Vector256<float> s4, Vector256<float> s5, Vector256<float>* dst)
    {
        Vector256<float> sum12 = s1 + s2, difference12 = s1 - s2, sum34 = s3 + s4, difference34 = s3 - s4;
        var sixth = Vector256.Create(1f / 6f);
        dst[0] = Fma.MultiplyAdd(s0, Vector256.Create(0.25f),
            Fma.MultiplyAdd(sum34, Vector256.Create(1f / 24f), -(sum12 * sixth)));
        dst[1] = Fma.MultiplyAdd(difference34, Vector256.Create(1f / 12f), -(difference12 * sixth));
        dst[2] = Fma.MultiplyAdd(sum34 - sum12, sixth, s5);
    }

    /// <summary>G·(g0, g1, g2), lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Spread(Vector256<float> g0, Vector256<float> g1, Vector256<float> g2, Vector256<float>* dst,
        int stride)
    {
        var sixth = Vector256.Create(1f / 6f);
        var outer = (g0 + g2) * Vector256.Create(-1f / 6f);
        var middle = g1 * sixth;
        var side = Fma.MultiplyAdd(g0, Vector256.Create(1f / 24f), g2 * sixth);
        var twelfth = g1 * Vector256.Create(1f / 12f);
        dst[0] = g0 * Vector256.Create(0.25f);
        dst[stride] = outer - middle;
        dst[2 * stride] = outer + middle;
        dst[3 * stride] = side + twelfth;
        dst[4 * stride] = side - twelfth;
        dst[5 * stride] = g2;
    }
}

/// <summary>Partial weight gradients of a Winograd F(Tile×Tile, 3x3) convolution, the forward's transforms
/// transposed: dw[k, c] = Gᵀ·S[k, c]·G, S_ξ[k][c] = Σ over images and tiles of Z_ξ[k][tile] · V_ξ[c][tile], with
/// V = Bᵀ·d·B the forward's input transform and Z = A·dY·Aᵀ that of the tile's output gradient (0 past the
/// output). The 16 or 36 products run on the packed GEMM's micro-kernel, the tiles as its depth: Z packed as its A
/// tiles, V as its B panels, 8 tiles and 8 channels at a time through a register transpose. Task t sums partition
/// t / Parts of the images (fixed by the shape, so the sums do not depend on the thread count) into its partial S, rows
/// [p·PartRows, (p + 1)·PartRows) for part p = t % Parts, a block of BlockGroups groups of 8 tiles at a time.</summary>
internal unsafe struct WinogradWeightJob : IParallelJob
{
    private const int GroupTiles = 8;

    public float* Input, OutputGradient, Partials;
    public int Batch, Channels, Height, Width, OutChannels, OutHeight, OutWidth, PadTop, PadLeft;
    public int Tile, TileRows, RowGroups, Partitions, PartRows, Parts, BlockGroups;
    public bool PairedRows;
    public CpuBackend Backend;

    /// <summary>Whether each tile of a part's sums (planes × partRows × cp floats) is fetched ahead of its
    /// micro-kernel: sums of 1 MiB or more are read and written once per block from L3, and a tile's lines, read only
    /// after its products, had stalled the kernel. In one process, alternated, classified by the cores' placement
    /// (their round trip): at batch 8, 128×28×28 (F(4x4, 3x3), 1.2 MB a part) 2.52 → 2.17 ms where the two cores share
    /// no cache, 256×14×14 (F(2x2, 3x3), 2 MB) 3.38–3.63 → 3.20–3.26, both level (+1 %) where they do; ResNet-18's
    /// training step at batch 8 in the far placement 155.6 → 153.3 and 159.6 → 157.8 ms. Smaller parts (64×56×56's 590
    /// KB, ResNet-20's layers at batch 128) ran 0.5–1 % slower fetched, so they are not. (The GEMM's weight gradients,
    /// fetched alike, did not move: their far cost lies elsewhere.)</summary>
    private static bool FetchesSums(int planes, int partRows, int cp) => (long)planes * partRows * cp >= 1 << 18;

    /// <summary>Prefetches the tile of the sums at <paramref name="tile"/> (the micro-kernel's rows,
    /// <paramref name="cp"/> floats apart, of its columns: whole cache lines); none for null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FetchTile(float* tile, int cp)
    {
        if (tile == null) return;
        for (int r = 0; r < PackedGemm.TileRows; r++)
            for (int f = 0; f < PackedGemm.TileColumns; f += 16) Sse.Prefetch0(tile + (long)r * cp + f);
    }

    /// <summary>Input channels rounded up to the micro-kernel's columns (S's row length).</summary>
    public static int PaddedChannels(int channels) =>
        (channels + PackedGemm.TileColumns - 1) / PackedGemm.TileColumns * PackedGemm.TileColumns;

    /// <summary>Floats from one element's plane of a partition's sums S to the next: kp rows of cp, then
    /// WinogradJob.PlaneSkew, so that the final sum's 16 or 36 loads of a channel (one a plane) do not all fall in
    /// one set of L1 (the planes are a power of two apart). Same process: ResNet-20's 64×8×8 and 32×16×16 weight
    /// gradients at batch 128 (16 partitions) 1.97 → 1.88 and 2.13 → 1.99 ms; 256×14×14 at batch 8 (2 partitions)
    /// level.</summary>
    public static long PartialPlaneFloats(int kp, int cp) => (long)kp * cp + WinogradJob.PlaneSkew;

    /// <summary>Floats of a band row, as the forward's.</summary>
    public readonly int Pitch => WinogradJob.PitchOf(Tile, RowGroups);

    public void Execute(int task, int worker)
    {
        int part = task % Parts, partition = task / Parts;
        int n0 = (int)((long)partition * Batch / Partitions), n1 = (int)((long)(partition + 1) * Batch / Partitions);
        int step = PairedRows ? 2 : 1, groupRows = (TileRows + step - 1) / step, imageGroups = groupRows * RowGroups;
        int mr = PackedGemm.TileRows, nr = PackedGemm.TileColumns, kp = WinogradWeightsJob.PaddedRows(OutChannels);
        int cp = PaddedChannels(Channels), panels = cp / nr, tb = BlockGroups * GroupTiles;
        int k0 = part * PartRows, partRows = Math.Min(PartRows, kp - k0), kValid = Math.Min(partRows, OutChannels - k0);
        int tile = Tile, planes = WinogradWeightsJob.PlanesOf(tile), groupColumns = GroupTiles * tile;
        int pitch = Pitch, rows = tile * groupRows * step + 2, dyRows = tile * groupRows * step;
        int half = WinogradJob.SecondHalf(tile, pitch, PairedRows);
        float* xBand = Backend.WinogradScratch(worker, 0, (long)Channels * rows * pitch);
        float* dyBand = Backend.WinogradScratch(worker, 3, (long)kValid * dyRows * pitch);
        float* v = Backend.WinogradScratch(worker, 1, (long)planes * cp * tb);
        float* z = Backend.WinogradScratch(worker, 2, (long)planes * partRows * tb);
        float* stage = stackalloc float[36 * 64 + Winograd4.TransformFloats + 16];
        stage = Winograd4.CacheLineAligned(stage);
        float* transformRows = stage + 36 * 64;
        float* sums = Partials + partition * planes * PartialPlaneFloats(kp, cp);
        int groups = (n1 - n0) * imageGroups, loaded = -1;
        for (int q0 = 0; q0 < groups; q0 += BlockGroups)
        {
            int count = Math.Min(BlockGroups, groups - q0), depth = count * GroupTiles;
            for (int j = 0; j < count; j++)
            {
                int q = q0 + j, image = n0 + q / imageGroups, local = q % imageGroups;
                if (image != loaded)
                {
                    WinogradJob.CopyPlanes(Input + (long)image * Channels * Height * Width, Channels, Height, Width,
                        -PadTop, PadLeft, xBand, rows, pitch);
                    WinogradJob.CopyPlanes(OutputGradient + ((long)image * OutChannels + k0) * OutHeight * OutWidth,
                        kValid, OutHeight, OutWidth, 0, 0, dyBand, dyRows, pitch);
                    loaded = image;
                }
                long at = (long)tile * (local / RowGroups) * step * pitch + groupColumns * (local % RowGroups);
                for (int c0 = 0; c0 < cp; c0 += 8)
                {
                    int valid = Math.Clamp(Channels - c0, 0, 8);
                    for (int c = 0; c < valid; c++)
                    {
                        float* patch = xBand + (long)(c0 + c) * rows * pitch + at;
                        if (tile == 4) Winograd4.TransformInput(patch, pitch, half, stage + c * 8, 64, transformRows);
                        else WinogradJob.TransformInput(patch, pitch, half, stage + c * 8, 64);
                    }
                    float* dst = v + ((long)(c0 / nr) * tb + j * GroupTiles) * nr + c0 % nr;
                    for (int xi = 0; xi < planes; xi++)
                        PackedGemm.TransposeRows(stage + xi * 64, 8, valid, dst + (long)xi * cp * tb, nr, GroupTiles);
                }
                for (int t = 0; t < partRows; t += mr)
                {
                    int valid = Math.Clamp(kValid - t, 0, mr);
                    for (int k = 0; k < valid; k++)
                    {
                        float* patch = dyBand + (long)(t + k) * dyRows * pitch + at;
                        if (tile == 4)
                            Winograd4.TransformOutputGradient(patch, pitch, half, stage + k * 8, 64, transformRows);
                        else TransformOutputGradient(patch, pitch, half, stage + k * 8, 64);
                    }
                    float* dst = z + ((long)t * tb + j * GroupTiles * mr);
                    for (int xi = 0; xi < planes; xi++)
                        PackedGemm.TransposeRows(stage + xi * 64, 8, valid, dst + (long)xi * partRows * tb, mr,
                            GroupTiles);
                }
            }
            // A panel of V stays in L1 while every tile of Z in the part meets it. Where the part's sums outgrow
            // L2, each tile's successor (down the part's rows, then the next panel, then the next plane) is
            // fetched while the tile is summed.
            float beta = q0 == 0 ? 0f : 1f;
            long plane = PartialPlaneFloats(kp, cp);
            bool fetchSums = FetchesSums(planes, PartRows, cp);
            for (int xi = 0; xi < planes; xi++)
            for (int p = 0; p < panels; p++)
            {
                float* b = v + ((long)xi * panels + p) * tb * nr;
                for (int t = 0; t < partRows; t += mr)
                {
                    float* c = sums + xi * plane + (long)(k0 + t) * cp + p * nr;
                    if (fetchSums)
                        FetchTile(t + mr < partRows ? c + mr * cp
                            : p + 1 < panels ? c - (long)t * cp + nr
                            : xi + 1 < planes ? c - (long)t * cp - p * nr + plane : null, cp);
                    PackedGemm.MicroKernel(z + ((long)xi * partRows + t) * tb, b, depth, c, cp, 1f, beta);
                }
            }
        }
    }

    /// <summary>A·dY·Aᵀ for 8 tiles: dY[p][q] = patch[p·pitch + 2t + q] for tile t &lt; 4 and
    /// patch[half + p·pitch + 2(t − 4) + q] for the others (as TransformInput); element ξ = 4a + b of the result
    /// goes to dst[ξ·xiStride + t].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TransformOutputGradient(float* patch, int pitch, int half, float* dst, long xiStride)
    {
        var y00 = ShiftedSource.EveryOtherElement(patch, patch + half, false);
        var y01 = ShiftedSource.EveryOtherElement(patch, patch + half, true);
        var y10 = ShiftedSource.EveryOtherElement(patch + pitch, patch + pitch + half, false);
        var y11 = ShiftedSource.EveryOtherElement(patch + pitch, patch + pitch + half, true);
        // A· down the columns: rows 0, 0 + 1, 0 − 1, −1; then ·Aᵀ across each row likewise.
        Row(dst, xiStride, 0, y00, y01);
        Row(dst, xiStride, 4, y00 + y10, y01 + y11);
        Row(dst, xiStride, 8, y00 - y10, y01 - y11);
        Row(dst, xiStride, 12, -y10, -y11);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Row(float* dst, long xiStride, int xi, Vector256<float> left, Vector256<float> right)
        {
            left.Store(dst + xi * xiStride);
            (left + right).Store(dst + (xi + 1) * xiStride);
            (left - right).Store(dst + (xi + 2) * xiStride);
            (-right).Store(dst + (xi + 3) * xiStride);
        }
    }
}

/// <summary>dw[k, c] = Gᵀ·S[k, c]·G for output channel k = task, S the partitions' partials added in order, 8 input
/// channels at a time.</summary>
internal unsafe struct WinogradWeightSumJob : IParallelJob
{
    public float* Partials, Weight;
    public int OutChannels, Channels, Partitions, Tile;

    public readonly void Execute(int k, int worker)
    {
        int kp = WinogradWeightsJob.PaddedRows(OutChannels), cp = WinogradWeightJob.PaddedChannels(Channels);
        int planes = WinogradWeightsJob.PlanesOf(Tile);
        long xiStride = WinogradWeightJob.PartialPlaneFloats(kp, cp), partitionStride = planes * xiStride;
        float* taps = stackalloc float[9 * 8];
        var s = stackalloc Vector256<float>[36];
        for (int c0 = 0; c0 < Channels; c0 += 8)
        {
            float* at = Partials + (long)k * cp + c0;
            for (int xi = 0; xi < planes; xi++)
            {
                var sum = Vector256.Load(at + xi * xiStride);
                for (int p = 1; p < Partitions; p++) sum += Vector256.Load(at + p * partitionStride + xi * xiStride);
                s[xi] = sum;
            }
            if (Tile == 4) Combine4(s, taps);
            else Combine2(s, taps);
            for (int l = 0; l < Math.Min(8, Channels - c0); l++)
            for (int tap = 0; tap < 9; tap++)
                Weight[((long)k * Channels + c0 + l) * 9 + tap] = taps[tap * 8 + l];
        }
    }

    /// <summary>Gᵀ·S·G of F(2x2, 3x3) for 8 lanes: S_ξ in s[ξ] (overwritten), the 9 taps to taps[tap·8 + lane].
    /// </summary>
    private static void Combine2(Vector256<float>* s, float* taps)
    {
        var h = Vector256.Create(0.5f);
        // Gᵀ· down the columns (rows 0 + ½(1 + 2), ½(1 − 2), ½(1 + 2) + 3), then ·G across each row.
        for (int b = 0; b < 4; b++)
        {
            var mid = h * (s[4 + b] + s[8 + b]);
            (s[b], s[4 + b], s[8 + b]) = (s[b] + mid, h * (s[4 + b] - s[8 + b]), mid + s[12 + b]);
        }
        for (int r = 0; r < 3; r++)
        {
            var mid = h * (s[4 * r + 1] + s[4 * r + 2]);
            (s[4 * r] + mid).Store(taps + (3 * r) * 8);
            (h * (s[4 * r + 1] - s[4 * r + 2])).Store(taps + (3 * r + 1) * 8);
            (mid + s[4 * r + 3]).Store(taps + (3 * r + 2) * 8);
        }
    }

    /// <summary>Gᵀ·S·G of F(4x4, 3x3) for 8 lanes, as Combine2 (36 elements ξ).</summary>
    private static void Combine4(Vector256<float>* s, float* taps)
    {
        var column = stackalloc Vector256<float>[3];
        // Gᵀ· down each column b into s[6r + b] (r < 3), then ·G across each row r.
        for (int b = 0; b < 6; b++)
        {
            Winograd4.WeightCombine(s[b], s[6 + b], s[12 + b], s[18 + b], s[24 + b], s[30 + b], column);
            (s[b], s[6 + b], s[12 + b]) = (column[0], column[1], column[2]);
        }
        for (int r = 0; r < 3; r++)
        {
            Winograd4.WeightCombine(s[6 * r], s[6 * r + 1], s[6 * r + 2], s[6 * r + 3], s[6 * r + 4], s[6 * r + 5],
                column);
            for (int q = 0; q < 3; q++) column[q].Store(taps + (3 * r + q) * 8);
        }
    }
}

/// <summary>The transformed weights U of a Winograd F(Tile×Tile, 3x3) convolution, packed as the micro-kernel's A
/// tiles: U[ξ][kt][c][i] = (G·g[kt + i, c]·Gᵀ)_ξ for output channel kt + i (0 past the channels), in float32. g is the
/// forward kernel w [K][C][3][3], or for the data gradient the kernel flipped with its channels swapped (out = C,
/// in = K). Task t fills the tile of output channels mr·t … mr·t + mr − 1 (mr the micro-kernel's rows).</summary>
internal unsafe struct WinogradWeightsJob : IParallelJob
{
    public float* Weight, Transformed;
    public int OutChannels, Channels, Tile;
    public bool DataGradient;

    /// <summary>Elements ξ of a transformed tile of F(tile × tile, 3x3): (tile + 2)².</summary>
    public static int PlanesOf(int tile) => (tile + 2) * (tile + 2);

    /// <summary>Output channels rounded up to the micro-kernel's rows (a task's tile).</summary>
    public static int PaddedRows(int outChannels) =>
        (outChannels + PackedGemm.TileRows - 1) / PackedGemm.TileRows * PackedGemm.TileRows;

    /// <summary>Floats from one element's plane of U to the next: its rows, then WinogradJob.PlaneSkew, so that the
    /// 16 or 36 stores of a tile do not all fall in one set of L1 (planes of 128² channels are 64 KiB apart:
    /// 128×28×28 at batch 8 with its weights changed took 2.72 → 2.52 ms forward and data gradient alike, 256²
    /// 3.6 → 3.5).</summary>
    public static long PlaneFloats(int outChannels, int channels) =>
        (long)PaddedRows(outChannels) * channels + WinogradJob.PlaneSkew;

    public static long Floats(int outChannels, int channels, int tile) =>
        PlanesOf(tile) * PlaneFloats(outChannels, channels);

    /// <summary>Output and input channels of the transform (the kernel's, swapped for the data gradient).</summary>
    private readonly (int Outs, int Ins) Extents => DataGradient ? (Channels, OutChannels) : (OutChannels, Channels);

    public readonly void Execute(int task, int worker)
    {
        var (outs, ins) = Extents;
        int mr = PackedGemm.TileRows, kt = task * mr;
        long xiStride = PlaneFloats(outs, ins);
        // Lane l is output channel kt + l: its 9 taps are loaded (0 past the last channel, whose rows of U are
        // zero) and transformed 8 lanes at a time; for each ξ the tile's mr floats are one store. A lane at a time,
        // in scalar float64, this took 13 % of a ResNet-18 training step at batch 8, whose weights change every
        // step; in float64 on two halves of 4 lanes, still 6-9 %; with the taps gathered, 5 %.
        var lane = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        int filters = Math.Min(mr, outs - kt);
        var write = Vector256.LessThan(lane, Vector256.Create(mr)).AsSingle();
        // Lane l's filter at first + l·filterStride, g[r][s] its tap 3r + s (8 − 3r − s for the data gradient's
        // flipped kernel): the 8 filters' 9 taps transposed, taps[t][l] (0 past the last channel). Gathering each
        // tap instead made the 26 transforms of a ResNet-18 training step at batch 8 (its weights change every
        // step) 11.1 ms a step where transposed they took 9.5 (medians of 6 alternated rounds in one process). The
        // gathers had needed the data gradient's filters fetched two output channels ahead (each channel's run of
        // 72 floats a filter row after the last); the loads do not (512² at batch 8, weights changed each call, with
        // and without the fetches: 4.95 / 4.97 vs 5.03 / 4.97 ms).
        long filterStride = DataGradient ? 9 : 9L * Channels;
        bool flipped = DataGradient;
        float* buffer = stackalloc float[33 * 8 + 16];
        var spread = (Vector256<float>*)Winograd4.CacheLineAligned(buffer);
        var row = spread + 18;
        var taps = spread + 24;
        for (int i = 0; i < ins; i++)
        {
            float* first = Weight + (DataGradient ? (long)i * Channels + kt : (long)kt * Channels + i) * 9;
            PackedGemm.TransposeRows(first, filterStride, filters, (float*)taps, 8, 9);
            Vector256<float> Tap(int r, int s) => taps[flipped ? 8 - 3 * r - s : 3 * r + s];
            if (Tile == 4)
            {
                // G·g down the columns into spread[3a + s], then ·Gᵀ across each row a: U[6a + b].
                for (int s = 0; s < 3; s++) Winograd4.Spread(Tap(0, s), Tap(1, s), Tap(2, s), spread + s, 3);
                float* tile4 = Transformed + (long)kt * ins + (long)i * mr;
                for (int a = 0; a < 6; a++)
                {
                    Winograd4.Spread(spread[3 * a], spread[3 * a + 1], spread[3 * a + 2], row, 1);
                    for (int b = 0; b < 6; b++) Avx.MaskStore(tile4 + (6 * a + b) * xiStride, write, row[b]);
                }
                continue;
            }
            // G·g down the columns (t_a,s = (G·g)[a][s]), then ·Gᵀ across each row a: U[4a + b].
            var (t00, t10, t20, t30) = Spread(Tap(0, 0), Tap(1, 0), Tap(2, 0));
            var (t01, t11, t21, t31) = Spread(Tap(0, 1), Tap(1, 1), Tap(2, 1));
            var (t02, t12, t22, t32) = Spread(Tap(0, 2), Tap(1, 2), Tap(2, 2));
            float* tile = Transformed + (long)kt * ins + (long)i * mr;
            StoreRow(tile, xiStride, write, Spread(t00, t01, t02));
            StoreRow(tile + 4 * xiStride, xiStride, write, Spread(t10, t11, t12));
            StoreRow(tile + 8 * xiStride, xiStride, write, Spread(t20, t21, t22));
            StoreRow(tile + 12 * xiStride, xiStride, write, Spread(t30, t31, t32));
        }
    }

    /// <summary>G·(g0, g1, g2): g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2, lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) Spread(
        Vector256<float> g0, Vector256<float> g1, Vector256<float> g2)
    {
        var half = Vector256.Create(0.5f);
        return (g0, half * (g0 + g1 + g2), half * (g0 - g1 + g2), g2);
    }

    /// <summary>The 4 elements of one row of the transform, xiStride floats apart, the tile's lanes of each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* at, long xiStride, Vector256<float> lanes,
        (Vector256<float> U0, Vector256<float> U1, Vector256<float> U2, Vector256<float> U3) row)
    {
        Avx.MaskStore(at, lanes, row.U0);
        Avx.MaskStore(at + xiStride, lanes, row.U1);
        Avx.MaskStore(at + 2 * xiStride, lanes, row.U2);
        Avx.MaskStore(at + 3 * xiStride, lanes, row.U3);
    }
}

public sealed unsafe partial class CpuBackend
{
    /// <summary>A worker's buffers for a Winograd task: 0 the input band, 1 the transformed inputs, 2 the products (or
    /// the weight gradient's transformed output gradient), 3 the weight gradient's output-gradient band.
    /// </summary>
    internal float* WinogradScratch(int worker, int buffer, long floats) => (float*)WorkerScratch(worker,
        buffer switch { 0 => DirectSourceSlot, 1 => ColumnsSlot, 2 => PackedBSlot, _ => EdgeTileSlot },
        floats * sizeof(float));

    /// <summary>Channel products K·C the forward and the data gradient serve at <paramref name="batch"/> images.
    /// With AVX2, 512 to 512² (U of 32 KiB to 16 MiB). With AVX-512 from 32² when a batch fills the panels
    /// (32×16×16 at batch 8 and 128: 5–13 % faster than direct; 64×8×8 at batch 8 and 128: 30–40 %; 64×56×56 at
    /// batch 8: 24 %), from 64² for a single image (32×16×16 alone: 7 % slower); 16² stays direct (16×32×32 at
    /// batch 128: 25 % slower, the transforms cost as much as the products). Up to 512² from two images, where a
    /// run of images uses each tile of U on enough panels (512×7×7 at batch 2, 4 and 8: 14–31 % faster than
    /// direct), and to 256² for a single image (512² slower by 15–20 %: it streams 16 MiB of U for 16 tiles). So
    /// on AVX-512 a 32² or 512² layer gives an image alone other bits than the same image in a batch.</summary>
    private static (long Min, long Max) WinogradChannelProducts(int batch) =>
        !Avx512F.IsSupported ? (512, 1 << 18) : batch >= 2 ? (1 << 10, 1 << 18) : (1 << 12, 1 << 16);

    /// <summary>Floats of a block's V and M together (160 KiB).</summary>
    private const long WinogradBlockBudget = 40960;

    /// <summary>Floats of U beyond which it is taken to stream from L3 or memory (2 MiB).</summary>
    private const long WinogradResidentWeights = 1 << 19;

    /// <summary>Floats of a block's V_ξ when U streams (256 KiB, a quarter of L2). Against 128 KiB, with the weights
    /// transformed anew each call as in training, batch 8: 256×14×14 3.73 → 3.48 ms (forward; the data gradient
    /// alike), batch 16 and 32 11–12 % faster; 512×7×7 at batch 16 and 32 6–10 %: a run of more images reads U
    /// fewer times, and each of its tiles meets more panels.</summary>
    private const long WinogradPanelBudget = 65536;

    /// <summary>Floats of a task's input band, at most (192 KiB), unless one tile row needs more.</summary>
    private const long WinogradBandBudget = 49152;

    /// <summary>Whether a 3x3 stride-1 convolution from <paramref name="ins"/> to <paramref name="outs"/> channels,
    /// padded by <paramref name="padTop"/> and <paramref name="padLeft"/>, onto an output <paramref name="outWidth"/>
    /// wide, may take Winograd F(tile×tile, 3x3): AVX2+FMA (or AVX-512), at least 16 channels each side and a channel
    /// product within <paramref name="products"/>, pads of at most 2, and a tile row of 4 tiles (paired rows) or of
    /// nearly whole groups of 8.</summary>
    private static bool WinogradServes(ConvGeometry g, int ins, int outs, int padTop, int padLeft, int outWidth,
        (long Min, long Max) products, int tile = 2)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) return false;
        if (!g.IsDenseUndilated || g.KernelHeight != 3 || g.KernelWidth != 3 || g.StrideHeight != 1 ||
            g.StrideWidth != 1) return false;
        long product = (long)ins * outs;
        if (Math.Min(ins, outs) < 16 || product < products.Min || product > products.Max)
            return false;
        if (padTop < 0 || padTop > 2 || padLeft < 0 || padLeft > 2) return false;
        int tiles = (outWidth + tile - 1) / tile, groups = (tiles + 7) / 8;
        return tiles == 4 || tiles >= 7 * groups;
    }

    /// <summary>Channel products K·C whose forward and data gradient take F(4x4, 3x3) on AVX-512, at any batch: 16²
    /// to 512². Against F(2x2, 3x3) or the direct kernels, batch 8: 64×56×56 3.57 → 2.70 ms, 128×28×28 3.47 → 2.70,
    /// 256×28×28 10.2 → 8.9; batch 128: 32×16×16 1.21 → 1.05; one image: 64×56×56 0.47 → 0.30, 512×28×28 10.8 → 5.6
    /// (direct). 16×32×32 → 16 (ResNet-20's first stage) in one process, against the direct kernels: forward at
    /// batch 128 1.66 → 1.26 ms, batch 8 0.099 → 0.073, one image level; data gradient (once the copies fetched
    /// ahead and the output transform kept its vectors in registers; it had run 10 % slower in a training step)
    /// 1.79 → 1.22 ms at batch 128, 0.453 → 0.281 at 32, 0.177 → 0.158 at 8, 0.017 → 0.015 for one image, and
    /// 11.95 → 7.64 ms a ResNet-20 training step (99.1 → 95.1 ms the step).</summary>
    private static readonly (long Min, long Max) Winograd4ChannelProducts = (1 << 8, 1 << 18);

    /// <summary>Channel products whose weight gradient takes F(4x4, 3x3) (from 4 images): 32² to 256². 16² stays
    /// direct: 16×32×32 at batch 128 1.99 → 2.60 ms, at batch 8 0.185 → 0.255 through F(4x4, 3x3).</summary>
    private static readonly (long Min, long Max) Winograd4WeightGradientProducts = (1 << 10, 1 << 16);

    /// <summary>Whether F(4x4, 3x3) serves for <paramref name="products"/>: AVX-512, and tiles of 4 (8 to a group)
    /// that compute at most 8/7 of the outputs (14×14 would compute 16×16, and ran 13–20 % slower than F(2x2, 3x3)).
    /// </summary>
    private static bool Winograd4Serves(ConvGeometry g, int ins, int outs, int padTop, int padLeft, int outWidth,
        int outHeight, (long Min, long Max) products)
    {
        if (!Avx512F.IsSupported || !WinogradServes(g, ins, outs, padTop, padLeft, outWidth, products, tile: 4))
            return false;
        var (tileRows, rowGroups, paired) = WinogradTiling(outHeight, outWidth, 4);
        long computed = 4L * tileRows * (paired ? 16 : 32 * rowGroups);
        return 7 * computed <= 8L * outHeight * outWidth;
    }

    /// <summary>The Winograd tile a pass of <paramref name="ins"/> to <paramref name="outs"/> channels onto an output
    /// outHeight × outWidth runs: 4 where F(4x4, 3x3) serves for <paramref name="products4"/>, 2 where F(2x2, 3x3)
    /// serves for <paramref name="products"/>, 0 for neither.</summary>
    private static int WinogradTileOf(ConvGeometry g, int ins, int outs, int padTop, int padLeft, int outWidth,
        int outHeight, (long Min, long Max) products, (long Min, long Max) products4) =>
        Winograd4Serves(g, ins, outs, padTop, padLeft, outWidth, outHeight, products4) ? 4 :
        WinogradServes(g, ins, outs, padTop, padLeft, outWidth, products) ? 2 : 0;

    private static int ForwardWinogradTile(ConvGeometry g) =>
        WinogradTileOf(g, g.InChannels, g.OutChannels, g.PadTop, g.PadLeft, g.OutWidth, g.OutHeight,
            WinogradChannelProducts(g.Batch), Winograd4ChannelProducts);

    /// <summary>The data gradient's Winograd tile: the forward convolution of dy (K channels) onto dx, padded by
    /// 2 − pad.</summary>
    private static int BackwardDataWinogradTile(ConvGeometry g) =>
        WinogradTileOf(g, g.OutChannels, g.InChannels, 2 - g.PadTop, 2 - g.PadLeft, g.InWidth, g.InHeight,
            WinogradChannelProducts(g.Batch), Winograd4ChannelProducts);

    private static bool UseWinogradForward(ConvGeometry g) => ForwardWinogradTile(g) != 0;

    private static bool UseWinogradBackwardData(ConvGeometry g) => BackwardDataWinogradTile(g) != 0;

    /// <summary>The transformed weights of <paramref name="w"/> for <paramref name="pass"/>: kept, or computed now.
    /// </summary>
    private float* WinogradWeightsOf(ConvGeometry g, DeviceBuffer<float> w, WeightPass pass, int tile,
        bool keepFirst = false)
    {
        bool data = pass == WeightPass.BackwardData;
        int outs = data ? g.InChannels : g.OutChannels, ins = data ? g.OutChannels : g.InChannels;
        long floats = WinogradWeightsJob.Floats(outs, ins, tile);
        var key = new WeightPackKey(pass, WeightLayout.Winograd, Group: 0, outs, ins,
            KernelArea: WinogradWeightsJob.PlanesOf(tile));
        var u = WeightPack(w, key, floats, (float*)WorkerScratch(0, DirectWeightSlot, floats * sizeof(float)),
            out bool ready, keepFirst);
        if (ready) return u;
        var job = new WinogradWeightsJob
        {
            Weight = Data(w), Transformed = u, OutChannels = g.OutChannels, Channels = g.InChannels, Tile = tile,
            DataGradient = data,
        };
        Parallel(WinogradWeightsJob.PaddedRows(outs) / PackedGemm.TileRows, ref job);
        return u;
    }

    /// <summary>The tiles (tile × tile outputs) of an output outHeight × outWidth: tile rows, groups of 8 tiles a tile
    /// row (1 when paired), and whether a group pairs 4 tiles of two tile rows (4 tiles a row).</summary>
    private static (int TileRows, int RowGroups, bool Paired) WinogradTiling(int outHeight, int outWidth, int tile)
    {
        int rowTiles = (outWidth + tile - 1) / tile;
        bool paired = rowTiles == 4;
        return ((outHeight + tile - 1) / tile, paired ? 1 : (rowTiles + 7) / 8, paired);
    }

    /// <summary>paddedRows output channels (whole micro-tiles) split into about <paramref name="wanted"/> parts of
    /// whole micro-tiles: the rows of a part and the parts.</summary>
    private static (int PartRows, int Parts) OutputChannelParts(int paddedRows, int wanted)
    {
        int mr = PackedGemm.TileRows, parts = Math.Max(1, wanted);
        int partRows = (paddedRows / mr + parts - 1) / parts * mr;
        return (partRows, (paddedRows + partRows - 1) / partRows);
    }

    /// <summary>out = the 3x3 stride-1 convolution of <paramref name="input"/> (ins × height × width per image) by
    /// the transformed weights <paramref name="u"/>, padded by (padTop, padLeft), onto outs × outHeight × outWidth,
    /// then the epilogue.</summary>
    private void RunWinograd(int tile, int batch, float* input, int ins, int height, int width, float* u, int outs,
        int outHeight, int outWidth, int padTop, int padLeft, float* output, float* bias, float* residual, bool relu,
        bool forwardWeights = false)
    {
        var (tileRows, rowGroups, paired) = WinogradTiling(outHeight, outWidth, tile);
        int planes = WinogradWeightsJob.PlanesOf(tile);
        int step = paired ? 2 : 1;
        int groupRows = (tileRows + step - 1) / step, imageGroups = groupRows * rowGroups;
        int nr = PackedGemm.TileColumns, panelGroups = nr / 8, kp = WinogradWeightsJob.PaddedRows(outs);
        var job = new WinogradJob
        {
            Input = input, Weights = u, Output = output, Bias = bias, Residual = residual, Relu = relu,
            Batch = batch, Channels = ins, Height = height, Width = width, OutChannels = outs, OutHeight = outHeight,
            OutWidth = outWidth, PadTop = padTop, PadLeft = padLeft, Tile = tile, TileRows = tileRows,
            RowGroups = rowGroups, PairedRows = paired, Images = 1, PartRows = kp, Parts = 1, Backend = this,
            ForwardWeights = forwardWeights,
            Streaming = Streams((long)batch * outs * outHeight * outWidth, sizeof(float)),
        };
        // When U streams from L3 or memory, a task takes a run of whole images, as many as make a block whose V_ξ
        // fits the panel budget, so that each tile of U meets many panels and no panel is left half empty; the
        // output channels are split into parts when the runs are fewer than two per thread. Each part repeats the
        // input copy and transform, which pays only where an image is under two panels of tiles. From 8 images a
        // run holds at most half the batch: 512×7×7 at batch 8 in one run of four parts took 4.19 / 4.56 ms
        // (forward / data gradient, U kept) where two runs of two parts take 4.09 / 4.19.
        int runGroups = Math.Max(1, (int)(WinogradPanelBudget / ins / nr)) * panelGroups;
        int runImages = Math.Clamp(runGroups / imageGroups, 1, batch >= 8 ? batch / 2 : batch);
        int runs = (batch + runImages - 1) / runImages;
        int parts = Math.Max(1, (2 * ThreadCount + runs - 1) / runs);
        int tasks;
        // U is taken to stream by its F(2x2, 3x3) size from two images: F(4x4, 3x3)'s, 2.25 times larger, still
        // runs best in bands there (128×28×28 at batch 2 and 8: 0.88 → 0.60 and 2.7 → 2.3 ms, the runs' parts of
        // the output channels having each repeated the input transform); a single image goes by its own size.
        long weightFloats = (batch == 1 ? planes : 16L) * kp * ins;
        if (weightFloats > WinogradResidentWeights && (parts == 1 || imageGroups < 2 * panelGroups))
        {
            job.Images = (batch + runs - 1) / runs;
            job.BandRows = groupRows;
            job.Bands = 1;
            job.BlockGroups = Math.Min(runGroups, job.Images * imageGroups);
            (job.PartRows, job.Parts) = OutputChannelParts(kp, parts);
            tasks = runs * job.Parts;
        }
        else
        {
            // Bands of group rows whose input copy fits the budget, and at least two tasks per thread.
            long rowFloats = (long)tile * step * ins * job.Pitch;
            int bandRows = (int)Math.Clamp((WinogradBandBudget - rowFloats) / rowFloats, 1, groupRows);
            // At least a panel's groups: F(4x4, 3x3)'s input rows are twice as long, and one tile row a band left
            // 64×56×56's blocks half a panel (4.0 ms a batch of 8 instead of 2.7).
            bandRows = Math.Clamp(Math.Max(bandRows, (panelGroups + rowGroups - 1) / rowGroups), 1, groupRows);
            int wanted = (2 * ThreadCount + batch - 1) / batch;
            bandRows = Math.Min(bandRows, (groupRows + wanted - 1) / wanted);
            job.BandRows = bandRows;
            job.Bands = (groupRows + bandRows - 1) / bandRows;
            // Blocks of groups of 8 tiles whose V and M fit the budget: whole panels of the micro-kernel's columns,
            // at least one. Where an image has fewer groups than a block (maps 7 or 8 wide: 2 groups, half a panel),
            // a task takes a run of whole images, as many as fill the block while every thread keeps two tasks.
            long perTile = (long)planes * (ins + kp);
            job.BlockGroups = Math.Max(1, (int)(WinogradBlockBudget / perTile / nr)) * panelGroups;
            if (job.Bands == 1 && imageGroups < job.BlockGroups)
                job.Images = Math.Clamp(Math.Min(job.BlockGroups / imageGroups, batch / (2 * ThreadCount)), 1, batch);
            tasks = (batch + job.Images - 1) / job.Images * job.Bands;
        }
        Parallel(tasks, ref job);
    }

    private void WinogradForward(ConvGeometry g, float* x, DeviceBuffer<float> w, float* bias, float* y,
        float* residual, bool relu)
    {
        int tile = ForwardWinogradTile(g);
        var u = WinogradWeightsOf(g, w, WeightPass.Forward, tile,
            keepFirst: DataGradientReadsForwardWeights(g) && y != Data(w));
        RunWinograd(tile, g.Batch, x, g.InChannels, g.InHeight, g.InWidth, u, g.OutChannels, g.OutHeight, g.OutWidth,
            g.PadTop, g.PadLeft, y, bias, residual, relu);
        GC.KeepAlive(w);   // its kept transform must outlive the run that reads it
    }

    /// <summary>Whether the data gradient reads the forward's transformed weights (WinogradJob.ForwardWeights):
    /// AVX-512 (8-row tiles), both passes F(2x2, 3x3), channel counts multiples of 8 and at least 256² channel pairs
    /// (U of 4 MiB or more). The forward keeps them from its first transform then (the memory of one inference
    /// pack), so that a training step transforms each such layer's weights once instead of twice: ResNet-18's 512²
    /// transform writes 16.8 MB, 0.85–1.0 ms a pass at batch 8. Read so, 512×7×7's data gradient at batch 8 took
    /// 3.40 ms where its own transform, kept, took 4.00 (weights written before each call: 4.77 vs 5.45, the forward's
    /// transform done instead); 256×14×14 level; 64×8×8 at batch 128 2–3 % slower, so smaller layers keep their
    /// own. A pass whose output is its own weights (which no layer does) neither keeps nor reads the kept transform:
    /// its first packing of the new version reads the weights before it writes them (WeightPacks.cs).</summary>
    private static bool DataGradientReadsForwardWeights(ConvGeometry g) =>
        Avx512F.IsSupported && g.InChannels % 8 == 0 && g.OutChannels % 8 == 0 &&
        (long)g.InChannels * g.OutChannels >= 1 << 16 && ForwardWinogradTile(g) == 2 &&
        BackwardDataWinogradTile(g) == 2;

    /// <summary>dx = the stride-1 forward convolution of dy with w flipped and its channels swapped, padded by
    /// 2 − pad.</summary>
    private void WinogradBackwardData(ConvGeometry g, float* dy, DeviceBuffer<float> w, float* dx)
    {
        int tile = BackwardDataWinogradTile(g);
        bool forwardWeights = DataGradientReadsForwardWeights(g) && dx != Data(w);
        var u = forwardWeights ? WinogradWeightsOf(g, w, WeightPass.Forward, tile, keepFirst: true)
            : WinogradWeightsOf(g, w, WeightPass.BackwardData, tile);
        RunWinograd(tile, g.Batch, dy, g.OutChannels, g.OutHeight, g.OutWidth, u, g.InChannels, g.InHeight, g.InWidth,
            2 - g.PadTop, 2 - g.PadLeft, dx, null, null, false, forwardWeights);
        GC.KeepAlive(w);
    }

    /// <summary>Floats of the weight gradient's partial sums S, all partitions together, at most (8 MiB), unless one
    /// partition needs more.</summary>
    private const long WinogradPartialBudget = 1 << 21;

    /// <summary>Most partitions of the images for the weight gradient.</summary>
    private const int WinogradMaxPartitions = 16;

    /// <summary>Floats of a weight-gradient block's V and Z (all output channels, so that the blocks and the sums
    /// do not depend on the parts) together (1 MiB), within 8 to 16 groups of 8 tiles.
    /// </summary>
    private const long WinogradWeightBlockBudget = 1 << 18;

    /// <summary>The weight gradient through Winograd where it measured faster than the direct kernels, with AVX2
    /// and AVX-512 alike: on the shapes the forward takes, for 64² to 256² channel pairs (32² ran level; 512² on 7x7
    /// maps slower, on AVX-512 by 45–70 %), and 4 images or more. On AVX-512, batch 8: 64×56×56 7.5 → 5.7 ms,
    /// 128×28×28 6.6 → 4.9; 64×8×8 at batch 128 2.5 → 2.1; 256×14×14 level at batch 8, 12.3 → 10.7 at 16. Where
    /// the forward takes F(4x4, 3x3), so does the weight gradient, from 32² channel pairs: against F(2x2, 3x3) at
    /// batch 8, 64×56×56 4.9 → 3.5–3.8 ms, 128×28×28 4.2 → 3.7–3.9, 256×28×28 19.0 → 14.2; against the direct
    /// kernels at batch 128, 32×16×16 1.95 → 1.80–1.87, 32×32×32 7.3–7.6 → 6.0–6.2.</summary>
    private static int BackwardWeightWinogradTile(ConvGeometry g) => g.Batch < 4 ? 0 :
        WinogradTileOf(g, g.InChannels, g.OutChannels, g.PadTop, g.PadLeft, g.OutWidth, g.OutHeight,
            (1 << 12, 1 << 16), Winograd4WeightGradientProducts);

    private static bool UseWinogradBackwardWeight(ConvGeometry g) => BackwardWeightWinogradTile(g) != 0;

    private void WinogradBackwardWeight(ConvGeometry g, float* x, float* dy, float* dw)
    {
        int tile = BackwardWeightWinogradTile(g);
        var (tileRows, rowGroups, paired) = WinogradTiling(g.OutHeight, g.OutWidth, tile);
        int kp = WinogradWeightsJob.PaddedRows(g.OutChannels), planes = WinogradWeightsJob.PlanesOf(tile);
        int cp = WinogradWeightJob.PaddedChannels(g.InChannels);
        long partialFloats = planes * WinogradWeightJob.PartialPlaneFloats(kp, cp);
        int partitions = (int)Math.Clamp(WinogradPartialBudget / ((long)planes * kp * cp), 1,
            Math.Min(g.Batch, WinogradMaxPartitions));
        var (partRows, parts) = OutputChannelParts(kp, (2 * ThreadCount + partitions - 1) / partitions);
        var job = new WinogradWeightJob
        {
            Input = x, OutputGradient = dy,
            Partials = (float*)WorkerScratch(0, PartialsSlot, partitions * partialFloats * sizeof(float)),
            Batch = g.Batch, Channels = g.InChannels, Height = g.InHeight, Width = g.InWidth,
            OutChannels = g.OutChannels, OutHeight = g.OutHeight, OutWidth = g.OutWidth, PadTop = g.PadTop,
            PadLeft = g.PadLeft, Tile = tile, TileRows = tileRows, RowGroups = rowGroups,
            Partitions = partitions, PartRows = partRows, Parts = parts, PairedRows = paired, Backend = this,
            BlockGroups = (int)Math.Clamp(WinogradWeightBlockBudget / ((long)planes * (cp + kp) * 8), 8, 16),
        };
        Parallel(partitions * parts, ref job);
        var sum = new WinogradWeightSumJob
        {
            Partials = job.Partials, Weight = dw, OutChannels = g.OutChannels, Channels = g.InChannels,
            Partitions = partitions, Tile = tile,
        };
        Parallel(g.OutChannels, ref sum);
    }
}
