// 2-D convolution, forward and both backward passes: x [N,C,H,W], w [K,C/G,R,S], bias [K], y [N,K,OH,OW].
//
// float runs as implicit GEMM on the packed engine (Gemm.cs): the patch (im2col) matrix is never stored, its
// panels are gathered straight from the image while packing, a patch row over a task's columns at a time (the
// weight gradient's strided or padded patches over grids of short rows: with AVX-512 a grid row in two masked
// loads and a permute, else eight columns per depth in one AVX2 gather).
// Dilation d spreads the taps: tap r sits r·d rows into the window. With G groups each pass runs once per group,
// on the group's slices of the channels (C/G input, K/G output) and of w; G = 1 is one run over everything.
//   forward:         y[n] (K × OH·OW)   = w (K × C·R·S)            · patches of x[n] (C·R·S × OH·OW)
//   backward data:   dx[n] (C × H·W)    = w permuted (C × K·R·S)   · patches of dy[n] (K·R·S × H·W) at stride 1,
//                    the transposed convolution: tap (r, s) reads dy at (i + PadTop − r, …); strided, without
//                    the transposed convolution's zeros: columns[n] (C·R·S × OH·OW) = wᵀ (C·R·S × K) · dy[n]
//                    (K × OH·OW), a block of input channels and a run of images (or a band of one image's
//                    output rows) at a time in a task's cache, then col2im adds each column into its plane of dx
//   backward weight: dw (K × C·R·S)     = dy (K × N·OH·OW)         · patches of x, transposed (N·OH·OW × C·R·S)
// Every output element is owned by one task and summed in a fixed order, so results are deterministic.
// Forward's epilogue (y = conv + bias [+ residual], then ReLU: a folded conv → BN [→ add] → ReLU) runs in the
// packed GEMM's and the vectorised direct path's tile stores; the plain direct loops apply it per plane.
//
// double (and float without AVX2+FMA) runs direct loops, one task per output plane, gathering (never
// scattering) so that no two tasks touch one element. The vectorised direct convolutions (DirectConvolution.cs)
// serve dense undilated float shapes first (within their size limits): all of them with AVX-512, the narrow ones
// with AVX2.
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

/// <summary>
/// The implicit patch matrix of a convolution, rows (ch, r, s), columns the positions (y, x) of one image's grid:
/// P[(ch, r, s)][(y, x)] = source[n, ch, ty, tx] with ty = y·MulY + BaseY + Direction·r·DilationY (and tx
/// likewise), or 0 where that lies outside the source. Channels is the source's full channel count (the image
/// stride); a group's patches start Source at its first channel.
/// </summary>
internal unsafe struct PatchMatrix
{
    public float* Source;
    public int Channels, Height, Width;
    public int GridHeight, GridWidth;
    public int MulY, MulX, BaseY, BaseX, Direction, DilationY, DilationX;

    /// <summary>True when a patch row is the source plane itself (1x1 kernel, stride 1, no padding).</summary>
    public bool IsPlane;

    /// <summary>A 1x1 kernel at stride 1 without padding: the patch rows are the source planes, either way.</summary>
    public static bool IsPointwise(ConvGeometry g) =>
        g.KernelHeight == 1 && g.KernelWidth == 1 && g.StrideHeight == 1 && g.StrideWidth == 1 && g.PadTop == 0 &&
        g.PadLeft == 0 && g.OutHeight == g.InHeight && g.OutWidth == g.InWidth;

    /// <summary>Patches of x for the forward pass and the weight gradient, over the input channels of
    /// <paramref name="group"/>.</summary>
    public static PatchMatrix OfInput(ConvGeometry g, float* x, int group) => new()
    {
        Source = x + (long)group * g.GroupInChannels * g.InHeight * g.InWidth, Channels = g.InChannels,
        Height = g.InHeight, Width = g.InWidth, GridHeight = g.OutHeight, GridWidth = g.OutWidth,
        MulY = g.StrideHeight, MulX = g.StrideWidth, BaseY = -g.PadTop, BaseX = -g.PadLeft, Direction = 1,
        DilationY = g.DilationHeight, DilationX = g.DilationWidth, IsPlane = IsPointwise(g),
    };

    /// <summary>Patches of dy for the data gradient at stride 1 (the transposed convolution over the input grid),
    /// over the output channels of <paramref name="group"/>. A strided data gradient takes the columns path.</summary>
    public static PatchMatrix OfOutputGradient(ConvGeometry g, float* dy, int group)
    {
        Debug.Assert(g.StrideHeight == 1 && g.StrideWidth == 1, "the transposed convolution's patches are stride 1");
        return new PatchMatrix
        {
            Source = dy + (long)group * g.GroupOutChannels * g.OutHeight * g.OutWidth, Channels = g.OutChannels,
            Height = g.OutHeight, Width = g.OutWidth, GridHeight = g.InHeight, GridWidth = g.InWidth,
            MulY = 1, MulX = 1, BaseY = g.PadTop, BaseX = g.PadLeft, Direction = -1,
            DilationY = g.DilationHeight, DilationX = g.DilationWidth, IsPlane = IsPointwise(g),
        };
    }

    /// <summary>Channel <paramref name="ch"/> of image <paramref name="n"/> of the source.</summary>
    public readonly float* Plane(int n, int ch) => Source + ((long)n * Channels + ch) * Height * Width;

    /// <summary>dst[t] = P[(ch, r, s)][pos0 + t] of image n, for t &lt; count: one segment per grid row, found
    /// without a division per segment; or, where grid and source rows are equally wide at stride 1, one displaced
    /// copy of the plane (ShiftedSource.DisplacedCopy).</summary>
    public readonly void Row(float* dst, int n, int ch, int r, int s, int pos0, int count)
    {
        float* plane = Plane(n, ch);
        if (IsPlane)
        {
            PackedGemm.CopyRow(plane + pos0, dst, count);
            return;
        }
        if (MulY == 1 && MulX == 1 && Width == GridWidth)
        {
            ShiftedSource.DisplacedCopy(plane, Width, Height, BaseY + Direction * r * DilationY,
                BaseX + Direction * s * DilationX, pos0, count, dst);
            return;
        }

        if (NarrowStrided)
        {
            NarrowStridedRow(dst, plane, r, s, pos0, count);
            return;
        }

        int y = pos0 / GridWidth, x = pos0 % GridWidth;
        int columnOffset = BaseX + Direction * s * DilationX;
        for (int ty = y * MulY + BaseY + Direction * r * DilationY; count > 0; ty += MulY, x = 0)
        {
            int segment = Math.Min(GridWidth - x, count);
            float* row = plane + (long)ty * Width;
            int tx = x * MulX + columnOffset;
            if ((uint)ty >= (uint)Height) PackedGemm.ZeroRow(dst, segment);
            else ShiftedSource.FillRow(row, Width, tx, MulX, segment, dst);
            dst += segment;
            count -= segment;
        }
    }

    /// <summary>Grid rows of at most 16 taps at stride 2, with AVX-512 (the 7x7 and 14x14 grids of strided layers):
    /// Row takes each grid row in two masked loads and a permute (NarrowStridedRow).</summary>
    public readonly bool NarrowStrided => Avx512F.IsSupported && MulX == 2 && GridWidth <= 16;

    /// <summary>Row where NarrowStrided: a grid row's taps are the even places of the 32 floats from its first tap's
    /// column, loaded with the lanes outside the source row masked off (they read nothing and give 0), once per
    /// grid row of the segment, the first 32 floats PrefetchRowsAhead grid rows on fetched.</summary>
    private readonly void NarrowStridedRow(float* dst, float* plane, int r, int s, int pos0, int count)
    {
        int y = pos0 / GridWidth, x = pos0 % GridWidth;
        int firstColumn = BaseX + Direction * s * DilationX;
        var lane = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var column = lane + Vector512.Create(firstColumn);
        var width = Vector512.Create(Width);
        var lowInside = (Vector512.GreaterThanOrEqual(column, Vector512<int>.Zero) &
            Vector512.LessThan(column, width)).AsSingle();
        column += Vector512.Create(16);
        var highInside = (Vector512.GreaterThanOrEqual(column, Vector512<int>.Zero) &
            Vector512.LessThan(column, width)).AsSingle();
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (int ty = y * MulY + BaseY + Direction * r * DilationY; count > 0; ty += MulY, x = 0)
        {
            int segment = Math.Min(GridWidth - x, count);
            var taps = Vector512<float>.Zero;
            if ((uint)ty < (uint)Height)
            {
                float* start = plane + (long)ty * Width + firstColumn;
                Sse.Prefetch0(start + PrefetchRowsAhead * MulY * Width);
                Sse.Prefetch0(start + PrefetchRowsAhead * MulY * Width + 16);
                taps = Avx512F.PermuteVar16x32x2(Avx512F.MaskLoad(start, lowInside, Vector512<float>.Zero), even,
                    Avx512F.MaskLoad(start + 16, highInside, Vector512<float>.Zero));
                if (x > 0) taps = Avx512F.PermuteVar16x32(taps, lane + Vector512.Create(x));
            }
            Avx512F.MaskStore(dst, ShiftedSource.FirstLanes(segment), taps);
            dst += segment;
            count -= segment;
        }
    }

    /// <summary>Grid rows ahead whose source NarrowStridedRow fetches. Batch-8 weight gradients in one process
    /// (rows loaded as gathered before, then without and with the fetch): 128×28×28 → 256 1x1/2 373 → 350 → 339
    /// µs, 512×28×28 → 1024 1x1/2 6.24 → 6.02 → 5.79 ms, 1024×14×14 → 2048 1x1/2 5.51 → 5.34 → 5.20, 128×28×28 →
    /// 256 3x3/2 3.12 → 2.98 → 2.99; onto 7x7 256×14×14 → 512 1x1/2 422 → 424 → 413 µs and 3x3/2 3.00 → 3.01 →
    /// 3.03 ms.</summary>
    private const int PrefetchRowsAhead = 2;

    /// <summary>dst[kk·dstStride + l] = P[(ch, r, s) of column col0 + l][k0 + kk] for kk &lt; kc and l &lt; 8, zero
    /// for l ≥ <paramref name="columns"/>, where the depth runs over every image's positions: a patch row per lane,
    /// each depth's 8 values in one masked AVX2 gather (lanes outside the source, or past the columns, gather
    /// nothing and read 0). Rows of a strided or padded patch matrix cost a call per grid row otherwise (gathered,
    /// then transposed): a 7x7 grid's rows are 7 floats.</summary>
    public readonly void GatherColumns(float* dst, int dstStride, int col0, int columns, int kernelWidth,
        int kernelArea, int k0, int kc)
    {
        Debug.Assert(Avx2.IsSupported && columns <= 8, "eight lanes of AVX2");
        int plane = Height * Width, positions = GridHeight * GridWidth;
        Debug.Assert((long)Channels * plane <= int.MaxValue, "an image's offsets fit an int");
        // Per lane: where its tap starts (the grid position's offset added per depth), and its tap's row and
        // column within the window; a lane past the columns gets a row far outside the source (and reads nothing).
        var start = stackalloc int[8];
        var tapRow = stackalloc int[8];
        var tapColumn = stackalloc int[8];
        for (int l = 0; l < 8; l++)
        {
            if (l >= columns)
            {
                (start[l], tapRow[l], tapColumn[l]) = (0, int.MinValue / 2, 0);
                continue;
            }
            int column = col0 + l;
            int ch = column / kernelArea, r = column % kernelArea / kernelWidth, s = column % kernelWidth;
            tapRow[l] = BaseY + Direction * r * DilationY;
            tapColumn[l] = BaseX + Direction * s * DilationX;
            start[l] = ch * plane + tapRow[l] * Width + tapColumn[l];
        }
        var starts = Vector256.Load(start);
        var rows = Vector256.Load(tapRow);
        var cols = Vector256.Load(tapColumn);
        var lastRow = Vector256.Create(Height - 1);
        var lastColumn = Vector256.Create(Width - 1);
        int n = k0 / positions, p = k0 % positions, y = p / GridWidth, x = p % GridWidth;
        float* image = Source + (long)n * Channels * plane;
        for (int kk = 0; kk < kc; kk++)
        {
            int gy = y * MulY, gx = x * MulX;
            var iy = rows + Vector256.Create(gy);
            var ix = cols + Vector256.Create(gx);
            // A lane reads when 0 ≤ iy < Height and 0 ≤ ix < Width: no sign bit in any of the four.
            var outside = iy | (lastRow - iy) | ix | (lastColumn - ix);
            var index = starts + Vector256.Create(gy * Width + gx);
            Avx2.GatherMaskVector256(Vector256<float>.Zero, image, index, (~outside).AsSingle(), 4)
                .Store(dst + (long)kk * dstStride);
            if (++x == GridWidth)
            {
                x = 0;
                if (++y == GridHeight)
                {
                    y = 0;
                    image += (long)Channels * plane;
                }
            }
        }
    }
}

/// <summary>Forward: A = w (K × C·R·S), B = patches of x, one column group per image.</summary>
internal unsafe struct ConvForwardOperands : IGemmOperands
{
    public float* Weight;
    public int Depth, KernelWidth, KernelArea;
    public PatchMatrix Patches;

    public void PackA(float* dst, int row0, int rows, int k0, int kc, float* work) =>
        PackedGemm.PackRows(dst, Weight + (long)row0 * Depth + k0, Depth, rows, kc);

    public readonly ARows RowsOfA(int row0) => default;

    public void PackB(float* dst, int group, int col0, int cols, int offset, int k0, int kc, float* work) =>
        PackPatchRows(Patches, KernelWidth, KernelArea, dst, group, col0, cols, offset, k0, kc, work);

    /// <summary>Planes read in place are prefetched this many channels ahead when the image is larger than
    /// PrefetchImageFloats (past the L2, where each plane's segment would otherwise be a wait on memory).</summary>
    private const int PrefetchChannels = 8;

    private const long PrefetchImageFloats = 1 << 18;

    /// <summary>The panels of P[k0 …][col0 … col0 + cols) of image n (IGemmOperands.PackB's layout): each patch
    /// row is gathered whole into <paramref name="work"/> (or read in place when it is a plane), then spread.</summary>
    public static void PackPatchRows(in PatchMatrix patches, int kernelWidth, int kernelArea, float* dst, int n,
        int col0, int cols, int offset, int k0, int kc, float* work)
    {
        int nr = PackedGemm.TileColumns;
        int ch = k0 / kernelArea, r = k0 % kernelArea / kernelWidth, s = k0 % kernelWidth;
        long planeFloats = (long)patches.Height * patches.Width;
        bool prefetch = Sse.IsSupported && patches.IsPlane && patches.Channels * planeFloats > PrefetchImageFloats;
        for (int kk = 0; kk < kc; kk++, dst += nr)
        {
            float* row = work;
            if (patches.IsPlane)
            {
                row = patches.Plane(n, ch) + col0;
                if (prefetch && kk + PrefetchChannels < kc)
                    for (int j = 0; j < cols; j += 16) Sse.Prefetch0(row + PrefetchChannels * planeFloats + j);
            }
            else patches.Row(work, n, ch, r, s, col0, cols);
            PackedGemm.SpreadRow(row, dst, cols, (long)kc * nr, offset);
            if (++s == kernelWidth)
            {
                s = 0;
                if (++r * kernelWidth == kernelArea)
                {
                    r = 0;
                    ch++;
                }
            }
        }
    }
}

/// <summary>Backward data: A[c][(k, r, s)] = w[k, c, r, s], gathered from w while packing (in parallel, or kept
/// between calls: WeightPacks.cs); B = patches of dy over the input grid.</summary>
internal unsafe struct ConvBackwardDataOperands : IGemmOperands
{
    public float* Weight;
    public int Depth, InChannels, KernelWidth, KernelArea;
    public PatchMatrix Patches;

    public void PackA(float* dst, int row0, int rows, int k0, int kc, float* work)
    {
        int mr = PackedGemm.TileRows;
        int k = k0 / KernelArea, tap = k0 % KernelArea;
        for (int kk = 0; kk < kc; kk++, dst += mr)
        {
            float* source = Weight + ((long)k * InChannels + row0) * KernelArea + tap;
            int r = 0;
            for (; r < rows; r++) dst[r] = source[(long)r * KernelArea];
            for (; r < mr; r++) dst[r] = 0f;
            if (++tap == KernelArea)
            {
                tap = 0;
                k++;
            }
        }
    }

    public void PackB(float* dst, int group, int col0, int cols, int offset, int k0, int kc, float* work) =>
        ConvForwardOperands.PackPatchRows(Patches, KernelWidth, KernelArea, dst, group, col0, cols, offset, k0, kc,
            work);

    public readonly ARows RowsOfA(int row0) => default;
}

/// <summary>Backward weight: A[k][(n, p)] = dy[n, k, p], B[(n, p)][(c, r, s)] = patches of x, transposed; the
/// depth runs over every image's positions.</summary>
internal unsafe struct ConvBackwardWeightOperands : IGemmOperands
{
    public float* OutputGradient;
    public int OutChannels, Positions, KernelWidth, KernelArea;
    public PatchMatrix Patches;

    /// <summary>dy's rows transposed as they lie.</summary>
    public void PackA(float* dst, int row0, int rows, int k0, int kc, float* work) =>
        TransposeDepth(OutputGradient + (long)row0 * Positions, (long)OutChannels * Positions, rows, dst,
            PackedGemm.TileRows, k0, kc);

    /// <summary>dy's rows as they lie: a channel's positions in each image, the images OutChannels planes
    /// apart.</summary>
    public readonly ARows RowsOfA(int row0) => new()
    {
        First = OutputGradient + (long)row0 * Positions, RowStride = Positions,
        RunStride = (long)OutChannels * Positions, Run = Positions,
    };

    public void PackB(float* dst, int group, int col0, int cols, int offset, int k0, int kc, float* work)
    {
        Debug.Assert(offset == 0, "the weight gradient's B has one column group");
        int nr = PackedGemm.TileColumns;
        for (int j = 0; j < cols; j += nr, dst += (long)kc * nr)
            PackPanel(dst, col0 + j, Math.Min(nr, cols - j), k0, kc, work);
    }

    /// <summary>One panel: dst[kk·NR + j] = patches of x, transposed, [k0 + kk][col0 + j], zero past cols. Patch
    /// rows that are planes (a pointwise kernel) are transposed in place, a stretch of the depth within one image at
    /// a time; strided rows of a grid narrower than GatherBelowWidth are gathered eight columns at a time
    /// (PatchMatrix.GatherColumns) unless AVX-512 copies them (PatchMatrix.NarrowStrided); others are copied into
    /// <paramref name="work"/> (a grid row at a time, or at stride 1 one displaced copy of the plane), then
    /// transposed.</summary>
    private readonly void PackPanel(float* dst, int col0, int cols, int k0, int kc, float* work)
    {
        int nr = PackedGemm.TileColumns;
        bool gathered = !Patches.IsPlane && !Patches.NarrowStrided && Patches.GridWidth < GatherBelowWidth &&
            (Patches.MulY != 1 || Patches.MulX != 1);
        if (Patches.IsPlane || gathered)
        {
            for (int h = 0; h < nr; h += 8)
            {
                if (Patches.IsPlane)
                    TransposeDepth(Patches.Plane(0, col0 + h), (long)Patches.Channels * Positions,
                        Math.Clamp(cols - h, 0, 8), dst + h, nr, k0, kc);
                else
                    Patches.GatherColumns(dst + h, nr, col0 + h, Math.Clamp(cols - h, 0, 8), KernelWidth, KernelArea,
                        k0, kc);
            }
            return;
        }
        for (int j = 0; j < cols; j++)
        {
            int column = col0 + j;
            int ch = column / KernelArea, r = column % KernelArea / KernelWidth, s = column % KernelWidth;
            for (int kk = 0; kk < kc;)
            {
                int n = (k0 + kk) / Positions, p = (k0 + kk) % Positions;
                int segment = Math.Min(Positions - p, kc - kk);
                Patches.Row(work + j * kc + kk, n, ch, r, s, p, segment);
                kk += segment;
            }
        }
        for (int h = 0; h < nr; h += 8)
            PackedGemm.TransposeRows(work + h * kc, kc, Math.Clamp(cols - h, 0, 8), dst + h, nr, kc);
    }

    /// <summary>Strided grid rows narrower than this are gathered (a 7x7 or 14x14 map's rows of 7 or 14 floats cost
    /// a copy call each otherwise); wider ones are copied whole. With AVX2's GEMM, the 7x7/2 stem's weight gradient
    /// (rows of 112) at batch 8 took 16.5–16.7 ms copied and 20.1–20.8 ms gathered (AVX-512 takes it direct). At
    /// stride 1 a plane is one displaced copy: 256×14×14 → 256 3x3's weight gradient ran 5 % slower gathered. With
    /// AVX-512, rows at stride 2 are copied as NarrowStridedRow instead (faster: PrefetchRowsAhead has the numbers).
    /// </summary>
    private const int GatherBelowWidth = 16;

    /// <summary>dst[kk·dstStride + r] = row r at depth k0 + kk, for up to 8 rows Positions apart whose depth runs
    /// over the images' positions (row r of image n at first + n·imageStride + r·Positions): transposed in place,
    /// a stretch of the depth within one image at a time.</summary>
    private readonly void TransposeDepth(float* first, long imageStride, int rows, float* dst, int dstStride, int k0,
        int kc)
    {
        for (int kk = 0; kk < kc;)
        {
            int n = (k0 + kk) / Positions, p = (k0 + kk) % Positions;
            int segment = Math.Min(Positions - p, kc - kk);
            PackedGemm.TransposeRows(first + n * imageStride + p, Positions, rows, dst + kk * dstStride, dstStride,
                segment);
            kk += segment;
        }
    }
}

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void Conv2dForwardCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w,
        DeviceBuffer<T>? bias, DeviceBuffer<T> y, DeviceBuffer<T>? residual, bool relu)
    {
        T* biasData = bias is null ? null : Data(bias), residualData = residual is null ? null : Data(residual);

        if (typeof(T) == typeof(float) && UseWinogradForward(g))
        {
            WinogradForward(g, (float*)Data(x), (DeviceBuffer<float>)(object)w, (float*)biasData, (float*)Data(y),
                (float*)residualData, relu);
            return;
        }

        if (typeof(T) == typeof(float) && g.IsDenseUndilated && UseDirectForward(g))
        {
            DirectForward(g, (float*)Data(x), (DeviceBuffer<float>)(object)w, (float*)biasData, (float*)Data(y),
                (float*)residualData, relu);
            return;
        }

        if (typeof(T) == typeof(float) && PackedGemm.IsSupported)
        {
            int positions = g.OutHeight * g.OutWidth, groupOut = g.GroupOutChannels;
            int depth = g.GroupInChannels * g.KernelHeight * g.KernelWidth;
            for (int group = 0; group < g.Groups; group++)
            {
                var operands = new ConvForwardOperands
                {
                    Weight = (float*)Data(w) + (long)group * groupOut * depth, Depth = depth,
                    KernelWidth = g.KernelWidth, KernelArea = g.KernelHeight * g.KernelWidth,
                    Patches = PatchMatrix.OfInput(g, (float*)Data(x), group),
                };
                // The GEMM's column groups are the images; this convolution group's rows are its K/G channels. The
                // bias, residual and ReLU run in the GEMM's epilogue, on each tile as it is finished.
                long groupOffset = (long)group * groupOut * positions;
                var pack = new WeightPackKey(WeightPass.Forward, WeightLayout.Gemm, group, groupOut, depth,
                    operands.KernelArea);
                RunPackedGemm(operands, new GemmOutput
                {
                    C = (float*)Data(y) + groupOffset, Rows = groupOut, Depth = depth,
                    Groups = g.Batch, GroupColumns = positions, GroupStride = (long)g.OutChannels * positions,
                    RowStride = positions, Alpha = 1f, Beta = 0f,
                    Bias = biasData == null ? null : (float*)biasData + (long)group * groupOut,
                    Residual = residualData == null ? null : (float*)residualData + groupOffset, Relu = relu,
                }, (DeviceBuffer<float>)(object)w, pack);
            }
            return;
        }

        var job = new DirectConvForwardJob<T>
            { G = g, X = Data(x), W = Data(w), Bias = biasData, Y = Data(y), Residual = residualData, Relu = relu };
        Parallel(g.Batch * g.OutChannels, ref job);
    }

    /// <summary>The convolution epilogue after the output plane <paramref name="y"/> holds conv + bias:
    /// y += residual (when not null), then ReLU (when <paramref name="relu"/>; NaN propagates).</summary>
    private static void AddResidualRelu<T>(T* y, T* residual, int count, bool relu)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T floor = relu ? T.Zero : T.NegativeInfinity;
        for (int i = 0; i < count; i++) y[i] = T.Max(residual == null ? y[i] : y[i] + residual[i], floor);
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardDataCore<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w,
        DeviceBuffer<T> dx)
    {
        if (typeof(T) == typeof(float) && UseWinogradBackwardData(g))
        {
            WinogradBackwardData(g, (float*)Data(dy), (DeviceBuffer<float>)(object)w, (float*)Data(dx));
            return;
        }

        if (typeof(T) == typeof(float) && g.IsDenseUndilated && UseDirectBackwardData(g))
        {
            DirectBackwardData(g, (float*)Data(dy), (DeviceBuffer<float>)(object)w, (float*)Data(dx));
            return;
        }

        if (typeof(T) == typeof(float) && PackedGemm.IsSupported && (g.StrideHeight > 1 || g.StrideWidth > 1))
        {
            ColumnsBackwardData(g, (float*)Data(dy), (float*)Data(w), (float*)Data(dx));
            return;
        }

        if (typeof(T) == typeof(float) && PackedGemm.IsSupported)
        {
            int positions = g.InHeight * g.InWidth;
            int kernelArea = g.KernelHeight * g.KernelWidth, groupIn = g.GroupInChannels, groupOut = g.GroupOutChannels;
            long groupWeights = (long)groupOut * groupIn * kernelArea;
            for (int group = 0; group < g.Groups; group++)
            {
                var operands = new ConvBackwardDataOperands
                {
                    Weight = (float*)Data(w) + group * groupWeights, Depth = groupOut * kernelArea,
                    InChannels = groupIn, KernelWidth = g.KernelWidth, KernelArea = kernelArea,
                    Patches = PatchMatrix.OfOutputGradient(g, (float*)Data(dy), group),
                };
                var pack = new WeightPackKey(WeightPass.BackwardData, WeightLayout.Gemm, group, groupIn, operands.Depth,
                    kernelArea);
                RunPackedGemm(operands, new GemmOutput
                {
                    C = (float*)Data(dx) + (long)group * groupIn * positions, Rows = groupIn, Depth = operands.Depth,
                    Groups = g.Batch, GroupColumns = positions, GroupStride = (long)g.InChannels * positions,
                    RowStride = positions, Alpha = 1f, Beta = 0f,
                }, (DeviceBuffer<float>)(object)w, pack);
            }
            return;
        }

        var job = new DirectConvBackwardDataJob<T> { G = g, DY = Data(dy), W = Data(w), DX = Data(dx) };
        Parallel(g.Batch * g.InChannels, ref job);
    }

    /// <inheritdoc/>
    protected override void Conv2dBackwardWeightCore<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy,
        DeviceBuffer<T> dw)
    {
        if (typeof(T) == typeof(float) && UseWinogradBackwardWeight(g))
        {
            WinogradBackwardWeight(g, (float*)Data(x), (float*)Data(dy), (float*)Data(dw));
            return;
        }

        if (typeof(T) == typeof(float) && g.IsDenseUndilated && UseDirectBackwardWeight(g))
        {
            DirectBackwardWeight(g, (float*)Data(x), (float*)Data(dy), (float*)Data(dw));
            return;
        }

        if (typeof(T) == typeof(float) && PackedGemm.IsSupported)
        {
            int positions = g.OutHeight * g.OutWidth;
            int kernelArea = g.KernelHeight * g.KernelWidth, groupOut = g.GroupOutChannels;
            int columns = g.GroupInChannels * kernelArea;
            for (int group = 0; group < g.Groups; group++)
            {
                var operands = new ConvBackwardWeightOperands
                {
                    OutputGradient = (float*)Data(dy) + (long)group * groupOut * positions,
                    OutChannels = g.OutChannels, Positions = positions, KernelWidth = g.KernelWidth,
                    KernelArea = kernelArea, Patches = PatchMatrix.OfInput(g, (float*)Data(x), group),
                };
                RunPackedGemm(operands, new GemmOutput
                {
                    C = (float*)Data(dw) + (long)group * groupOut * columns, Rows = groupOut,
                    Depth = g.Batch * positions, Groups = 1, GroupColumns = columns, GroupStride = 0,
                    RowStride = columns, Alpha = 1f, Beta = 0f,
                });
            }
            return;
        }

        var job = new DirectConvBackwardWeightJob<T> { G = g, X = Data(x), DY = Data(dy), DW = Data(dw) };
        Parallel(g.OutChannels * g.GroupInChannels, ref job);
    }

    /// <summary>Floats of patch gradients (columns) a task of the strided data gradient holds at once (128 KiB,
    /// in its L2 beside its packed dy).</summary>
    private const int ColumnsBlockFloats = 1 << 15;

    /// <summary>Floats of columns a band of the strided data gradient holds where one channel's columns of an image
    /// are more than ColumnsBlockFloats (the 7x7/2 stem's: 49 rows × 12544, in three blocks of a channel, columns
    /// and col2im went through memory). 512 KiB, its next band's dy fetched while it multiplies: in one process,
    /// the stem's data gradient at batch 8 7.93 → 7.38 ms (bands of 1 MiB: 7.44; of 256 KiB: 9.30), 7.18 with the
    /// fetch; batch 4 3.88 → 3.56 → 3.46.</summary>
    private const long BandFloats = 1 << 17;

    /// <summary>Fewest micro-tile panels of columns a task of the strided data gradient multiplies where the batch
    /// allows: small maps take several images a task, so that their columns fill whole panels (ResNet-50's 7x7
    /// maps, 49 columns an image, would leave 15 of 64 columns empty alone).</summary>
    private const int MinColumnPanels = 8;

    /// <summary>
    /// Strided data gradient without the zeros of the transposed convolution, per run of images and block of input
    /// channels (of one group): the block's patch gradients columns = w_gᵀ[block's C·R·S rows] (× K/G) ·
    /// dy[images]_g (K/G × images·OH·OW), by the packed GEMM's micro-kernel into the task's scratch (wᵀ packed
    /// once per call, dy once per task), then col2im from there into the block's planes of dx, while the columns
    /// are still in cache. Depth blocks, micro-tiles and sums are the packed GEMM's (no slicing), so each column entry
    /// is summed as a GEMM of that image alone would sum it, and col2im adds the entries into each plane in a fixed
    /// order: the result does not depend on the batch, the blocks or the threads. An image whose columns outgrow the
    /// cache even a channel at a time goes in bands of output rows (ExecuteBands), with the same sums.
    /// </summary>
    private void ColumnsBackwardData(ConvGeometry g, float* dy, float* w, float* dx)
    {
        int positions = g.OutHeight * g.OutWidth, kernelArea = g.KernelHeight * g.KernelWidth;
        int groupIn = g.GroupInChannels, groupOut = g.GroupOutChannels, rows = groupIn * kernelArea;
        int mr = PackedGemm.TileRows, nr = PackedGemm.TileColumns;
        int images = Math.Clamp(MinColumnPanels * nr / positions, 1, g.Batch);
        int runs = (g.Batch + images - 1) / images, width = (images * positions + nr - 1) / nr * nr;
        // Parts of a run's blocks, for enough tasks (batch 1); the blocks a multiple of them, so parts are equal.
        int parts = Math.Min(groupIn, (2 * ThreadCount + runs * g.Groups - 1) / (runs * g.Groups));
        int blocks = (int)(((long)rows * width + ColumnsBlockFloats - 1) / ColumnsBlockFloats);
        blocks = (blocks + parts - 1) / parts * parts;
        // An image whose one channel's columns are past the budget (the 7x7/2 stem's 49 × 12544) goes in bands of
        // output rows instead, every channel one block.
        int bandRows = 0, heldRows = 0;
        if ((long)kernelArea * width > ColumnsBlockFloats && g.StrideWidth == 2 && Avx.IsSupported &&
            images == 1 && parts == 1 && g.Groups == 1)
        {
            int tileRows = (rows + mr - 1) / mr * mr;
            heldRows = Math.Min(g.OutHeight, ((g.KernelHeight - 1) * g.DilationHeight + g.StrideHeight - 1) /
                g.StrideHeight);
            bandRows = (int)Math.Clamp(BandFloats / ((long)tileRows * g.OutWidth) - heldRows, 1, g.OutHeight);
            width = ((heldRows + bandRows) * g.OutWidth + nr - 1) / nr * nr + nr;
            blocks = 1;
        }
        int blockChannels = (groupIn + Math.Min(blocks, groupIn) - 1) / Math.Min(blocks, groupIn);
        blocks = (groupIn + blockChannels - 1) / blockChannels;   // no empty block
        int blockTileRows = (blockChannels * kernelArea + mr - 1) / mr * mr;
        var packedA = (float*)WorkerScratch(0, PackedASlot,
            (long)g.Groups * blocks * blockTileRows * groupOut * sizeof(float));
        var pack = new ColumnsPackJob
        {
            W = w, PackedA = packedA, Rows = rows, GroupOut = groupOut, KernelArea = kernelArea, Blocks = blocks,
            BlockChannels = blockChannels, GroupIn = groupIn, BlockTileRows = blockTileRows,
        };
        Parallel(g.Groups * blocks, ref pack);
        var job = new ColumnsBackwardDataJob
        {
            G = g, DY = dy, DX = dx, PackedA = packedA, Blocks = blocks, BlockChannels = blockChannels,
            BlockTileRows = blockTileRows, Images = images, Runs = runs, Parts = Math.Min(blocks, parts),
            Width = width, BandRows = bandRows, HeldRows = heldRows, Backend = this,
        };
        Parallel(g.Groups * runs * job.Parts, ref job);
    }

    /// <summary>wᵀ's rows of each block of input channels (task: group · Blocks + block), packed as the GEMM packs
    /// its A: per depth block from k0 (BlockDepth of K/G), [row tile][kc][MR] from k0 · BlockTileRows.</summary>
    private struct ColumnsPackJob : IParallelJob
    {
        public float* W, PackedA;
        public int Rows, GroupOut, GroupIn, KernelArea, Blocks, BlockChannels, BlockTileRows;

        public void Execute(int task, int worker)
        {
            int group = task / Blocks, block = task % Blocks, mr = PackedGemm.TileRows;
            int c0 = block * BlockChannels, row0 = c0 * KernelArea;
            int blockRows = (Math.Min(GroupIn, c0 + BlockChannels) - c0) * KernelArea;
            var operands = new MatrixOperands
                { A = W + (long)group * GroupOut * Rows, M = Rows, K = GroupOut, TransposeA = true };
            float* dst = PackedA + (long)task * BlockTileRows * GroupOut;
            int depthBlock = PackedGemm.BlockDepth(GroupOut);
            for (int k0 = 0; k0 < GroupOut; k0 += depthBlock)
                operands.PackTransposedATiles(dst + (long)k0 * BlockTileRows, row0, blockRows, BlockTileRows / mr, k0,
                    Math.Min(depthBlock, GroupOut - k0));
        }
    }

    /// <summary>Task (group, run of Images images, part): the run's dy_g packed into the worker's B panels, the
    /// images one after another (Width columns in all), then for each block of input channels of the part, its
    /// columns into the worker's scratch (Width floats a row) and col2im into its planes of dx.</summary>
    private struct ColumnsBackwardDataJob : IParallelJob
    {
        public ConvGeometry G;
        public float* DY, DX, PackedA;
        public int Blocks, BlockChannels, BlockTileRows, Images, Runs, Parts, Width, BandRows, HeldRows;
        public CpuBackend Backend;

        public void Execute(int task, int worker)
        {
            if (BandRows > 0)
            {
                ExecuteBands(task, worker);
                return;
            }
            int part = task % Parts, run = task / Parts % Runs, group = task / Parts / Runs;
            int n0 = run * Images, images = Math.Min(Images, G.Batch - n0);
            int positions = G.OutHeight * G.OutWidth, kernelArea = G.KernelHeight * G.KernelWidth;
            int groupIn = G.GroupInChannels, groupOut = G.GroupOutChannels;
            int nr = PackedGemm.TileColumns, depthBlock = PackedGemm.BlockDepth(groupOut);
            var dyOperands = new MatrixOperands
            {
                B = DY + (long)group * groupOut * positions, BGroupStride = (long)G.OutChannels * positions,
                N = positions, K = groupOut,
            };
            var packedB = (float*)Backend.WorkerScratch(worker, PackedBSlot, (long)groupOut * Width * sizeof(float));
            var work = (float*)Backend.WorkerScratch(worker, PackWorkSlot,
                PackedGemm.PackWorkFloats(depthBlock) * sizeof(float));
            int columnsUsed = images * positions;
            for (int k0 = 0; k0 < groupOut; k0 += depthBlock)
            {
                int kc = Math.Min(depthBlock, groupOut - k0);
                float* panels = packedB + (long)k0 * Width;
                for (int i = 0; i < images; i++)
                {
                    int local = i * positions;
                    dyOperands.PackB(panels + (long)(local / nr) * kc * nr, n0 + i, 0, positions, local % nr, k0, kc,
                        work);
                }
            }
            var columns = Columns(worker);
            var col2im = Col2ImOf(worker);
            int planeSize = G.InHeight * G.InWidth;
            for (int block = part * Blocks / Parts; block < (part + 1) * Blocks / Parts; block++)
            {
                float* a = PackedA + ((long)group * Blocks + block) * BlockTileRows * groupOut;
                for (int k0 = 0; k0 < groupOut; k0 += depthBlock)
                {
                    int kc = Math.Min(depthBlock, groupOut - k0);
                    float* aBlock = a + (long)k0 * BlockTileRows, bBlock = packedB + (long)k0 * Width;
                    MultiplyBlock(aBlock, bBlock, kc, columns, columnsUsed, k0 == 0 ? 0f : 1f);
                }
                int c0 = block * BlockChannels, c1 = Math.Min(groupIn, c0 + BlockChannels);
                for (int i = 0; i < images; i++)
                {
                    float* plane = DX + ((long)(n0 + i) * G.InChannels + (long)group * groupIn + c0) * planeSize;
                    for (int c = c0; c < c1; c++, plane += planeSize)
                        col2im.Plane(plane, columns + (long)(c - c0) * kernelArea * Width + (long)i * positions);
                }
            }
        }

        /// <summary>The worker's columns: BlockTileRows rows of Width floats.</summary>
        private readonly float* Columns(int worker) =>
            (float*)Backend.WorkerScratch(worker, ColumnsSlot, (long)BlockTileRows * Width * sizeof(float));

        /// <summary>col2im over the columns' rows (Width floats apart), with the worker's row phases.</summary>
        private readonly Col2Im Col2ImOf(int worker) => new()
        {
            G = G, ColumnStride = Width,
            Phases = (float*)Backend.WorkerScratch(worker, EdgeTileSlot, Col2Im.PhaseFloats(G.InWidth) * sizeof(float)),
        };

        /// <summary>Task (image) in bands of BandRows output rows, every channel one block: each band's dy packed,
        /// its columns multiplied after the HeldRows rows kept from the band before, then the rows of dx that no
        /// later band reaches written whole (Col2Im.StrideTwoRows over them: the same sums in the same order as over
        /// the whole plane), and the last HeldRows rows' columns moved to the front.</summary>
        private readonly void ExecuteBands(int task, int worker)
        {
            int n = task, outWidth = G.OutWidth, kernelArea = G.KernelHeight * G.KernelWidth;
            int groupOut = G.OutChannels, depthBlock = PackedGemm.BlockDepth(groupOut);
            var dyOperands = new MatrixOperands
                { B = DY, BGroupStride = (long)G.OutChannels * G.OutHeight * outWidth, N = G.OutHeight * outWidth,
                  K = groupOut };
            var packedB = (float*)Backend.WorkerScratch(worker, PackedBSlot, (long)groupOut * Width * sizeof(float));
            var work = (float*)Backend.WorkerScratch(worker, PackWorkSlot,
                PackedGemm.PackWorkFloats(depthBlock) * sizeof(float));
            var columns = Columns(worker);
            var col2im = Col2ImOf(worker);
            int planeSize = G.InHeight * G.InWidth, rows = G.InChannels * kernelArea, held = 0, doneRows = 0;
            for (int y0 = 0; y0 < G.OutHeight; y0 += BandRows)
            {
                int y1 = Math.Min(G.OutHeight, y0 + BandRows), used = (y1 - y0) * outWidth;
                if (y1 < G.OutHeight)
                {
                    int next = (Math.Min(G.OutHeight, y1 + BandRows) - y1) * outWidth;
                    float* ahead = DY + n * dyOperands.BGroupStride + (long)y1 * outWidth;
                    for (int k = 0; k < groupOut; k++, ahead += dyOperands.N)
                        for (int f = 0; f < next; f += 16) Sse.Prefetch1(ahead + f);
                }
                for (int k0 = 0; k0 < groupOut; k0 += depthBlock)
                {
                    int kc = Math.Min(depthBlock, groupOut - k0);
                    float* panels = packedB + (long)k0 * Width;
                    dyOperands.PackB(panels, n, y0 * outWidth, used, 0, k0, kc, work);
                    MultiplyBlock(PackedA + (long)k0 * BlockTileRows, panels, kc, columns + held * outWidth, used,
                        k0 == 0 ? 0f : 1f);
                }
                // Rows of dx whose last source row (r = 0) is in this band, all when it is the last.
                int endRow = y1 == G.OutHeight ? G.InHeight
                    : Math.Clamp(y1 * G.StrideHeight - G.PadTop, doneRows, G.InHeight);
                float* plane = DX + (long)n * G.InChannels * planeSize;
                for (int c = 0; c < G.InChannels; c++, plane += planeSize)
                    col2im.StrideTwoRows(plane, columns + (long)c * kernelArea * Width, doneRows, endRow, y0 - held);
                doneRows = endRow;
                int keep = Math.Min(HeldRows, y1 - (y0 - held));
                long from = (long)(y1 - keep - (y0 - held)) * outWidth;
                for (int r = 0; r < rows && y1 < G.OutHeight; r++)
                    Buffer.MemoryCopy(columns + r * (long)Width + from, columns + r * (long)Width,
                        (long)keep * outWidth * sizeof(float), (long)keep * outWidth * sizeof(float));
                held = keep;
            }
        }

        /// <summary>columns (BlockTileRows × Width) = a·b + beta·columns for one depth block of kc, tile by tile:
        /// the operand streamed past the other's tiles is the smaller (the packed dy's panels when the block's rows
        /// outweigh them, as on ResNet-50's 7x7 maps; else the block's packed rows), the other's tile staying in
        /// L1. Only the panels that hold any of the <paramref name="used"/> columns are computed; a last one of at
        /// most NarrowColumns used columns (AVX2: a 7x7 map's 49th column at batch 1) is summed along the rows
        /// (PackedGemm.NarrowPanel: the same sums), its other columns left as they are.</summary>
        private readonly void MultiplyBlock(float* a, float* b, int kc, float* columns, int used, float beta)
        {
            int mr = PackedGemm.TileRows, nr = PackedGemm.TileColumns;
            int usedWidth = (used + nr - 1) / nr * nr, lastCols = used - (usedWidth - nr);
            int wholeWidth = lastCols <= PackedGemm.NarrowColumns ? usedWidth - nr : usedWidth;
            if ((long)BlockTileRows > Width)
            {
                for (int r = 0; r < BlockTileRows; r += mr)
                for (int q = 0; q < wholeWidth; q += nr)
                    PackedGemm.MicroKernel(a + (long)r * kc, b + (long)q * kc, kc, columns + (long)r * Width + q,
                        Width, 1f, beta);
            }
            else
            {
                for (int q = 0; q < wholeWidth; q += nr)
                for (int r = 0; r < BlockTileRows; r += mr)
                    PackedGemm.MicroKernel(a + (long)r * kc, b + (long)q * kc, kc, columns + (long)r * Width + q,
                        Width, 1f, beta);
            }
            if (wholeWidth == usedWidth) return;
            float* sums = stackalloc float[PackedGemm.NarrowTiles * mr * nr];
            for (int r = 0; r < BlockTileRows; r += mr * PackedGemm.NarrowTiles)
            {
                int tiles = Math.Min(PackedGemm.NarrowTiles, (BlockTileRows - r) / mr);
                PackedGemm.NarrowPanel(a + (long)r * kc, tiles, b + (long)wholeWidth * kc, kc, lastCols, sums);
                for (int i = 0; i < tiles * mr; i++)
                    PackedGemm.CombineRow(sums + i * nr, columns + (long)(r + i) * Width + wholeWidth, lastCols, 1f,
                        beta);
            }
        }
    }

    /// <summary>col2im of one plane of the strided data gradient from its R·S rows of columns (ColumnStride floats
    /// apart): zeroed, then each tap's column (r, s) added at its strided positions, taps in order; at a column
    /// stride of 2 row by row instead (StrideTwoRows), with the same bits.</summary>
    private readonly struct Col2Im
    {
        public ConvGeometry G { get; init; }
        public long ColumnStride { get; init; }

        /// <summary>StrideTwoRows' sums of a row's even and odd columns: PhaseFloats(G.InWidth) floats.</summary>
        public float* Phases { get; init; }

        public static int PhaseFloats(int width) => (((width + 1) / 2 + 7) & ~7) + width / 2 + 8;

        public void Plane(float* plane, float* column)
        {
            if (G.StrideWidth == 2 && Avx.IsSupported)
            {
                StrideTwoRows(plane, column, 0, G.InHeight, 0);
                return;
            }
            new Span<float>(plane, G.InHeight * G.InWidth).Clear();
            for (int r = 0; r < G.KernelHeight; r++)
            for (int s = 0; s < G.KernelWidth; s++, column += ColumnStride)
            {
                for (int oh = 0; oh < G.OutHeight; oh++)
                {
                    int ih = oh * G.StrideHeight - G.PadTop + r * G.DilationHeight;
                    if (ih < 0 || ih >= G.InHeight) continue;
                    float* target = plane + ih * G.InWidth;
                    float* source = column + oh * G.OutWidth;
                    int iw = s * G.DilationWidth - G.PadLeft, ow = 0;
                    for (; ow < G.OutWidth && iw < 0; ow++, iw += G.StrideWidth) { }   // left of the row
                    for (; ow < G.OutWidth; ow++, iw += G.StrideWidth)
                        if ((uint)iw < (uint)G.InWidth) target[iw] += source[ow];
                }
            }
        }

        /// <summary>The plane at a column stride of 2, a row at a time: its even and odd columns are summed apart,
        /// in Phases, from +0, adding each tap's column row that reaches them (taps in (r, s) order, as the
        /// tap-by-tap scatter adds them: the same bits), a contiguous run at a shift; then the two are interleaved
        /// into the row, which is written once. Rows [<paramref name="firstRow"/>, <paramref name="endRow"/>), from
        /// columns that start at output row <paramref name="baseRow"/>.</summary>
        public readonly void StrideTwoRows(float* plane, float* columns, int firstRow, int endRow, int baseRow)
        {
            int outHeight = G.OutHeight, outWidth = G.OutWidth, width = G.InWidth;
            int kernelHeight = G.KernelHeight, kernelWidth = G.KernelWidth;
            int strideHeight = G.StrideHeight, dilationHeight = G.DilationHeight, dilationWidth = G.DilationWidth;
            int evenCount = (width + 1) / 2, oddCount = width / 2, oddStart = (evenCount + 7) & ~7;
            float* even = Phases, odd = even + oddStart;
            plane += (long)firstRow * width;
            for (int ih = firstRow; ih < endRow; ih++, plane += width)
            {
                for (int k = 0; k < oddStart + oddCount; k += 8) Vector256<float>.Zero.Store(even + k);
                // Taps r whose rows reach input row ih: ih = oh·sh − PadTop + r·dh.
                for (int r = 0; r < kernelHeight; r++)
                {
                    int reach = ih + G.PadTop - r * dilationHeight, oh = reach / strideHeight;
                    if (reach < 0 || reach != oh * strideHeight || oh >= outHeight) continue;
                    for (int s = 0; s < kernelWidth; s++)
                    {
                        // Input column 2·ow − PadLeft + s·dw = 2j + b: phase b, at j = ow + shift.
                        int b = (s * dilationWidth - G.PadLeft) & 1, shift = (s * dilationWidth - G.PadLeft - b) / 2;
                        float* phase = b == 0 ? even : odd;
                        int lo = Math.Max(0, shift), hi = Math.Min(b == 0 ? evenCount : oddCount, outWidth + shift);
                        float* source = columns + ((long)r * kernelWidth + s) * ColumnStride +
                            (long)(oh - baseRow) * outWidth;
                        AddRow(source + lo - shift, phase + lo, hi - lo);
                    }
                }
                int j = 0;
                for (; j + 8 <= oddCount; j += 8)
                    ShiftedSource.Interleave(Vector256.Load(even + j), Vector256.Load(odd + j), plane + 2 * j);
                for (int iw = 2 * j; iw < width; iw++) plane[iw] = (iw & 1) == 0 ? even[iw >> 1] : odd[iw >> 1];
            }
        }

        /// <summary>dst[i] += src[i] for i &lt; count. From 8 on, the last 8 are summed before the others are stored
        /// and stored after them: where they overlap, both hold the same sum.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void AddRow(float* src, float* dst, int count)
        {
            if (count < 8)
            {
                for (int k = 0; k < count; k++) dst[k] += src[k];
                return;
            }
            var last = Vector256.Load(dst + count - 8) + Vector256.Load(src + count - 8);
            for (int i = 0; i + 8 < count; i += 8) (Vector256.Load(dst + i) + Vector256.Load(src + i)).Store(dst + i);
            last.Store(dst + count - 8);
        }
    }

    /// <summary>y[n, k] for plane task = n·K + k: each output is the sum over the taps (c, r, s) of k's group, then
    /// + bias[k]; then the plane's epilogue (+ residual, ReLU).</summary>
    private struct DirectConvForwardJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public ConvGeometry G;
        public T* X, W, Bias, Y, Residual;
        public bool Relu;

        public void Execute(int task, int worker)
        {
            int n = task / G.OutChannels, k = task % G.OutChannels;
            int groupIn = G.GroupInChannels, firstChannel = k / G.GroupOutChannels * groupIn;
            T* y = Y + (long)task * G.OutHeight * G.OutWidth;
            for (int oh = 0; oh < G.OutHeight; oh++)
            for (int ow = 0; ow < G.OutWidth; ow++)
            {
                T sum = T.Zero;
                for (int c = 0; c < groupIn; c++)
                {
                    T* plane = X + ((long)n * G.InChannels + firstChannel + c) * G.InHeight * G.InWidth;
                    T* kernel = W + ((long)k * groupIn + c) * G.KernelHeight * G.KernelWidth;
                    for (int r = 0; r < G.KernelHeight; r++)
                    {
                        int ih = oh * G.StrideHeight - G.PadTop + r * G.DilationHeight;
                        if (ih < 0 || ih >= G.InHeight) continue;
                        for (int s = 0; s < G.KernelWidth; s++)
                        {
                            int iw = ow * G.StrideWidth - G.PadLeft + s * G.DilationWidth;
                            if (iw < 0 || iw >= G.InWidth) continue;
                            sum += kernel[r * G.KernelWidth + s] * plane[ih * G.InWidth + iw];
                        }
                    }
                }
                y[oh * G.OutWidth + ow] = Bias == null ? sum : sum + Bias[k];
            }
            if (Residual != null || Relu)
                AddResidualRelu(y, Residual == null ? null : Residual + (long)task * G.OutHeight * G.OutWidth,
                    G.OutHeight * G.OutWidth, Relu);
        }
    }

    /// <summary>dx[n, c] for plane task = n·C + c: each input position gathers every (k, r, s) of c's group that
    /// read it.</summary>
    private struct DirectConvBackwardDataJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public ConvGeometry G;
        public T* DY, W, DX;

        public void Execute(int task, int worker)
        {
            int n = task / G.InChannels, c = task % G.InChannels;
            int groupIn = G.GroupInChannels, groupOut = G.GroupOutChannels;
            int firstFilter = c / groupIn * groupOut, channelInGroup = c % groupIn;
            T* dx = DX + (long)task * G.InHeight * G.InWidth;
            for (int ih = 0; ih < G.InHeight; ih++)
            for (int iw = 0; iw < G.InWidth; iw++)
            {
                T sum = T.Zero;
                for (int k = firstFilter; k < firstFilter + groupOut; k++)
                {
                    T* plane = DY + ((long)n * G.OutChannels + k) * G.OutHeight * G.OutWidth;
                    T* kernel = W + ((long)k * groupIn + channelInGroup) * G.KernelHeight * G.KernelWidth;
                    for (int r = 0; r < G.KernelHeight; r++)
                    {
                        int ty = ih + G.PadTop - r * G.DilationHeight;
                        if (ty < 0 || ty % G.StrideHeight != 0 || ty / G.StrideHeight >= G.OutHeight) continue;
                        for (int s = 0; s < G.KernelWidth; s++)
                        {
                            int tx = iw + G.PadLeft - s * G.DilationWidth;
                            if (tx < 0 || tx % G.StrideWidth != 0 || tx / G.StrideWidth >= G.OutWidth) continue;
                            sum += kernel[r * G.KernelWidth + s] *
                                   plane[ty / G.StrideHeight * G.OutWidth + tx / G.StrideWidth];
                        }
                    }
                }
                dx[ih * G.InWidth + iw] = sum;
            }
        }
    }

    /// <summary>dw[k, c] for task = k·C/G + c (c counted within k's group): each tap sums dy · x over every image
    /// and output position.</summary>
    private struct DirectConvBackwardWeightJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public ConvGeometry G;
        public T* X, DY, DW;

        public void Execute(int task, int worker)
        {
            int groupIn = G.GroupInChannels;
            int k = task / groupIn, c = k / G.GroupOutChannels * groupIn + task % groupIn;
            T* dw = DW + (long)task * G.KernelHeight * G.KernelWidth;
            for (int r = 0; r < G.KernelHeight; r++)
            for (int s = 0; s < G.KernelWidth; s++)
            {
                T sum = T.Zero;
                for (int n = 0; n < G.Batch; n++)
                {
                    T* plane = X + ((long)n * G.InChannels + c) * G.InHeight * G.InWidth;
                    T* grad = DY + ((long)n * G.OutChannels + k) * G.OutHeight * G.OutWidth;
                    for (int oh = 0; oh < G.OutHeight; oh++)
                    {
                        int ih = oh * G.StrideHeight - G.PadTop + r * G.DilationHeight;
                        if (ih < 0 || ih >= G.InHeight) continue;
                        for (int ow = 0; ow < G.OutWidth; ow++)
                        {
                            int iw = ow * G.StrideWidth - G.PadLeft + s * G.DilationWidth;
                            if (iw < 0 || iw >= G.InWidth) continue;
                            sum += grad[oh * G.OutWidth + ow] * plane[ih * G.InWidth + iw];
                        }
                    }
                }
                dw[r * G.KernelWidth + s] = sum;
            }
        }
    }
}
