// Direct float convolutions, replacing im2col packing, which costs as much as the arithmetic at small C or K: with
// AVX-512 for the whole of ResNet-style 3x3/1x1 layers (any shape whose per-image buffer fits DirectImageLimit); with
// AVX2+FMA for the narrow ones (at most NarrowGemmLimit channels on the GEMM's narrow side), the packed GEMM
// (Convolution.cs) serving the rest. The micro-kernels' sizes below are AVX-512's; AVX2's are in DirectKernels.
//
// Each image is first copied, once per task, into a zero-padded buffer in the worker's scratch (L2-resident) laid
// out so that every depth term (c, r, s) is a plane indexed by the output pixel p = oh·OW + ow (ShiftedSource):
// a vector of consecutive output pixels is one contiguous load, across row ends too; or, at stride 1 with output
// rows of whole vectors, as one padded plane per channel, each vector read at its row's start (PaddedRows). A
// depth term is then an offset into the buffer, and the micro-kernels read the image in place, never packing it.
// With the threads more than the images (batch 1), an image's outputs are split into bands of rows, each building
// its own rows of the buffer:
//   forward / stride-1 data gradient: 8 output channels × 3 vectors of 16 output pixels in 24 zmm accumulators;
//     per term, 3 loads of the padded image, 8 broadcasts of the (packed, zero-padded) weights, 24 FMAs; the last
//     tile of an image group or band, when it has fewer vectors, 8 × 2 or 8 × 1; a last vector of at most 4
//     pixels (7x7 and 14x14 maps) a pixel at a time, 8 blocks of 8 channels in 8-lane chains (ForwardPixel).
//     The data gradient is the forward convolution of dy with the kernel flipped and its channels swapped; at
//     stride 2 (AVX-512, input twice the output) up to four such convolutions, one per parity of dx's rows and
//     columns, interleaved into dx (PhasedBackwardData); other strided ones take the GEMM's columns path.
//   weight gradient: 4 output channels × 6 depth terms in 24 zmm accumulators (× 3 for a depth's last step of 3
//     terms or fewer), summed over every pixel vector of a group of images, then reduced across lanes; each task
//     owns a fixed range of images (the ranges depend on the shape only; with fewer images than threads, a range
//     of depth steps of one) and writes its own partial dw, and the partials are summed in order afterwards.
// Every output element is summed in a fixed order whichever thread runs it, so results are deterministic.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

/// <summary>
/// One image of a source tensor copied, zero-padded, into a worker's scratch so that every depth term (c, r, s)
/// of the convolution is a plane whose element p (p = oh·OW + ow, the output pixels in order) is the source value
/// that output pixel p multiplies: a vector of consecutive output pixels is one contiguous load, across row ends too.
/// Taps r of one row phase φ = r mod sh share a plane per (c, φ, s): its row i holds source row i·sh + φ − OriginY,
/// and tap r = φ + m·sh starts m rows in. So at stride 1 the R taps share one plane of OH + R − 1 rows per (c, s),
/// and at stride 2 a 3-tall kernel has two planes per (c, s) instead of three.
/// term(c, r, s)[oh][ow] = source[n, c, oh·sh + r − OriginY, ow·sw + s − OriginX], zero outside the source.
/// With PaddedRows (stride 1, rows of whole vectors, for the kernels that take a vector's start per vector) each
/// channel is instead one plane of the zero-padded source, OH + R − 1 rows of OW + S − 1: term (c, r, s) starts r
/// rows and s places in, and output pixel p is read (p / OW)·RowPitch + p % OW on from it, so a vector never
/// crosses a row end and the R·S taps of a channel share one plane, built from each source row once.
/// </summary>
internal unsafe struct ShiftedSource
{
    public float* Source;
    public int Channels, Height, Width;
    public int OutHeight, OutWidth, KernelHeight, KernelWidth, StrideH, StrideW, OriginY, OriginX;
    public bool PaddedRows;

    /// <summary>Whether the buffer would be the source itself: a 1x1 kernel at stride 1 without padding over a source
    /// as large as the output (its planes in the buffer's layout, whether padded rows or not). A direct convolution
    /// then reads the source in place (DirectConvJob.InPlace; the weight gradient's DirectWeightJob too).</summary>
    public readonly bool IsIdentity => KernelHeight == 1 && KernelWidth == 1 && StrideH == 1 && StrideW == 1 &&
        OriginY == 0 && OriginX == 0 && Height == OutHeight && Width == OutWidth;

    /// <summary>Whether PaddedRows may be set: stride 1, and output rows of whole vectors.</summary>
    public readonly bool CanPadRows => StrideH == 1 && StrideW == 1 && OutWidth % DirectKernels.Lanes == 0;

    /// <summary>Floats from one buffer row to the next: a padded row with PaddedRows, else an output row.</summary>
    public readonly int RowPitch => PaddedRows ? OutWidth + KernelWidth - 1 : OutWidth;

    /// <summary>Row phases: planes per (c, s).</summary>
    private readonly int Phases => Math.Min(StrideH, KernelHeight);

    /// <summary>Rows that phase <paramref name="phase"/>'s taps read: OH plus one per further tap.</summary>
    private readonly int PhaseRows(int phase) => OutHeight + (KernelHeight - phase + StrideH - 1) / StrideH - 1;

    /// <summary>Rows of every plane: phase 0's, which has the most taps (other phases' extra rows are zero).</summary>
    private readonly int PlaneRows => PhaseRows(0);
    private readonly long PlaneFloats => (long)PlaneRows * RowPitch;
    private readonly long Planes => PaddedRows ? Channels : (long)Channels * Phases * KernelWidth;

    /// <summary>Floats of one image's buffer, with slack for the last vector's overrun.</summary>
    public readonly long ImageFloats => WithSlack(Planes * PlaneFloats);

    /// <summary>ImageFloats of the buffer a direct convolution builds: with padded rows where they can be.</summary>
    public readonly long BuiltImageFloats
    {
        get
        {
            var built = this;
            built.PaddedRows = CanPadRows;
            return built.ImageFloats;
        }
    }

    private static long WithSlack(long floats) => (floats + 16 + 15) / 16 * 16;

    /// <summary>The size that chooses between the direct path and the GEMM (DirectImageLimit): the buffer itself at
    /// stride 1, and with AVX-512; with AVX2 at larger strides the buffer with a plane per tap, C·R·S·OH·OW. With
    /// its row phases shared the 7x7/2 stem's buffer (2.2 MB) fits the limit: with AVX2 its direct passes measured
    /// up to 1.5× slower than the GEMM at batch 1 (faster at batch 8), so AVX2 keeps the choice it had before
    /// sharing; with AVX-512 its direct forward is 20–25 % faster than the GEMM at batch 1, 2 and 8, and its weight
    /// gradient 45 % faster from batch 8 (11 % slower at batch 1, one partition).</summary>
    public readonly long ChoiceFloats => StrideH == 1 || Avx512F.IsSupported ? ImageFloats
        : WithSlack((long)Channels * KernelHeight * KernelWidth * OutHeight * OutWidth);

    /// <summary>Where term (c, r, s) starts in the buffer: output pixel p reads buffer[Offset + p], or with
    /// PaddedRows buffer[Offset + (p / OW)·RowPitch + p % OW].</summary>
    public readonly int Offset(int c, int r, int s) => checked((int)(PaddedRows
        ? c * PlaneFloats + (long)r * RowPitch + s
        : (((long)c * Phases + r % StrideH) * KernelWidth + s) * PlaneFloats + (long)(r / StrideH) * OutWidth));

    /// <summary>Whether a 3-wide kernel's three column planes come from one pass over each source row, 8 outputs
    /// at a time (ThreeColumns): padding 1, rows of a multiple of 8 outputs (of any width at stride 2 with AVX-512,
    /// ThreeColumnsStrideTwo; rows of 16 outputs, or pairs of rows of 8, SixteenColumnsStrideTwo), read at stride 1 or
    /// 2 from a source row exactly stride times as wide.</summary>
    private readonly bool ThreeColumnRows => Avx2.IsSupported && KernelWidth == 3 && OriginX == 1 &&
        (OutWidth % 8 == 0 || StrideW == 2 && Avx512F.IsSupported) && (StrideW == 1 || StrideW == 2) &&
        Width == OutWidth * StrideW;

    public readonly void Build(float* dst, int n) => Build(dst, n, 0, Channels);

    /// <summary>Floats of a source that a copy of whole planes asks for ahead of the row it copies (4 KiB). The
    /// copies read a layer's input, which comes from memory (its writer streamed it there, or it was written long
    /// before, as a weight gradient's x was); with the hardware's prefetch alone Winograd's copies took a sixth of
    /// ResNet-20's Winograd time. ResNet-20 batch 128 in one process, alternated with no prefetch: 2 and 4 KiB
    /// ahead 27.0 → 26.1 ms inference (Winograd's copies), training 105.3 → 100.8 ms; the direct passes' builds
    /// besides, training 103.1 → 100.7 ms of convolutions (16×32×32's data and weight gradients 5 % faster, the
    /// stride-2 ones 3–20 %). Fetching each line once, a row 4 KiB ahead in the copy's order, took 28.4 ms where
    /// this took 27.7 (inference).</summary>
    private const int FetchAheadFloats = 1024;

    /// <summary>Prefetches the source <see cref="FetchAheadFloats"/> past a row of <paramref name="count"/> floats at
    /// <paramref name="row"/>, a line at a time (and the line after it, wherever the row starts within a line).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void FetchAhead(float* row, int count)
    {
        for (int q = 0; q <= count; q += 16) Sse.Prefetch0(row + FetchAheadFloats + q);
    }

    /// <summary>Builds the planes of channels [<paramref name="firstChannel"/>, <paramref name="endChannel"/>) of
    /// image <paramref name="n"/> where the whole buffer has them (and the slack after the last channel's). Where
    /// the buffer takes the planes' rows from the first to the last, the source ahead of each is fetched.</summary>
    public readonly void Build(float* dst, int n, int firstChannel, int endChannel)
    {
        // Fields and properties read once: the stores below may alias this struct, so each use in a loop is a
        // load, PlaneRows a division per row (read once: ResNet-20's 3x3/2 forwards at batch 128 4–7 % faster,
        // their weight gradients 10 %; a 16×32×32 image's build alone 3.0 → 2.3 µs).
        int ow = OutWidth, planeRows = PlaneRows;
        long planeFloats = PlaneFloats;
        bool prefetch = Sse.IsSupported && OriginY >= 0 && planeRows * StrideH - OriginY >= Height;
        // Stride-2 rows of 16 outputs, or of 8 in pairs, are built 16 outputs a call (SixteenColumnsStrideTwo).
        bool rowOfSixteen = Avx512F.IsSupported && StrideW == 2 && ow == 16;
        bool rowsOfEight = Avx512F.IsSupported && StrideW == 2 && ow == 8;
        for (int c = firstChannel; c < endChannel; c++)
        {
            float* plane = Source + ((long)n * Channels + c) * Height * Width;
            if (PaddedRows)
            {
                float* d = dst + c * planeFloats;
                for (int i = 0, pitch = RowPitch; i < planeRows; i++, d += pitch)
                {
                    int ih = i - OriginY;
                    if ((uint)ih >= (uint)Height) PackedGemm.ZeroRow(d, pitch);
                    else if (Avx512F.IsSupported && OriginX >= 0 && OriginX + Width <= pitch && pitch >= 8)
                    {
                        if (prefetch) FetchAhead(plane + (long)ih * Width, Width);
                        PaddedRow(plane + (long)ih * Width, Width, OriginX, pitch, d);
                    }
                    else FillRow(plane + (long)ih * Width, Width, -OriginX, 1, pitch, d);
                }
                continue;
            }
            for (int phase = 0; phase < Phases; phase++)
            {
                int rows = PhaseRows(phase);
                if (ThreeColumnRows)
                {
                    float* d0 = dst + Offset(c, phase, 0), d1 = d0 + planeFloats, d2 = d1 + planeFloats;
                    for (int i = 0; i < planeRows; i++, d0 += ow, d1 += ow, d2 += ow)
                    {
                        int ih = i * StrideH + phase - OriginY;
                        if (i < rows && (uint)ih < (uint)Height)
                        {
                            float* row = plane + (long)ih * Width;
                            if (prefetch) FetchAhead(row, Width);
                            if (rowOfSixteen) SixteenColumnsStrideTwo(row, 16, false, d0, d1, d2);
                            else if (rowsOfEight && i + 1 < rows && (uint)(ih + StrideH) < (uint)Height)
                            {
                                if (prefetch) FetchAhead(row + StrideH * Width, Width);
                                SixteenColumnsStrideTwo(row, StrideH * Width, true, d0, d1, d2);
                                i++;
                                d0 += ow;
                                d1 += ow;
                                d2 += ow;
                            }
                            else ThreeColumns(row, ow, StrideW, d0, d1, d2);
                        }
                        else
                        {
                            PackedGemm.ZeroRow(d0, ow);
                            PackedGemm.ZeroRow(d1, ow);
                            PackedGemm.ZeroRow(d2, ow);
                        }
                    }
                    continue;
                }
                for (int s = 0; s < KernelWidth; s++)
                {
                    float* d = dst + Offset(c, phase, s);
                    if (StrideH == 1 && StrideW == 1 && Width == ow)
                    {
                        DisplacedCopy(plane, Width, Height, -OriginY, s - OriginX, 0, planeRows * ow, d);
                        continue;
                    }
                    // Stride-2 rows that read inside the source row (1x1/2 layers) take AVX-512's whole vectors
                    // (EvenColumnsWhole) where those reads stay in the source plane, else its masked form, directly:
                    // through FillRow, whose range and zero fills run per row, 1x1/2 forwards measured 5 % slower.
                    int iw0 = s - OriginX;
                    bool evenColumns = Avx512F.IsSupported && StrideW == 2 && iw0 >= 0 && iw0 + 2 * (ow - 1) < Width;
                    float* planeEnd = plane + (long)Height * Width;
                    int wholeReads = EvenColumnsWholeReads(ow);
                    for (int i = 0; i < planeRows; i++, d += ow)
                    {
                        int ih = i * StrideH + phase - OriginY;
                        if (i >= rows || (uint)ih >= (uint)Height) PackedGemm.ZeroRow(d, ow);
                        else if (evenColumns)
                        {
                            float* src = plane + (long)ih * Width + iw0;
                            if (prefetch)
                                for (int q = 0; q < 2 * ow; q += 16) Sse.Prefetch0(src + EvenRowsAhead * 2 * Width + q);
                            if (src + wholeReads <= planeEnd) EvenColumnsWhole(src, ow, d);
                            else EvenColumns(src, ow, Width - iw0, d);
                        }
                        else FillRow(plane + (long)ih * Width, Width, iw0, StrideW, ow, d);
                    }
                }
            }
        }
        if (endChannel == Channels)
            PackedGemm.ZeroRow(dst + Planes * planeFloats, (int)(ImageFloats - Planes * planeFloats));
    }

    /// <summary>A mask of the first <paramref name="count"/> of 16 float lanes (none for count ≤ 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> FirstLanes(int count) => Vector512.LessThan(
        Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector512.Create(count)).AsSingle();

    /// <summary>src[0 … 16) where the lane is below <paramref name="count"/>, else 0; nothing beyond is read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> MaskedLoad(float* src, int count) =>
        Avx512F.MaskLoad(src, FirstLanes(count), Vector512<float>.Zero);

    /// <summary>The rows of columns s = 0, 1, 2 from one source row, for padding 1: d_s[j] = row[sw·j + s − 1],
    /// zero outside the row (at j = 0 for s = 0; at the last j for s = 2 when sw = 1), 8 outputs at a time. The
    /// source is read once: at stride 2 as its even (s = 1) and odd (s = 2) elements; s = 0 is the odd elements
    /// (stride 2) or the row itself (stride 1) moved one place on, the vector before supplying lane 0.</summary>
    private static void ThreeColumns(float* row, int ow, int sw, float* d0, float* d1, float* d2)
    {
        if (sw == 2 && ow % 8 != 0)
        {
            ThreeColumnsStrideTwo(row, ow, d0, d1, d2);
            return;
        }
        var toNext = Vector256.Create(7, 0, 1, 2, 3, 4, 5, 6);
        var toPrevious = Vector256.Create(1, 2, 3, 4, 5, 6, 7, 7);
        var carry = Vector256<float>.Zero;   // lane 0: the element before this vector's first (0 at the row start)
        for (int j = 0; j < ow; j += 8)
        {
            Vector256<float> centre, after;
            if (sw == 1)
            {
                centre = Vector256.Load(row + j);
                after = j + 8 < ow ? Vector256.Load(row + j + 1)
                    : Avx.Blend(Avx2.PermuteVar8x32(centre, toPrevious), Vector256<float>.Zero, 0b1000_0000);
            }
            else
            {
                centre = EveryOtherElement(row + 2 * j, false);
                after = EveryOtherElement(row + 2 * j, true);
            }
            var moved = Avx2.PermuteVar8x32(sw == 1 ? centre : after, toNext);
            Avx.Blend(moved, carry, 0b0000_0001).Store(d0 + j);
            centre.Store(d1 + j);
            after.Store(d2 + j);
            carry = moved;
        }
    }

    /// <summary>ThreeColumns at stride 2 with AVX-512 for 16 outputs of each column plane that are one output row
    /// of 16 (a source row's 32 floats, <paramref name="second"/> = 16) or, <paramref name="twoRows"/>, two of 8
    /// (two source rows of 16 floats, <paramref name="second"/> apart): two loads, three permutes and three whole
    /// stores, no carry from vector to vector. ResNet-20's 3x3/2 layers at batch 128 in one process, against
    /// ThreeColumns' 8 outputs a call: 16×32×32 → 32 forward 921 → 900 µs, weight gradient 1163 → 1125; 32×16×16
    /// → 64 902 → 878 and 1034 → 1011; the build of one 16×32×32 image alone 2.31 → 1.88 µs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SixteenColumnsStrideTwo(float* row, long second, bool twoRows, float* d0, float* d1,
        float* d2)
    {
        var low = Vector512.Load(row);
        var high = Vector512.Load(row + second);
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        // s = 0 reads the odd elements one place on: 0 at a row's start (lane 0, and lane 8 of two rows).
        var before = Vector512.Create(0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29);
        var starts = twoRows ? Vector512.Create(0, -1, -1, -1, -1, -1, -1, -1, 0, -1, -1, -1, -1, -1, -1, -1)
            : Vector512.Create(0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
        (Avx512F.PermuteVar16x32x2(low, before, high) & starts.AsSingle()).Store(d0);
        Avx512F.PermuteVar16x32x2(low, even, high).Store(d1);
        Avx512F.PermuteVar16x32x2(low, even + Vector512<int>.One, high).Store(d2);
    }

    /// <summary>ThreeColumns at stride 2 with AVX-512, for rows that are not whole 8-float vectors (the row 2·ow
    /// wide): 16 outputs at a time, the row's last vector loaded and stored masked (7x7 and 14x14 outputs: one
    /// vector a row). Rows of whole 8-float vectors keep the AVX2 form where SixteenColumnsStrideTwo does not take
    /// them: with 8 outputs a row (16×16 → 8×8) this one's masked stores made 32×16×16 → 64 3x3/2 20 % slower,
    /// forward and weight gradient.</summary>
    private static void ThreeColumnsStrideTwo(float* row, int ow, float* d0, float* d1, float* d2)
    {
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var odd = even + Vector512<int>.One;
        var toNext = Vector512.Create(16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
        var last = Vector512.Create(15);
        var carry = Vector512<float>.Zero;   // lane 0: the element before this vector's first (0 at the row start)
        for (int j = 0; j < ow; j += 16)
        {
            float* src = row + 2 * j;
            int count = Math.Min(16, ow - j);
            Vector512<float> low, high;
            if (count == 16) (low, high) = (Vector512.Load(src), Vector512.Load(src + 16));
            else (low, high) = (MaskedLoad(src, 2 * count), MaskedLoad(src + 16, 2 * count - 16));
            var centre = Avx512F.PermuteVar16x32x2(low, even, high);
            var after = Avx512F.PermuteVar16x32x2(low, odd, high);
            var moved = Avx512F.PermuteVar16x32x2(after, toNext, carry);
            if (count == 16)
            {
                moved.Store(d0 + j);
                centre.Store(d1 + j);
                after.Store(d2 + j);
            }
            else
            {
                var mask = FirstLanes(count);
                Avx512F.MaskStore(d0 + j, mask, moved);
                Avx512F.MaskStore(d1 + j, mask, centre);
                Avx512F.MaskStore(d2 + j, mask, after);
            }
            carry = Avx512F.PermuteVar16x32(after, last);
        }
    }

    /// <summary>d[t] = plane[p + dy·W + dx] for p = pos0 + t, t &lt; count, over positions p = y·W + x of a grid as
    /// wide as the plane (W = <paramref name="width"/>, <paramref name="height"/> rows): the source value wherever
    /// row y + dy exists and x + dx stays inside the row, else 0. One copy of the positions whose source row exists
    /// (and whose displaced index stays in the plane), then the |dx| columns per grid row that wrapped into a
    /// neighbouring row zeroed: a call per row costs more than its copy on small maps. A stride-1 plane of the
    /// image buffer, and a stride-1 patch row of the implicit GEMM (PatchMatrix.Row), are each one such copy.
    /// </summary>
    public static void DisplacedCopy(float* plane, int width, int height, int dy, int dx, int pos0, int count,
        float* d)
    {
        long w = width, shift = dy * w + dx, end = (long)pos0 + count;
        long copyFrom = Math.Max(Math.Max(pos0, Math.Max(0, -dy) * w), -shift);
        long copyTo = Math.Min(Math.Min(end, (height - (long)dy) * w), height * w - shift);
        if (copyTo <= copyFrom)
        {
            PackedGemm.ZeroRow(d, count);
            return;
        }
        PackedGemm.ZeroRow(d, (int)(copyFrom - pos0));
        PackedGemm.CopyRow(plane + copyFrom + shift, d + (copyFrom - pos0), (int)(copyTo - copyFrom));
        PackedGemm.ZeroRow(d + (copyTo - pos0), (int)(end - copyTo));
        if (dx == 0) return;
        for (long rowStart = copyFrom - copyFrom % w; rowStart < copyTo; rowStart += w)
        {
            long zeroFrom = Math.Max(copyFrom, dx < 0 ? rowStart : rowStart + w - dx);
            long zeroTo = Math.Min(copyTo, dx < 0 ? rowStart - dx : rowStart + w);
            if (zeroTo > zeroFrom) PackedGemm.ZeroRow(d + (zeroFrom - pos0), (int)(zeroTo - zeroFrom));
        }
    }

    /// <summary>FillRow at stride 1 with AVX-512 for a source row that lies inside its padded row (0 ≤ origin,
    /// origin + width ≤ pitch, pitch ≥ 8): the padded row zeroed by whole vectors (the last overlapping the one
    /// before), then the source row copied over it at origin, 16 and 8 floats at a time. Zero fills of the one or
    /// two floats either side (a call each) and a masked last vector cost more than the copy on short rows: against
    /// them, at batch 128, the Winograd layers' band copies made 32×16×16 and 64×8×8 forward, data and weight
    /// gradients 7–10 % faster (64×56×56 and 128×28×28 at batch 8 1–4 %), 16×32×32's direct passes level. With the
    /// padded rows of 32x32 and 16x16 maps (34 and 18 floats) the stride-1 forward and data gradient ran 5–6 %
    /// faster than with FillRow; vectors of the padded row, each a masked load from one float before the source
    /// row, were 6–8 % slower than FillRow.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void PaddedRow(float* row, int width, int origin, int pitch, float* d)
    {
        int z = 0;
        for (; z + 16 <= pitch; z += 16) Vector512<float>.Zero.Store(d + z);
        if (z < pitch) Vector256<float>.Zero.Store(d + pitch - 8);
        if (z + 8 < pitch) Vector256<float>.Zero.Store(d + z);
        d += origin;
        int j = 0;
        for (; j + 16 <= width; j += 16) Vector512.Load(row + j).Store(d + j);
        if (j + 8 <= width)
        {
            Vector256.Load(row + j).Store(d + j);
            j += 8;
        }
        for (; j < width; j++) d[j] = row[j];
    }

    /// <summary>d[j] = src[2j] for j &lt; ow, where src[2·(ow − 1)] still lies inside the row's
    /// <paramref name="available"/> floats: 16 outputs at a time, the row's last vector loaded and stored masked.
    /// The 1x1/2 layers' rows of 28, 14 and 7 outputs went partly or wholly element by element in FillRow (a third
    /// of a 128×28×28 → 256 forward in perf). In the per-shape table, forwards at batch 8 0.48–0.50 → 0.36–0.47 ms
    /// (rows of 14 and 7; 56 → 28 level), ResNet-50's at batch 1 0.71–0.74 → 0.59–0.66 ms.</summary>
    internal static void EvenColumns(float* src, int ow, int available, float* d)
    {
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (int j = 0; j < ow; j += 16, src += 32)
        {
            int reads = available - 2 * j;
            var low = reads >= 16 ? Vector512.Load(src) : MaskedLoad(src, reads);
            var high = reads >= 32 ? Vector512.Load(src + 16) : MaskedLoad(src + 16, reads - 16);
            var gathered = Avx512F.PermuteVar16x32x2(low, even, high);
            if (j + 16 <= ow) gathered.Store(d + j);
            else Avx512F.MaskStore(d + j, FirstLanes(ow - j), gathered);
        }
    }

    /// <summary>EvenColumns for a row of a buffer built in order, in whole vectors: 16 outputs from 32 floats of
    /// src (from 16 for a last vector of at most 8), none masked, reading EvenColumnsWholeReads floats from src
    /// (past the row, into the next source row) and writing the outputs' last vector whole, up to 15 floats past
    /// the row, which the build writes afterwards (the next row or plane, or the slack after the last). The 1x1/2
    /// layers' rows of 28, 14 and 7 outputs each ended in a masked load and store. Batch 1 in one process, against
    /// the masked form, two runs: 256×14×14 → 512 1x1/2 forward 52.8 → 50.8 and 44.8 → 42.8 µs, 64×56×56 → 128
    /// 1x1/2 weight gradient 53.0 → 51.1 and level (47.2 / 47.1), the rest level; the build of 64×56×56 alone
    /// 12.4 → 5.6 µs with x in L2, 13.2 → 8.6 from memory.</summary>
    internal static void EvenColumnsWhole(float* src, int ow, float* d)
    {
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        int j = 0;
        for (; j + 8 < ow; j += 16, src += 32)
            Avx512F.PermuteVar16x32x2(Vector512.Load(src), even, Vector512.Load(src + 16)).Store(d + j);
        if (j < ow) Avx512F.PermuteVar16x32(Vector512.Load(src), even).Store(d + j);
    }

    /// <summary>Floats EvenColumnsWhole reads from a row's start for <paramref name="ow"/> outputs.</summary>
    internal static int EvenColumnsWholeReads(int ow) => 32 * ((ow + 7) / 16) + (ow % 16 is > 0 and <= 8 ? 16 : 0);

    /// <summary>Rows ahead (of the rows a strided caller reads, sw·width floats apart) whose source FillRow fetches
    /// at stride 2 with AVX-512. Its rows' last vectors load masked, and masked loads that miss the caches waited on
    /// memory: the weight gradients' patch rows (PatchMatrix.Row) of 512×28×28 → 1024 1x1/2 at batch 8, 12.8 MB of
    /// x, went 5.6 → 6.2 ms masked without the fetch, 5.5 with it.</summary>
    private const int StridedRowsAhead = 2;

    /// <summary>Output rows ahead whose source a 1x1/2 layer's whole-plane build (EvenColumns) fetches: about
    /// FetchAheadFloats. With x from memory (the caches flushed before each call) batch-8 weight gradients
    /// 64×56×56 → 128 0.59 → 0.50 ms and 256×56×56 → 512 6.86 → 6.37 (2 rows ahead: 0.52 and 6.46), its forward
    /// 4.99 → 4.53; with x in the caches, batch 1, 3 % slower (47 → 49 µs). Bands of rows (a batch-1 forward) do not
    /// fetch: there the rows ahead are another band's.</summary>
    private const int EvenRowsAhead = 8;

    /// <summary>d[j] = row[iw0 + j·sw] for j &lt; ow, zero where that is outside [0, width). At stride 2 with
    /// AVX-512 the j that read inside the row go as EvenColumns (rows of 14 and 7 outputs went element by element
    /// before): the weight gradients' GEMM on 14x14 and 7x7 outputs (patch rows gathered for every tap) at batch 8,
    /// 3x3/2 2–8 % faster (128×28×28 → 256 3.92 → 3.73 ms, 256×28×28 → 256 6.87 → 6.37), 1x1/2 from 8 % faster
    /// (256×14×14 → 512) to 3 % slower (1024×14×14 → 2048, 4.60 → 4.73; level in another run).</summary>
    public static void FillRow(float* row, int width, int iw0, int sw, int ow, float* d)
    {
        // [lo, hi): the j that read inside the row (found without a division at strides 1 and 2).
        int lo = sw == 1 ? Math.Clamp(-iw0, 0, ow) : iw0 >= 0 ? 0 : Math.Min(CeilingDivide(-iw0, sw), ow);
        int hi = sw == 1 ? Math.Clamp(width - iw0, lo, ow)
            : iw0 >= width ? lo : Math.Clamp(CeilingDivide(width - iw0, sw), lo, ow);
        PackedGemm.ZeroRow(d, lo);
        PackedGemm.ZeroRow(d + hi, ow - hi);
        if (sw == 1)
        {
            PackedGemm.CopyRow(row + iw0 + lo, d + lo, hi - lo);
            return;
        }
        int j = lo;
        if (sw == 2 && Avx512F.IsSupported)
        {
            float* src = row + iw0 + 2 * lo;
            for (int q = 0; q < 2 * (hi - lo); q += 16) Sse.Prefetch0(src + StridedRowsAhead * 2 * width + q);
            EvenColumns(src, hi - lo, width - iw0 - 2 * lo, d + lo);
            return;
        }
        if (sw == 2 && Avx2.IsSupported)
        {
            for (; j + 8 <= hi && iw0 + 2 * j + 16 <= width; j += 8)
                EveryOtherElement(row + iw0 + 2 * j, false).Store(d + j);
            // The rest as one vector ending at hi, overlapping what is done: its reads end inside the row
            // (iw0 + 2·(hi − 1) < width), so when 16 floats from its start pass the row's end, the 16 floats one
            // before it hold its elements at odd places.
            int last = hi - 8, start = iw0 + 2 * last;
            if (j < hi && last >= lo && (start + 16 <= width || start >= 1))
            {
                EveryOtherElement(row + start - (start + 16 <= width ? 0 : 1), start + 16 > width).Store(d + last);
                j = hi;
            }
        }
        for (; j < hi; j++) d[j] = row[iw0 + j * sw];
    }

    /// <summary>The even (or, when <paramref name="odd"/>, the odd) elements of src[0 … 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> EveryOtherElement(float* src, bool odd) => EveryOtherElement(src, src + 8, odd);

    /// <summary>The even (or, when <paramref name="odd"/>, the odd) elements of low[0 … 8), then those of
    /// high[0 … 8): within each 128-bit lane, then the 64-bit quarters put in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> EveryOtherElement(float* low, float* high, bool odd)
    {
        var lanes = odd ? Avx.Shuffle(Vector256.Load(low), Vector256.Load(high), 0b11_01_11_01)
            : Avx.Shuffle(Vector256.Load(low), Vector256.Load(high), 0b10_00_10_00);
        return Avx2.Permute4x64(lanes.AsDouble(), 0b11_01_10_00).AsSingle();
    }

    /// <summary>EveryOtherElement's inverse: dst[2i] = even[i] and dst[2i + 1] = odd[i] for i &lt; 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Interleave(Vector256<float> even, Vector256<float> odd, float* dst)
    {
        Interleave(even, odd, out var first, out var second);
        first.Store(dst);
        second.Store(dst + 8);
    }

    /// <summary>(e0 o0 … e3 o3, e4 o4 … e7 o7): even and odd interleaved, in two vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Interleave(Vector256<float> even, Vector256<float> odd, out Vector256<float> first,
        out Vector256<float> second)
    {
        var low = Avx.UnpackLow(even, odd);     // e0 o0 e1 o1 | e4 o4 e5 o5
        var high = Avx.UnpackHigh(even, odd);   // e2 o2 e3 o3 | e6 o6 e7 o7
        first = Avx.Permute2x128(low, high, 0x20);
        second = Avx.Permute2x128(low, high, 0x31);
    }

    /// <summary>⌈v / divisor⌉ for v ≥ 0, divisor ≥ 1, with a shift for the common stride 2.</summary>
    private static int CeilingDivide(int v, int divisor) => divisor == 2 ? (v + 1) >> 1 : (v + divisor - 1) / divisor;
}

/// <summary>A set of the direct kernels' terms over one buffer, and where its outputs go. Its terms are (c, t) for
/// every source channel c and each of its Taps taps t in order: the kernel's tap KernelTaps[t] (r·S + s, the weight
/// DirectWeightPackJob packs for it), read at (WindowRows[t], WindowColumns[t]) of the buffer's window (ShiftedSource's
/// tap (r, s)). A convolution is one phase of every tap; a stride-2 data gradient has one per parity of dx's rows and
/// columns that some tap reaches, its outputs dx's rows 2i + RowStart and columns 2j + ColumnStart.</summary>
internal unsafe struct DirectPhase
{
    public int Taps, RowStart, ColumnStart;
    public int* KernelTaps, WindowRows, WindowColumns;

    /// <summary>The packed weights (DirectWeights) and the terms' buffer offsets (RunDirectConv), once set.</summary>
    public float* PackedWeight;
    public int* Offsets;

    /// <summary>The terms of <paramref name="count"/> phases over <paramref name="sourceChannels"/> channels.</summary>
    public static int Depth(DirectPhase* phases, int count, int sourceChannels)
    {
        int depth = 0;
        for (int p = 0; p < count; p++) depth += sourceChannels * phases[p].Taps;
        return depth;
    }
}

/// <summary>out[n, k, p] = Σ over terms d of weight[k][d] · buffer_n[Offsets[d] + p] (+ bias[k], + residual, then
/// ReLU when asked: the epilogue runs as each tile is stored): task t builds the buffers of images [g·G, g·G + G)
/// for g = t / Parts and computes their outputs for one part of the work, a tile of channels × pixel vectors at a
/// time. Parts &gt; 1 only when the images are too few to keep every thread busy: the work is then split into
/// RowParts bands of PartRows output rows, each band's buffer built from its own rows of the source (Source has
/// the band's height; each band moves its origin), and each band into ChannelParts ranges of output-channel blocks,
/// which build the same buffer. One phase (Interleaved false) writes Output itself; an Interleaved run (a stride-2
/// data gradient) computes each phase's outputs for the part into the task's scratch, then interleaves them into
/// Output, twice as tall and wide.</summary>
internal unsafe struct DirectConvJob : IParallelJob
{
    public ShiftedSource Source;
    public DirectPhase* Phases;
    public int PhaseCount, OutChannels, OutHeight, Batch, GroupImages, RowParts, ChannelParts, PartRows;
    public float* Output, Bias, Residual;
    public bool Relu, Interleaved;

    /// <summary>Read the source in place (ShiftedSource.IsIdentity) instead of building its buffer: a band starts at
    /// its first row, the offsets are the source's planes. A tile's last vector may read past a band's or an image's
    /// pixels, into the next rows or past the tensor's end (CpuBuffer's VectorOverrunBytes): those lanes are never
    /// stored.</summary>
    public bool InPlace;

    public CpuBackend Backend;

    public void Execute(int task, int worker)
    {
        int parts = RowParts * ChannelParts, part = task % parts, band = part / ChannelParts;
        int n0 = task / parts * GroupImages, images = Math.Min(GroupImages, Batch - n0);
        int oh0 = band * PartRows, rows = Math.Min(PartRows, OutHeight - oh0);
        int blocks = (OutChannels + DirectKernels.ChannelBlock - 1) / DirectKernels.ChannelBlock;
        int channelPart = part % ChannelParts, ow = Source.OutWidth;
        int firstBlock = (int)((long)channelPart * blocks / ChannelParts);
        int endBlock = (int)((long)(channelPart + 1) * blocks / ChannelParts);
        var source = Source;
        source.OriginY -= oh0 * Source.StrideH;
        long imageFloats = source.ImageFloats, plane = (long)OutHeight * ow;
        float* buffer;
        if (InPlace)
        {
            imageFloats = source.Channels * plane;
            buffer = source.Source + n0 * imageFloats + (long)oh0 * ow;
        }
        else
        {
            buffer = Backend.DirectSourceScratch(worker, images * imageFloats);
            for (int i = 0; i < images; i++) source.Build(buffer + i * imageFloats, n0 + i);
        }
        if (!Interleaved)
        {
            long first = (long)n0 * OutChannels * plane + (long)oh0 * ow;
            Tiles(buffer, imageFloats, ow, source.RowPitch, images, rows * ow, plane, Phases[0].PackedWeight,
                Phases[0].Offsets, source.Channels * Phases[0].Taps, OutChannels, firstBlock, endBlock,
                Output + first, Bias, Residual == null ? null : Residual + first, Relu);
            return;
        }
        // Each phase's outputs for the band: [image][channel][row][column], rows·ow a plane.
        long grid = (long)rows * ow, gridFloats = images * OutChannels * grid;
        float* scratch = Backend.DirectPhaseScratch(worker, PhaseCount * gridFloats);
        var grids = stackalloc float*[4] { null, null, null, null };
        for (int p = 0; p < PhaseCount; p++)
        {
            ref var phase = ref Phases[p];
            float* outputs = scratch + p * gridFloats;
            Tiles(buffer, imageFloats, ow, source.RowPitch, images, rows * ow, grid, phase.PackedWeight,
                phase.Offsets, source.Channels * phase.Taps, OutChannels, firstBlock, endBlock, outputs, null, null,
                false);
            grids[2 * phase.RowStart + phase.ColumnStart] = outputs;
        }
        int block = DirectKernels.ChannelBlock;
        for (int i = 0; i < images; i++)
        for (int k = firstBlock * block; k < Math.Min(endBlock * block, OutChannels); k++)
        {
            long at = ((long)i * OutChannels + k) * grid;
            float* dx = Output + ((long)(n0 + i) * OutChannels + k) * 4 * plane + 4L * oh0 * ow;
            for (int a = 0; a < 2; a++)
                InterleaveRows(grids[2 * a] == null ? null : grids[2 * a] + at,
                    grids[2 * a + 1] == null ? null : grids[2 * a + 1] + at, ow, rows, dx + 2 * a * ow);
        }
    }

    /// <summary>Rows 2r of dst (each 2·width floats, rows 4·width apart) for r &lt; <paramref name="rows"/>:
    /// dst[2j] = even[j] and dst[2j + 1] = odd[j] of row r (width floats a row; 0 for a null grid), 16 of each at a
    /// time, a row's last vectors loaded and stored masked.</summary>
    internal static void InterleaveRows(float* even, float* odd, int width, int rows, float* dst)
    {
        var low = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var high = low + Vector512.Create(8);
        int whole = width & ~15, rest = width - whole;
        var restMask = ShiftedSource.FirstLanes(rest);
        var firstMask = ShiftedSource.FirstLanes(2 * rest);
        var secondMask = ShiftedSource.FirstLanes(2 * rest - 16);
        for (int r = 0; r < rows; r++, dst += 4 * width)
        {
            long at = (long)r * width;
            for (int j = 0; j < whole; j += 16)
            {
                var e = even == null ? Vector512<float>.Zero : Vector512.Load(even + at + j);
                var o = odd == null ? Vector512<float>.Zero : Vector512.Load(odd + at + j);
                Avx512F.PermuteVar16x32x2(e, low, o).Store(dst + 2 * j);
                Avx512F.PermuteVar16x32x2(e, high, o).Store(dst + 2 * j + 16);
            }
            if (rest == 0) continue;
            var lastEven = even == null ? Vector512<float>.Zero
                : Avx512F.MaskLoad(even + at + whole, restMask, Vector512<float>.Zero);
            var lastOdd = odd == null ? Vector512<float>.Zero
                : Avx512F.MaskLoad(odd + at + whole, restMask, Vector512<float>.Zero);
            // Whole vectors stored plainly: a masked store of all 16 lanes cost 12 % of the option-A shortcut's
            // backward on rows of 8 (16×16 → 8×8).
            var first = Avx512F.PermuteVar16x32x2(lastEven, low, lastOdd);
            if (rest >= 8) first.Store(dst + 2 * whole);
            else Avx512F.MaskStore(dst + 2 * whole, firstMask, first);
            if (rest > 8)
                Avx512F.MaskStore(dst + 2 * whole + 16, secondMask, Avx512F.PermuteVar16x32x2(lastEven, high, lastOdd));
        }
    }

    /// <summary>How many tiles ahead the residual is prefetched.</summary>
    private const int ResidualAhead = 2;

    /// <summary>out[i, k, p] = Σ_d weight[k][d] · buffer_i[Offsets[d] + (p / W)·pitch + p % W] (+ bias[k], + residual
    /// at out's offset, then ReLU) for images i &lt; images, pixels p &lt; positions and the channels of blocks
    /// [firstBlock, endBlock), a tile of ChannelBlock channels × TileVectors pixel vectors at a time (with AVX-512, for
    /// a part whose one block holds at most 4 channels, narrow tiles of 4 × NarrowTileVectors, of 3 channels 3 ×
    /// ThreeChannelTileVectors; the vectors of a tile may lie in consecutive images), W = <paramref name="rowWidth"/>
    /// and pitch = <paramref name="rowPitch"/>: equal (p itself), or the buffer's padded rows
    /// (ShiftedSource.PaddedRows, whose output rows are whole vectors). Out's channels are <paramref name="plane"/>
    /// floats apart, its images outChannels·plane.</summary>
    private static void Tiles(float* buffer, long imageFloats, int rowWidth, int rowPitch, int images, int positions,
        long plane, float* packedWeight, int* offsets, int depth, int outChannels, int firstBlock, int endBlock,
        float* output, float* bias, float* residual, bool relu)
    {
        int lanes = DirectKernels.Lanes, block = DirectKernels.ChannelBlock, staged = DirectKernels.TileVectors;
        // A part of one block of a few channels takes narrow tiles (Forward4x6; of 3 channels, Forward3x8).
        bool narrow = Avx512F.IsSupported && endBlock - firstBlock == 1 &&
            outChannels - firstBlock * block <= DirectKernels.NarrowChannels;
        bool three = narrow && outChannels - firstBlock * block == 3;
        int tileVectors = three ? DirectKernels.ThreeChannelTileVectors
            : narrow ? DirectKernels.NarrowTileVectors : staged;
        int vectors = (positions + lanes - 1) / lanes, few = positions - (vectors - 1) * lanes;
        // A map whose last tile would be one vector of a few pixels (a 7x7 map's 49th, a 14x14 map's last 4) has
        // those pixels of every image computed after the tiles, a pixel at a time with the channels in the lanes
        // (FewPixels), where the 16-lane kernel would spend a whole vector pass per block on them.
        bool fewLast = FewPixelsLast(vectors, few, tileVectors);
        int fullVectors = fewLast ? vectors - 1 : vectors, slots = images * fullVectors;
        float* tile = stackalloc float[DirectKernels.MaxTileFloats + 16];
        tile = (float*)(((nint)tile + 63) & ~(nint)63);
        float** bases = stackalloc float*[DirectKernels.ThreeChannelTileVectors];
        int* image = stackalloc int[DirectKernels.ThreeChannelTileVectors];
        int* pixel = stackalloc int[DirectKernels.ThreeChannelTileVectors];
        // Slot t0's image, pixel vector and (row, column) in the buffer, stepped without divisions.
        int slotImage = 0, slotVector = 0, slotRow = 0, slotColumn = 0;
        long blockBytes = (long)block * plane * sizeof(float);
        // The residual is read as the tiles are stored: its lines for the tile two ahead are prefetched (16
        // channel planes read 96 bytes at a time are more streams than the hardware prefetchers follow), a block's
        // channels before that block's products: all of a tile's channels at once (768 lines at 256 channels) had
        // ResNet-50 batch-8 inference 1.5–3.5 % slower (medians of 8–10 alternated steps: 130.8 → 129.4, 128.7 →
        // 124.1, 133.7 → 131.0 ms). Prefetching the output's lines as well measured level; in the plain stores
        // (WholeTiles) 3–5 % slower.
        int aheadImage = ResidualAhead * tileVectors / vectors, aheadVector = ResidualAhead * tileVectors % vectors;
        // Without a residual, on maps of whole vectors and in full channel blocks (or a narrow part's one block),
        // every tile but a last one of fewer vectors runs in WholeTiles; the rest below.
        int done = 0;
        if (residual == null && positions % lanes == 0 && (narrow || endBlock * block <= outChannels))
        {
            done = WholeTiles(buffer, imageFloats, rowWidth, rowPitch, slots, fullVectors, tileVectors,
                narrow ? outChannels - firstBlock * block : 0, plane, packedWeight, offsets, depth, outChannels,
                firstBlock, endBlock, output, bias, relu);
            slotImage = done / fullVectors;
            slotVector = done % fullVectors;
            slotRow = slotVector * lanes / rowWidth;
            slotColumn = slotVector * lanes % rowWidth;
        }
        for (int t0 = done; t0 < slots; t0 += tileVectors)
        {
            float* ahead = null;
            if (residual != null && aheadImage < images)
            {
                ahead = residual + (long)aheadImage * outChannels * plane + aheadVector * lanes;
                for (aheadVector += tileVectors; aheadVector >= vectors; aheadVector -= vectors) aheadImage++;
            }
            int count = Math.Min(tileVectors, slots - t0);
            for (int j = 0; j < tileVectors; j++)
            {
                // Slots past the last repeat it: AVX2's kernel computes them (never stored), AVX-512 runs a
                // kernel of fewer vectors (a 7x7 map's 4 vectors take 4 vector passes instead of 6).
                if (j < count)
                {
                    image[j] = slotImage;
                    pixel[j] = slotVector * lanes;
                    bases[j] = buffer + slotImage * imageFloats + (long)slotRow * rowPitch + slotColumn;
                    if (++slotVector == fullVectors)
                        (slotImage, slotVector, slotRow, slotColumn) = (slotImage + 1, 0, 0, 0);
                    else for (slotColumn += lanes; slotColumn >= rowWidth; slotColumn -= rowWidth) slotRow++;
                    continue;
                }
                image[j] = image[j - 1];
                pixel[j] = pixel[j - 1];
                bases[j] = bases[j - 1];
            }
            // A whole tile (every vector inside the map, every channel of the block) is stored by the kernel,
            // with the epilogue, straight from its accumulators; the rest go through the staging tile. The
            // store's outputs and bias move on a block at a time.
            bool whole = count == tileVectors;
            for (int j = 0; j < count; j++) whole &= pixel[j] + lanes <= positions;
            var store = new DirectStore
            {
                Bias = bias == null ? null : bias + firstBlock * block, Relu = relu, ChannelStride = plane,
                Residual = residual != null, ResidualOffset = residual == null ? 0 : residual - output,
            };
            for (int j = 0; j < tileVectors; j++)
                store.Outputs[j] = (long)(output + ((long)image[j] * outChannels + firstBlock * block) * plane +
                    pixel[j]);
            for (int kb = firstBlock; kb < endBlock; kb++)
            {
                int kEnd = Math.Min(block, outChannels - kb * block);
                if (ahead != null)
                    for (int k = kb * block; k < kb * block + kEnd; k++)
                        for (int f = 0; f < tileVectors * lanes; f += 16) Sse.Prefetch0(ahead + k * plane + f);
                if (whole && (narrow || kEnd == block))
                {
                    WholeBlock(packedWeight + (long)kb * depth * block, offsets, depth, bases, tileVectors,
                        narrow ? kEnd : 0, blockBytes, &store);
                    continue;
                }
                // The rest through the staging tile, up to TileVectors vectors a kernel call.
                for (int j0 = 0; j0 < count; j0 += staged)
                {
                    int chunk = Math.Min(staged, count - j0);
                    DirectKernels.Forward(packedWeight + (long)kb * depth * block, offsets, depth, bases + j0, chunk,
                        tile, null);
                    for (int j = j0; j < j0 + chunk; j++)
                    {
                        int width = Math.Min(lanes, positions - pixel[j]);
                        for (int i = 0; i < kEnd; i++)
                        {
                            int k = kb * block + i;
                            float* dst = output + ((long)image[j] * outChannels + k) * plane + pixel[j];
                            GemmOutput.EpilogueRow(tile + (i * staged + j - j0) * lanes, dst,
                                bias == null ? 0f : bias[k], residual == null ? null : residual + (dst - output),
                                relu, width);
                        }
                    }
                }
            }
        }
        if (!fewLast) return;
        // The last vector's pixels, at (row, column) of the buffer's rows.
        int last = (vectors - 1) * lanes;
        long at = (long)(last / rowWidth) * rowPitch + last % rowWidth;
        FewPixels(buffer + at, imageFloats, images, few, packedWeight, offsets, depth, outChannels, firstBlock,
            endBlock, output + last, plane, tile, bias, residual == null ? null : residual + last, relu);
    }

    /// <summary>Tiles' whole tiles, <paramref name="tileVectors"/> vectors of every channel of blocks [firstBlock,
    /// endBlock), over the first slots of the images (as many as make whole tiles; their count returned), where the
    /// map is whole vectors, the blocks full (or, <paramref name="narrowChannels"/> > 0, a part's one block of that
    /// many channels, in narrow tiles) and there is no residual: each stored by the kernel, with bias and ReLU. The
    /// same tiles, sums and stores as Tiles' loop, with its bookkeeping in a few registers (that loop spills most of
    /// its locals to the stack). ResNet-20's 27-term 3×32×32 → 16 forward at batch 128, one thread: 516 µs in all, 97
    /// with the kernels emptied (44 of them the buffers' builds), here 75; in one process, alternated, with both
    /// threads 293–305 → 264–272 µs; its 3-channel data gradient (narrow tiles) 385–388 → 374–377. Layers of 64 terms
    /// or more level.</summary>
    private static int WholeTiles(float* buffer, long imageFloats, int rowWidth, int rowPitch, int slots,
        int fullVectors, int tileVectors, int narrowChannels, long plane, float* packedWeight, int* offsets, int depth,
        int outChannels, int firstBlock, int endBlock, float* output, float* bias, bool relu)
    {
        int lanes = DirectKernels.Lanes, block = DirectKernels.ChannelBlock;
        float** bases = stackalloc float*[DirectKernels.ThreeChannelTileVectors];
        long blockBytes = block * plane * sizeof(float), weightFloats = (long)depth * block;
        var store = new DirectStore { Relu = relu, ChannelStride = plane };
        float* firstBias = bias == null ? null : bias + firstBlock * block;
        float* firstOutput = output + (long)firstBlock * block * plane;
        long imageOutputFloats = outChannels * plane;
        int slotVector = 0, slotRow = 0, slotColumn = 0;
        float* imageBuffer = buffer, imageOutput = firstOutput;
        int done = slots - slots % tileVectors;
        for (int t0 = 0; t0 < done; t0 += tileVectors)
        {
            for (int j = 0; j < tileVectors; j++)
            {
                bases[j] = imageBuffer + (long)slotRow * rowPitch + slotColumn;
                store.Outputs[j] = (long)(imageOutput + slotVector * lanes);
                if (++slotVector == fullVectors)
                {
                    (slotVector, slotRow, slotColumn) = (0, 0, 0);
                    imageBuffer += imageFloats;
                    imageOutput += imageOutputFloats;
                }
                else for (slotColumn += lanes; slotColumn >= rowWidth; slotColumn -= rowWidth) slotRow++;
            }
            store.Bias = firstBias;
            float* weights = packedWeight + firstBlock * weightFloats;
            for (int kb = firstBlock; kb < endBlock; kb++, weights += weightFloats)
                WholeBlock(weights, offsets, depth, bases, tileVectors, narrowChannels, blockBytes, &store);
        }
        return done;
    }

    /// <summary>One channel block of a whole tile, stored by the kernel through <paramref name="store"/>: a narrow
    /// block of <paramref name="narrowChannels"/> (3: Forward3x8, up to 4: Forward4x6), or (0) a full block of
    /// ChannelBlock channels, after which the store's outputs and bias move on a block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WholeBlock(float* weights, int* offsets, int depth, float** bases, int tileVectors,
        int narrowChannels, long blockBytes, DirectStore* store)
    {
        if (narrowChannels == 3) DirectKernels.Forward3x8(weights, offsets, depth, bases, store);
        else if (narrowChannels > 0) DirectKernels.Forward4x6(weights, offsets, depth, bases, store, narrowChannels);
        else
        {
            DirectKernels.Forward(weights, offsets, depth, bases, tileVectors, null, store);
            for (int j = 0; j < tileVectors; j++) store->Outputs[j] += blockBytes;
            if (store->Bias != null) store->Bias += DirectKernels.ChannelBlock;
        }
    }

    /// <summary>Whether a map of <paramref name="vectors"/> pixel vectors, the last of <paramref name="few"/>
    /// pixels, leaves its last vector to FewPixels (AVX-512): it would make a tile of its own, and holds few
    /// pixels.</summary>
    internal static bool FewPixelsLast(int vectors, int few, int tileVectors) =>
        Avx512F.IsSupported && vectors % tileVectors == 1 && few <= DirectKernels.PixelTileLimit;

    /// <summary>Tiles' outputs for the <paramref name="few"/> pixels of each of <paramref name="images"/> images
    /// from <paramref name="source"/> (image i's imageFloats·i on, in a row): out[i][k][q] for q &lt; few and the
    /// channels of blocks [firstBlock, endBlock), with the epilogue, the same bits as the 16-lane kernels. Up to
    /// 4 pixels (of any images) share a pass over 4 blocks' weights (DirectKernels.ForwardPixels): with a pass
    /// per pixel, the last pixel of 1024×14×14 → 2048 1x1/2's 7x7 data gradient streamed its 8 MB of weights once
    /// an image, a ninth of the pass's time at batch 8. A lone pixel (batch 1 on a 7x7 map) takes 8 blocks a pass
    /// (DirectKernels.ForwardPixel): through ForwardPixels, 512×7×7 → 2048's forward went 309 → 319 µs.</summary>
    private static void FewPixels(float* source, long imageFloats, int images, int few, float* packedWeight,
        int* offsets, int depth, int outChannels, int firstBlock, int endBlock, float* output, long plane,
        float* sums, float* bias, float* residual, bool relu)
    {
        int block = DirectKernels.ChannelBlock, pixels = images * few;
        int blocksAPass = pixels == 1 ? 8 : DirectKernels.PixelBlocks;
        var sources = stackalloc float*[DirectKernels.PixelsAPass];
        var outputs = stackalloc long[DirectKernels.PixelsAPass];
        for (int kb = firstBlock; kb < endBlock; kb += blocksAPass)
        {
            int blocks = Math.Min(blocksAPass, endBlock - kb);
            int channels = Math.Min(blocks * block, outChannels - kb * block);
            float* weights = packedWeight + (long)kb * depth * block;
            for (int p0 = 0; p0 < pixels; p0 += DirectKernels.PixelsAPass)
            {
                int count = Math.Min(DirectKernels.PixelsAPass, pixels - p0);
                for (int j = 0; j < DirectKernels.PixelsAPass; j++)
                {
                    int p = p0 + Math.Min(j, count - 1), image = p / few, q = p % few;
                    sources[j] = source + image * imageFloats + q;
                    outputs[j] = (long)image * outChannels * plane + q;
                }
                if (pixels == 1)
                    DirectKernels.ForwardPixel(weights, (long)depth * block, blocks, offsets, depth, sources[0], sums);
                else
                    DirectKernels.ForwardPixels(weights, (long)depth * block, blocks, offsets, depth, sources, sums);
                for (int j = 0; j < count; j++)
                for (int i = 0; i < channels; i++)
                {
                    long at = outputs[j] + (long)(kb * block + i) * plane;
                    GemmOutput.EpilogueRow(sums + j * DirectKernels.PixelBlocks * block + i, output + at,
                        bias == null ? 0f : bias[kb * block + i], residual == null ? null : residual + at, relu, 1);
                }
            }
        }
    }
}

/// <summary>Partial weight gradients: partition p sums images [p·N/P, (p+1)·N/P), in groups of GroupImages, into its
/// partial, WeightChannels channels × 6 terms at a time, laid out by those steps (DirectWeightJob.Step): the
/// 6 terms from d0 of channel k, Σ dy[n, k, pixel] · buffer_n[Offsets[d] + pixel], at Step(d0, k). Consecutive steps
/// over the channels are consecutive in memory, so each step's kernel adds its sums to the floats after the last
/// step's; a step past the last channel or term sums padding that the reduction skips. Task t serves partition
/// t / CallParts, its share t % CallParts of the kernel calls (more than one share where the images are too few to
/// keep every thread busy: batch 1), building only the channels of x those calls read.</summary>
internal unsafe struct DirectWeightJob : IParallelJob
{
    public ShiftedSource Source;
    public int* Offsets;
    public int PaddedDepth, PaddedChannels, OutChannels, Positions, Batch, Partitions, CallParts, GroupImages;
    public float* OutputGradient, Partials;
    public CpuBackend Backend;

    /// <summary>dw (OutChannels × Depth), where one partition sums every image (batch 1): each task then copies its
    /// calls' sums there once they are whole (CopyOut), from its own cache, and no reduction pass follows. In one
    /// process, batch 1: 64×56×56 → 128 1x1/2 53.2 → 51.9 µs, 64×56×56 → 64 83.3 → 82.2, 256×56×56 → 512 1x1/2
    /// 670 → 662 (the reduction pass, a second parallel run, read each task's sums from the other core). Null:
    /// PartialSumJob adds the partitions' partials.</summary>
    public float* Output;
    public int Depth;

    /// <summary>Where the 6 terms from d0 (a multiple of 6) of channel k start in a partial.</summary>
    public static long Step(int d0, int k, int paddedChannels) => (long)d0 * paddedChannels + 6L * k;

    /// <summary>Pixels a kernel call sums over, about: images are grouped up to it, and a larger map is cut into
    /// chunks of at most it. Over a whole 56x56 map each step streamed dy's rows from L3 (ResNet-50's pointwise
    /// layers at 200–250 GFLOP/s, the 7x7/2 stem 220–240); 512 was slower on 32x32 maps.</summary>
    public const int PixelRun = 1024;

    /// <summary>Pixels a kernel call sums over at most where the images' built buffers are small (SmallRunBytes
    /// together): fewer calls, each reducing its sums once, over more images.</summary>
    public const int LongPixelRun = 8192;

    /// <summary>Bytes of the built buffers of one call's images up to which it takes LongPixelRun pixels. In one
    /// process, ResNet-20's 3×32×32 → 16 weight gradient (14 KB an image) at batch 128, a call over 1, 4 and 8
    /// images: 469 → 430 → 419 µs; at batch 64 (4 images a partition) 227 → 209; AVX2 at batch 128, 1 and 4
    /// images: 765 → 743. With 16×32×32 → 32 3x3/2's buffers (104 KB an image), 8 images a call in place of 4 took
    /// 1301 → 1709 µs.</summary>
    public const long SmallRunBytes = 128 << 10;

    /// <summary>Images a kernel call sums over: as many as PixelRun pixels hold, or LongPixelRun where their built
    /// buffers (<paramref name="imageBytes"/> each; 0 read in place) stay within SmallRunBytes; at least 1, at most
    /// <paramref name="most"/>.</summary>
    public static int ImagesPerCall(int positions, long imageBytes, int most)
    {
        int images = Math.Max(1, PixelRun / positions);
        while (imageBytes > 0 && 2L * images * imageBytes <= SmallRunBytes && 2L * images * positions <= LongPixelRun)
            images *= 2;
        return Math.Min(images, Math.Max(1, most));
    }

    /// <summary>Output channels whose rows of dy a pass through the steps reads (a multiple of WeightChannels): at
    /// most 512 KB of a chunk, which stay in L2 from step to step. With every channel in one pass a 512-channel
    /// layer's rows (1.6 MB an image at 28x28) streamed from L3 at every step: batch 8, in one process,
    /// 256×56×56 → 512 1x1/2 6.08 → 5.47 ms, 128×28×28 → 512 2.72 → 2.55, 64×56×56 → 256 2.79 → 2.67; batch 1
    /// 256×56×56 → 512 1x1/2 0.71 → 0.66; layers of 128 channels or fewer unchanged, 64 no faster.</summary>
    public const int ChannelRun = 128;

    /// <summary>Floats of one partial.</summary>
    public static long PartialFloats(int paddedDepth, int paddedChannels) => (long)paddedDepth * paddedChannels;

    public void Execute(int task, int worker)
    {
        int partition = task / CallParts, part = task % CallParts, channels = DirectKernels.WeightChannels;
        int n0 = (int)((long)partition * Batch / Partitions), n1 = (int)((long)(partition + 1) * Batch / Partitions);
        // The part's kernel calls: an even share of the (step, block of channels) pairs, steps outer, so that parts
        // are even where the steps do not share out evenly (a batch-1 64×56×56 → 128 1x1/2 layer's 11 steps took 5
        // and 6 on the two threads; in even shares, one a thread, 52.6 → 47.7 µs). A step shared by two parts has
        // its planes built by both.
        int blocks = PaddedChannels / channels, calls = PaddedDepth / 6 * blocks;
        int call0 = (int)((long)part * calls / CallParts), call1 = (int)((long)(part + 1) * calls / CallParts);
        int first = 6 * (call0 / blocks), end = 6 * ((call1 - 1) / blocks + 1);
        float* partial = Partials + partition * PartialFloats(PaddedDepth, PaddedChannels);
        new Span<float>(partial + (long)call0 * 6 * channels, checked((call1 - call0) * 6 * channels)).Clear();
        // The channels of x whose terms the steps read (padding terms read the last term's plane).
        int kernelArea = Source.KernelHeight * Source.KernelWidth, depth = Source.Channels * kernelArea;
        int firstChannel = Math.Min(first, depth - 1) / kernelArea;
        int endChannel = (Math.Min(end, depth) - 1) / kernelArea + 1;
        // A pointwise layer's x is read in place (ShiftedSource.IsIdentity; its positions are whole vectors).
        bool inPlace = Source.IsIdentity;
        long imageFloats = inPlace ? (long)Source.Channels * Positions : Source.ImageFloats;
        float* buffer = inPlace ? null : Backend.DirectSourceScratch(worker, GroupImages * imageFloats);
        long positions = Positions;
        // x's pixels come in rows: the padded buffer's output rows (RowPitch floats apart), or one row of every
        // position. A map of more than PixelRun pixels is cut into even chunks of whole rows, or of whole vectors
        // of the one row.
        int unit = Source.PaddedRows ? Source.OutWidth : DirectKernels.Lanes, units = Positions / unit;
        long unitFloats = Source.PaddedRows ? Source.RowPitch : DirectKernels.Lanes;
        int chunks = (Positions + PixelRun - 1) / PixelRun, chunkUnits = (units + chunks - 1) / chunks;
        for (int g0 = n0; g0 < n1; g0 += GroupImages)
        {
            int images = Math.Min(GroupImages, n1 - g0);
            if (inPlace) buffer = Source.Source + g0 * imageFloats;
            else
                for (int i = 0; i < images; i++)
                    Source.Build(buffer + i * imageFloats, g0 + i, firstChannel, endChannel);
            // A chunk at a time through every step, depth terms outer within a run of ChannelRun channels: a step's
            // 6 planes of the chunk's x stay in L1 while the run's rows of dy stream past them from L2 (with
            // channels outer, the whole buffer of x streamed from L2 or beyond once per channel pair).
            float* dy = OutputGradient + (long)g0 * OutChannels * positions;
            for (int u0 = 0; u0 < units; u0 += chunkUnits)
            {
                int pixels = (Math.Min(units, u0 + chunkUnits) - u0) * unit;
                float* dyChunk = dy + (long)u0 * unit, xChunk = buffer + u0 * unitFloats;
                for (int run = 0; run < OutChannels; run += ChannelRun)
                for (int d0 = first; d0 < end; d0 += 6)
                for (int k0 = Math.Max(run, d0 == first ? call0 % blocks * channels : 0),
                     k1 = Math.Min(run + ChannelRun,
                         d0 + 6 == end ? Math.Min(OutChannels, ((call1 - 1) % blocks + 1) * channels) : OutChannels);
                     k0 < k1; k0 += channels)
                {
                    int kCount = Math.Min(channels, OutChannels - k0);
                    long o1 = Math.Min(1, kCount - 1) * positions, o2 = Math.Min(2, kCount - 1) * positions,
                        o3 = Math.Min(3, kCount - 1) * positions;
                    DirectKernels.Weight(dyChunk + k0 * positions, o1, o2, o3, OutChannels * positions, images,
                        xChunk, imageFloats, Offsets + d0, pixels, Source.PaddedRows ? unit : pixels,
                        Source.RowPitch - Source.OutWidth, partial + Step(d0, k0, PaddedChannels), depth - d0);
                }
            }
        }
        if (Output != null) CopyOut(partial, call0, call1, blocks);
    }

    /// <summary>dw[k][d0 + j] = the partial's sums of calls [call0, call1): each call's WeightChannels channels × 6
    /// terms from d0, those inside dw (the steps' padding terms and channels skipped).</summary>
    private readonly void CopyOut(float* partial, int call0, int call1, int blocks)
    {
        int channels = DirectKernels.WeightChannels;
        for (int call = call0; call < call1; call++)
        {
            int d0 = 6 * (call / blocks), k0 = call % blocks * channels, terms = Math.Min(6, Depth - d0);
            float* sums = partial + Step(d0, k0, PaddedChannels), row = Output + (long)k0 * Depth + d0;
            for (int i = 0, count = Math.Min(channels, OutChannels - k0); i < count; i++, sums += 6, row += Depth)
                StoreStep(row, Vector128.Load(sums), sums[4], sums[5], terms);
        }
    }

    /// <summary>row[j] = a step's term j for j &lt; <paramref name="terms"/>: <paramref name="head"/>'s 4, then t4
    /// and t5 (a row's last step may hold fewer than 6; nothing past them is written).</summary>
    public static void StoreStep(float* row, Vector128<float> head, float t4, float t5, int terms)
    {
        if (terms == 6)
        {
            head.Store(row);
            row[4] = t4;
            row[5] = t5;
            return;
        }
        for (int j = 0; j < Math.Min(4, terms); j++) row[j] = head.GetElement(j);
        if (terms == 5) row[4] = t4;
    }
}

/// <summary>dw[k][d] = Σ over partitions p, in order, of partial p's term d of channel k (DirectWeightJob.Step),
/// where there are two partitions or more (one: DirectWeightJob.CopyOut); task t: the rows of dw of channels
/// [ChannelsPerTask·t, ChannelsPerTask·(t + 1)), each written in order (tasks by depth steps, each writing 6 floats
/// of every row, shared cache lines between the threads: the sum took a third as long as the gradient of a batch-1
/// 128×28×28 → 512 layer).</summary>
internal unsafe struct PartialSumJob : IParallelJob
{
    public const int ChannelsPerTask = 16;

    public float* Partials, Output;
    public int Partitions, Depth, OutChannels, PaddedChannels;
    public long PartitionLength;

    public readonly void Execute(int task, int worker)
    {
        for (int k = task * ChannelsPerTask, k1 = Math.Min(OutChannels, k + ChannelsPerTask); k < k1; k++)
        {
            float* dst = Output + (long)k * Depth;
            for (int d0 = 0; d0 < Depth; d0 += 6)
            {
                // A step's 6 floats are summed as a vector of 4 and two scalars (the next step's floats are not
                // read: the last step of the last partial ends the buffer).
                float* src = Partials + DirectWeightJob.Step(d0, k, PaddedChannels);
                var head = Vector128.Load(src);
                float tail0 = src[4], tail1 = src[5];
                for (int p = 1; p < Partitions; p++)
                {
                    float* other = src + p * PartitionLength;
                    head += Vector128.Load(other);
                    tail0 += other[4];
                    tail1 += other[5];
                }
                DirectWeightJob.StoreStep(dst + d0, head, tail0, tail1, Math.Min(6, Depth - d0));
            }
        }
    }
}

/// <summary>Where a forward micro-kernel stores its tile itself, with the epilogue: output vector j of channel i at
/// Outputs[j] + i·ChannelStride, plus Bias[i] (0 without a bias), plus the residual ResidualOffset floats on when
/// Residual, then ReLU when asked (the same operations, in the same order, as GemmOutput.EpilogueRow).</summary>
internal unsafe struct DirectStore
{
    public fixed long Outputs[DirectKernels.ThreeChannelTileVectors];
    public float* Bias;
    public long ChannelStride, ResidualOffset;
    public bool Residual, Relu;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Put(Vector256<float> sums, int channel, int vector, Vector256<float> floor)
    {
        float* dst = (float*)Outputs[vector] + channel * ChannelStride;
        GemmOutput.Epilogue(sums, Vector256.Create(Bias == null ? 0f : Bias[channel]),
            Residual ? dst + ResidualOffset : null, floor).Store(dst);
    }

    /// <summary>Whether the tile is stored as summed, with no bias, residual or ReLU (every training pass: the
    /// forwards before batch-norm, the data gradients): straight from the accumulators, without Put's epilogue, which
    /// took a tenth of a 27-term forward (in one process, ResNet-20's 3×32×32 → 16 at batch 128 500 → 453 µs,
    /// 16×32×32 → 32 3x3/2 1261 → 1211, batch-1 64×56×56 → 128 1x1/2 49.6 → 46.1; its data gradient, 3 channels
    /// a tile, 621 → 603). The sums are the same bits: Put adds a zero bias and takes the maximum with −∞.</summary>
    public readonly bool Plain => Bias == null && !Residual && !Relu;

    /// <summary>Channels 0, 1, 2 … of one output vector, <paramref name="stride"/> floats apart from
    /// <paramref name="o"/> (a plain tile's store).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Column(float* o, long stride, Vector512<float> a, Vector512<float> b, Vector512<float> c)
    {
        a.Store(o);
        b.Store(o + stride);
        c.Store(o + 2 * stride);
    }

    /// <inheritdoc cref="Column(float*, long, Vector512{float}, Vector512{float}, Vector512{float})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Column(float* o, long stride, Vector512<float> a, Vector512<float> b, Vector512<float> c,
        Vector512<float> d, Vector512<float> e, Vector512<float> f, Vector512<float> g, Vector512<float> h)
    {
        Column(o, stride, a, b, c);
        Column(o + 3 * stride, stride, d, e, f);
        g.Store(o + 6 * stride);
        h.Store(o + 7 * stride);
    }

    /// <inheritdoc cref="Column(float*, long, Vector512{float}, Vector512{float}, Vector512{float})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Column(float* o, long stride, Vector256<float> a, Vector256<float> b, Vector256<float> c,
        Vector256<float> d)
    {
        a.Store(o);
        b.Store(o + stride);
        c.Store(o + 2 * stride);
        d.Store(o + 3 * stride);
    }

    /// <inheritdoc cref="Put(Vector256{float}, int, int, Vector256{float})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Put(Vector512<float> sums, int channel, int vector, Vector512<float> floor)
    {
        float* dst = (float*)Outputs[vector] + channel * ChannelStride;
        GemmOutput.Epilogue(sums, Vector512.Create(Bias == null ? 0f : Bias[channel]),
            Residual ? dst + ResidualOffset : null, floor).Store(dst);
    }
}

/// <summary>The depth terms a weight-gradient step sums (DirectKernels.Weight4x6, specialised per type): all 6, or the
/// first 3 of a depth's last step.</summary>
internal interface IStepTerms
{
    static abstract bool Six { get; }
}

internal struct SixTerms : IStepTerms
{
    public static bool Six => true;
}

internal struct ThreeTerms : IStepTerms
{
    public static bool Six => false;
}

/// <summary>The micro-kernels of the direct convolutions: 8 channels × 3 vectors of 16 (forward; 4 × 6 for blocks of a
/// few channels, 3 × 8 for blocks of 3) and 4 channels × 6 terms (weight gradient) with AVX-512; 4 channels × 3 vectors
/// of 8 and 2 channels × 6 terms with AVX2+FMA (12 of the 16 ymm registers accumulate).</summary>
internal static unsafe class DirectKernels
{
    public static bool IsSupported => Avx512F.IsSupported || (Avx2.IsSupported && Fma.IsSupported);

    /// <summary>Floats per vector: a pixel vector of the forward tile, a step of the weight gradient's sums.</summary>
    public static int Lanes => Avx512F.IsSupported ? 16 : 8;

    /// <summary>Output channels of a forward tile (the packed weights are blocks of this many).</summary>
    public static int ChannelBlock => Avx512F.IsSupported ? 8 : 4;

    /// <summary>Pixel vectors of a forward tile.</summary>
    public const int TileVectors = 3;

    /// <summary>Pixel vectors of a narrow forward tile (Forward4x6, AVX-512): 4 channels.</summary>
    public const int NarrowTileVectors = 6;

    /// <summary>Most channels of a narrow tile.</summary>
    public const int NarrowChannels = 4;

    /// <summary>Pixel vectors of a narrow tile of 3 channels (Forward3x8, AVX-512).</summary>
    public const int ThreeChannelTileVectors = 8;

    /// <summary>Output channels of a weight-gradient step (each with 6 depth terms).</summary>
    public static int WeightChannels => Avx512F.IsSupported ? 4 : 2;

    public const int MaxTileFloats = 8 * TileVectors * 16;

    /// <summary>tile[(i·TileVectors + j)·Lanes + l] = Σ_d w[d·ChannelBlock + i] · bases[j][offsets[d] + l] for
    /// j &lt; <paramref name="vectors"/> (AVX2: for every j); or, when <paramref name="tile"/> is null (a whole
    /// tile of TileVectors vectors), those sums stored through <paramref name="store"/>.</summary>
    public static void Forward(float* w, int* offsets, int depth, float** bases, int vectors, float* tile,
        DirectStore* store)
    {
        if (!Avx512F.IsSupported) Forward4x3(w, offsets, depth, bases[0], bases[1], bases[2], tile, store);
        else if (vectors == 3) Forward8x3(w, offsets, depth, bases[0], bases[1], bases[2], tile, store);
        else if (vectors == 2) Forward8x2(w, offsets, depth, bases[0], bases[1], tile);
        else Forward8x1(w, offsets, depth, bases[0], tile);
    }

    /// <summary>sums[i·6 + j] += Σ over images, output rows and pixel vectors of dy_i · x at offsets[j], for the
    /// WeightChannels rows dy_i (row i at distance o_i from row 0); positions % Lanes = 0. x's pixels come in rows
    /// of <paramref name="rowFloats"/> (a multiple of Lanes), each followed by <paramref name="rowSkip"/> floats
    /// that no output pixel reads (a padded buffer row's pad; none when a row is all the positions). A step of
    /// <paramref name="terms"/> ≤ 3 real terms (a depth's last where C·R·S mod 6 is 1, 2 or 3) sums those alone, half
    /// the work, the padding terms' sums left as they are (the reduction skips them): ResNet-20's 27-term 3×32×32 → 16
    /// weight gradient at batch 128, in one process, alternated, 276–286 → 263–267 µs (AVX2: 490–503 → 456–476); the
    /// 147-term 7x7/2 stem's at batch 8 2 % faster.</summary>
    public static void Weight(float* dy, long o1, long o2, long o3, long dyImageStride, int images, float* x,
        long xImageStride, int* offsets, int positions, int rowFloats, int rowSkip, float* sums, int terms)
    {
        if (Avx512F.IsSupported && terms <= 3)
            Weight4x6<ThreeTerms>(dy, o1, o2, o3, dyImageStride, images, x, xImageStride, offsets, positions,
                rowFloats, rowSkip, sums);
        else if (Avx512F.IsSupported)
            Weight4x6<SixTerms>(dy, o1, o2, o3, dyImageStride, images, x, xImageStride, offsets, positions,
                rowFloats, rowSkip, sums);
        else if (terms <= 3)
            Weight2x6<ThreeTerms>(dy, o1, dyImageStride, images, x, xImageStride, offsets, positions, rowFloats,
                rowSkip, sums);
        else
            Weight2x6<SixTerms>(dy, o1, dyImageStride, images, x, xImageStride, offsets, positions, rowFloats,
                rowSkip, sums);
    }

    /// <summary>How far ahead of its term Forward8x3 prefetches the packed weights: 80 terms, about 1,000 cycles.
    /// At batch 1 a block's weights come from memory once per inference (ResNet-50: 104 MB), a stream the hardware
    /// prefetchers follow too late at page ends; 80 terms ahead gave 3-8 % of ResNet-50's batch-1 inference, 256
    /// floats about half that, and a training step at batch 128, whose weights stay in cache, the same time.</summary>
    private const int WeightPrefetchFloats = 640;

    /// <summary>tile[(i·3 + j)·16 + l] = Σ_d w[d·8 + i] · b_j[offsets[d] + l]; the weights prefetched
    /// WeightPrefetchFloats ahead (a prefetch never faults, past the end either).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Forward8x3(float* w, int* offsets, int depth, float* b0p, float* b1p, float* b2p, float* tile,
        DirectStore* store)
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default,
            c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default,
            c40 = default, c41 = default, c42 = default, c50 = default, c51 = default, c52 = default,
            c60 = default, c61 = default, c62 = default, c70 = default, c71 = default, c72 = default;
        for (int* term = offsets, end = offsets + depth; term < end; term++, w += 8)
        {
            long o = *term;
            Sse.Prefetch0(w + WeightPrefetchFloats);
            var b0 = Vector512.Load(b0p + o);
            var b1 = Vector512.Load(b1p + o);
            var b2 = Vector512.Load(b2p + o);
            var a = Vector512.Create(w[0]);
            c00 = Avx512F.FusedMultiplyAdd(a, b0, c00);
            c01 = Avx512F.FusedMultiplyAdd(a, b1, c01);
            c02 = Avx512F.FusedMultiplyAdd(a, b2, c02);
            a = Vector512.Create(w[1]);
            c10 = Avx512F.FusedMultiplyAdd(a, b0, c10);
            c11 = Avx512F.FusedMultiplyAdd(a, b1, c11);
            c12 = Avx512F.FusedMultiplyAdd(a, b2, c12);
            a = Vector512.Create(w[2]);
            c20 = Avx512F.FusedMultiplyAdd(a, b0, c20);
            c21 = Avx512F.FusedMultiplyAdd(a, b1, c21);
            c22 = Avx512F.FusedMultiplyAdd(a, b2, c22);
            a = Vector512.Create(w[3]);
            c30 = Avx512F.FusedMultiplyAdd(a, b0, c30);
            c31 = Avx512F.FusedMultiplyAdd(a, b1, c31);
            c32 = Avx512F.FusedMultiplyAdd(a, b2, c32);
            a = Vector512.Create(w[4]);
            c40 = Avx512F.FusedMultiplyAdd(a, b0, c40);
            c41 = Avx512F.FusedMultiplyAdd(a, b1, c41);
            c42 = Avx512F.FusedMultiplyAdd(a, b2, c42);
            a = Vector512.Create(w[5]);
            c50 = Avx512F.FusedMultiplyAdd(a, b0, c50);
            c51 = Avx512F.FusedMultiplyAdd(a, b1, c51);
            c52 = Avx512F.FusedMultiplyAdd(a, b2, c52);
            a = Vector512.Create(w[6]);
            c60 = Avx512F.FusedMultiplyAdd(a, b0, c60);
            c61 = Avx512F.FusedMultiplyAdd(a, b1, c61);
            c62 = Avx512F.FusedMultiplyAdd(a, b2, c62);
            a = Vector512.Create(w[7]);
            c70 = Avx512F.FusedMultiplyAdd(a, b0, c70);
            c71 = Avx512F.FusedMultiplyAdd(a, b1, c71);
            c72 = Avx512F.FusedMultiplyAdd(a, b2, c72);
        }
        if (tile == null && store->Plain)
        {
            long stride = store->ChannelStride;
            DirectStore.Column((float*)store->Outputs[0], stride, c00, c10, c20, c30, c40, c50, c60, c70);
            DirectStore.Column((float*)store->Outputs[1], stride, c01, c11, c21, c31, c41, c51, c61, c71);
            DirectStore.Column((float*)store->Outputs[2], stride, c02, c12, c22, c32, c42, c52, c62, c72);
            return;
        }
        if (tile == null)
        {
            var floor = Vector512.Create(store->Relu ? 0f : float.NegativeInfinity);
            store->Put(c00, 0, 0, floor); store->Put(c01, 0, 1, floor); store->Put(c02, 0, 2, floor);
            store->Put(c10, 1, 0, floor); store->Put(c11, 1, 1, floor); store->Put(c12, 1, 2, floor);
            store->Put(c20, 2, 0, floor); store->Put(c21, 2, 1, floor); store->Put(c22, 2, 2, floor);
            store->Put(c30, 3, 0, floor); store->Put(c31, 3, 1, floor); store->Put(c32, 3, 2, floor);
            store->Put(c40, 4, 0, floor); store->Put(c41, 4, 1, floor); store->Put(c42, 4, 2, floor);
            store->Put(c50, 5, 0, floor); store->Put(c51, 5, 1, floor); store->Put(c52, 5, 2, floor);
            store->Put(c60, 6, 0, floor); store->Put(c61, 6, 1, floor); store->Put(c62, 6, 2, floor);
            store->Put(c70, 7, 0, floor); store->Put(c71, 7, 1, floor); store->Put(c72, 7, 2, floor);
            return;
        }
        c00.Store(tile); c01.Store(tile + 16); c02.Store(tile + 32);
        c10.Store(tile + 48); c11.Store(tile + 64); c12.Store(tile + 80);
        c20.Store(tile + 96); c21.Store(tile + 112); c22.Store(tile + 128);
        c30.Store(tile + 144); c31.Store(tile + 160); c32.Store(tile + 176);
        c40.Store(tile + 192); c41.Store(tile + 208); c42.Store(tile + 224);
        c50.Store(tile + 240); c51.Store(tile + 256); c52.Store(tile + 272);
        c60.Store(tile + 288); c61.Store(tile + 304); c62.Store(tile + 320);
        c70.Store(tile + 336); c71.Store(tile + 352); c72.Store(tile + 368);
    }

    /// <summary>Where Singles(Pairs(Four(A0…A3), Four(A4…A7)), Pairs(Four(A8…A11), Four(A12…A15))) holds the
    /// sum of A_i: its 128-bit lane i mod 4, place i / 4.</summary>
    private static Vector512<int> FirstOrder => Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);

    /// <summary>Where Singles(v, v), v = Pairs(Four(B0…B3), Four(B4…B7)), holds the sum of B_i (i &lt; 8): lane
    /// i mod 4, place i / 4 (and again at 2 + i / 4).</summary>
    private static Vector512<int> RestOrder => Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>a's 256-bit halves added in the low half, b's in the high.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Halves(Vector512<float> a, Vector512<float> b) =>
        Avx512F.Shuffle4x128(a, b, 0x44) + Avx512F.Shuffle4x128(a, b, 0xEE);

    /// <summary>128-bit lane i: the four partial sums of the i-th of a, b, c, d (their quarters added).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Four(Vector512<float> a, Vector512<float> b, Vector512<float> c,
        Vector512<float> d)
    {
        Vector512<float> ab = Halves(a, b), cd = Halves(c, d);
        return Avx512F.Shuffle4x128(ab, cd, 0x88) + Avx512F.Shuffle4x128(ab, cd, 0xDD);
    }

    /// <summary>In each 128-bit lane: two pair sums of u's four partials, then two of v's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pairs(Vector512<float> u, Vector512<float> v) =>
        Avx512F.Shuffle(u, v, 0x44) + Avx512F.Shuffle(u, v, 0xEE);

    /// <summary>In each 128-bit lane: the totals of v's two accumulators, then of w's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Singles(Vector512<float> v, Vector512<float> w) =>
        Avx512F.Shuffle(v, w, 0x88) + Avx512F.Shuffle(v, w, 0xDD);

    /// <summary>sums[0..4) += v.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddTo(float* sums, Vector128<float> v) => (Vector128.Load(sums) + v).Store(sums);

    /// <summary>The sums of the lanes of a, b, c and d, in that order: each vector's halves added down to four
    /// lanes, then the four vectors' lanes pairwise (a few shuffles where a whole-vector sum per accumulator costs
    /// about 24 instructions, a third of a 16-vector weight-gradient step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> SumEach(Vector256<float> a, Vector256<float> b, Vector256<float> c,
        Vector256<float> d) =>
        Sse3.HorizontalAdd(Sse3.HorizontalAdd(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper()),
            Sse3.HorizontalAdd(c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper()));

    /// <summary>Forward8x3's first two vectors: tile[(i·3 + j)·16 + l] = Σ_d w[d·8 + i] · b_j[offsets[d] + l] for
    /// j &lt; 2 (a tile's last pixel vectors, summed in the same order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Forward8x2(float* w, int* offsets, int depth, float* b0p, float* b1p, float* tile)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int* term = offsets, end = offsets + depth; term < end; term++, w += 8)
        {
            long o = *term;
            var b0 = Vector512.Load(b0p + o);
            var b1 = Vector512.Load(b1p + o);
            var a = Vector512.Create(w[0]);
            c00 = Avx512F.FusedMultiplyAdd(a, b0, c00);
            c01 = Avx512F.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(w[1]);
            c10 = Avx512F.FusedMultiplyAdd(a, b0, c10);
            c11 = Avx512F.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(w[2]);
            c20 = Avx512F.FusedMultiplyAdd(a, b0, c20);
            c21 = Avx512F.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(w[3]);
            c30 = Avx512F.FusedMultiplyAdd(a, b0, c30);
            c31 = Avx512F.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(w[4]);
            c40 = Avx512F.FusedMultiplyAdd(a, b0, c40);
            c41 = Avx512F.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(w[5]);
            c50 = Avx512F.FusedMultiplyAdd(a, b0, c50);
            c51 = Avx512F.FusedMultiplyAdd(a, b1, c51);
            a = Vector512.Create(w[6]);
            c60 = Avx512F.FusedMultiplyAdd(a, b0, c60);
            c61 = Avx512F.FusedMultiplyAdd(a, b1, c61);
            a = Vector512.Create(w[7]);
            c70 = Avx512F.FusedMultiplyAdd(a, b0, c70);
            c71 = Avx512F.FusedMultiplyAdd(a, b1, c71);
        }
        c00.Store(tile); c01.Store(tile + 16); c10.Store(tile + 48); c11.Store(tile + 64);
        c20.Store(tile + 96); c21.Store(tile + 112); c30.Store(tile + 144); c31.Store(tile + 160);
        c40.Store(tile + 192); c41.Store(tile + 208); c50.Store(tile + 240); c51.Store(tile + 256);
        c60.Store(tile + 288); c61.Store(tile + 304); c70.Store(tile + 336); c71.Store(tile + 352);
    }

    /// <summary>The sums of Forward8x3 for the first 4 channels of a packed block and 6 pixel vectors (bases[0 … 6)),
    /// stored through <paramref name="store"/> for its first <paramref name="channels"/> (1 to 4): where a block holds
    /// a few channels (the data gradient onto a 3-channel image, the stems'), 8x3 tiles spend 5 or more of their 8
    /// lanes of weights on the block's zero padding; these 24 sums are all outputs but one channel's at most. Each
    /// sum is the same chain of FMAs as Forward8x3's, so with the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward4x6(float* w, int* offsets, int depth, float** bases, DirectStore* store, int channels)
    {
        float* b0p = bases[0], b1p = bases[1], b2p = bases[2], b3p = bases[3], b4p = bases[4], b5p = bases[5];
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c04 = default, c05 = default,
            c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default,
            c20 = default, c21 = default, c22 = default, c23 = default, c24 = default, c25 = default,
            c30 = default, c31 = default, c32 = default, c33 = default, c34 = default, c35 = default;
        for (int* term = offsets, end = offsets + depth; term < end; term++, w += 8)
        {
            long o = *term;
            var b0 = Vector512.Load(b0p + o);
            var b1 = Vector512.Load(b1p + o);
            var b2 = Vector512.Load(b2p + o);
            var b3 = Vector512.Load(b3p + o);
            var b4 = Vector512.Load(b4p + o);
            var b5 = Vector512.Load(b5p + o);
            var a = Vector512.Create(w[0]);
            c00 = Avx512F.FusedMultiplyAdd(a, b0, c00);
            c01 = Avx512F.FusedMultiplyAdd(a, b1, c01);
            c02 = Avx512F.FusedMultiplyAdd(a, b2, c02);
            c03 = Avx512F.FusedMultiplyAdd(a, b3, c03);
            c04 = Avx512F.FusedMultiplyAdd(a, b4, c04);
            c05 = Avx512F.FusedMultiplyAdd(a, b5, c05);
            a = Vector512.Create(w[1]);
            c10 = Avx512F.FusedMultiplyAdd(a, b0, c10);
            c11 = Avx512F.FusedMultiplyAdd(a, b1, c11);
            c12 = Avx512F.FusedMultiplyAdd(a, b2, c12);
            c13 = Avx512F.FusedMultiplyAdd(a, b3, c13);
            c14 = Avx512F.FusedMultiplyAdd(a, b4, c14);
            c15 = Avx512F.FusedMultiplyAdd(a, b5, c15);
            a = Vector512.Create(w[2]);
            c20 = Avx512F.FusedMultiplyAdd(a, b0, c20);
            c21 = Avx512F.FusedMultiplyAdd(a, b1, c21);
            c22 = Avx512F.FusedMultiplyAdd(a, b2, c22);
            c23 = Avx512F.FusedMultiplyAdd(a, b3, c23);
            c24 = Avx512F.FusedMultiplyAdd(a, b4, c24);
            c25 = Avx512F.FusedMultiplyAdd(a, b5, c25);
            a = Vector512.Create(w[3]);
            c30 = Avx512F.FusedMultiplyAdd(a, b0, c30);
            c31 = Avx512F.FusedMultiplyAdd(a, b1, c31);
            c32 = Avx512F.FusedMultiplyAdd(a, b2, c32);
            c33 = Avx512F.FusedMultiplyAdd(a, b3, c33);
            c34 = Avx512F.FusedMultiplyAdd(a, b4, c34);
            c35 = Avx512F.FusedMultiplyAdd(a, b5, c35);
        }
        var floor = Vector512.Create(store->Relu ? 0f : float.NegativeInfinity);
        store->Put(c00, 0, 0, floor); store->Put(c01, 0, 1, floor); store->Put(c02, 0, 2, floor);
        store->Put(c03, 0, 3, floor); store->Put(c04, 0, 4, floor); store->Put(c05, 0, 5, floor);
        if (channels < 2) return;
        store->Put(c10, 1, 0, floor); store->Put(c11, 1, 1, floor); store->Put(c12, 1, 2, floor);
        store->Put(c13, 1, 3, floor); store->Put(c14, 1, 4, floor); store->Put(c15, 1, 5, floor);
        if (channels < 3) return;
        store->Put(c20, 2, 0, floor); store->Put(c21, 2, 1, floor); store->Put(c22, 2, 2, floor);
        store->Put(c23, 2, 3, floor); store->Put(c24, 2, 4, floor); store->Put(c25, 2, 5, floor);
        if (channels < 4) return;
        store->Put(c30, 3, 0, floor); store->Put(c31, 3, 1, floor); store->Put(c32, 3, 2, floor);
        store->Put(c33, 3, 3, floor); store->Put(c34, 3, 4, floor); store->Put(c35, 3, 5, floor);
    }

    /// <summary>The sums of Forward8x3 for the first 3 channels of a packed block and 8 pixel vectors (bases[0 … 8)),
    /// stored through <paramref name="store"/>: the data gradient onto a 3-channel image (the stems'), where
    /// Forward4x6 spent a quarter of its FMAs on the block's padding. Each pixel vector is loaded into one register
    /// and taken by the 3 channels' FMAs at once (24 accumulators, 3 weights, 1 vector: 28 of the 32 registers).
    /// Batch 1 in one process, against Forward4x6: the 7x7/2 stem's data gradient 1114 → 932 µs; CIFAR's 16 → 3
    /// 3x3 at batch 128 751 → 667. Each sum is the same chain of FMAs as Forward8x3's, so with the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Forward3x8(float* w, int* offsets, int depth, float** bases, DirectStore* store)
    {
        float* b0p = bases[0], b1p = bases[1], b2p = bases[2], b3p = bases[3], b4p = bases[4], b5p = bases[5],
            b6p = bases[6], b7p = bases[7];
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c04 = default, c05 = default,
            c06 = default, c07 = default,
            c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default,
            c16 = default, c17 = default,
            c20 = default, c21 = default, c22 = default, c23 = default, c24 = default, c25 = default,
            c26 = default, c27 = default;
        for (int* term = offsets, end = offsets + depth; term < end; term++, w += 8)
        {
            long o = *term;
            var a0 = Vector512.Create(w[0]);
            var a1 = Vector512.Create(w[1]);
            var a2 = Vector512.Create(w[2]);
            var b = Vector512.Load(b0p + o);
            c00 = Avx512F.FusedMultiplyAdd(a0, b, c00); c10 = Avx512F.FusedMultiplyAdd(a1, b, c10);
            c20 = Avx512F.FusedMultiplyAdd(a2, b, c20);
            b = Vector512.Load(b1p + o);
            c01 = Avx512F.FusedMultiplyAdd(a0, b, c01); c11 = Avx512F.FusedMultiplyAdd(a1, b, c11);
            c21 = Avx512F.FusedMultiplyAdd(a2, b, c21);
            b = Vector512.Load(b2p + o);
            c02 = Avx512F.FusedMultiplyAdd(a0, b, c02); c12 = Avx512F.FusedMultiplyAdd(a1, b, c12);
            c22 = Avx512F.FusedMultiplyAdd(a2, b, c22);
            b = Vector512.Load(b3p + o);
            c03 = Avx512F.FusedMultiplyAdd(a0, b, c03); c13 = Avx512F.FusedMultiplyAdd(a1, b, c13);
            c23 = Avx512F.FusedMultiplyAdd(a2, b, c23);
            b = Vector512.Load(b4p + o);
            c04 = Avx512F.FusedMultiplyAdd(a0, b, c04); c14 = Avx512F.FusedMultiplyAdd(a1, b, c14);
            c24 = Avx512F.FusedMultiplyAdd(a2, b, c24);
            b = Vector512.Load(b5p + o);
            c05 = Avx512F.FusedMultiplyAdd(a0, b, c05); c15 = Avx512F.FusedMultiplyAdd(a1, b, c15);
            c25 = Avx512F.FusedMultiplyAdd(a2, b, c25);
            b = Vector512.Load(b6p + o);
            c06 = Avx512F.FusedMultiplyAdd(a0, b, c06); c16 = Avx512F.FusedMultiplyAdd(a1, b, c16);
            c26 = Avx512F.FusedMultiplyAdd(a2, b, c26);
            b = Vector512.Load(b7p + o);
            c07 = Avx512F.FusedMultiplyAdd(a0, b, c07); c17 = Avx512F.FusedMultiplyAdd(a1, b, c17);
            c27 = Avx512F.FusedMultiplyAdd(a2, b, c27);
        }
        if (store->Plain)
        {
            long stride = store->ChannelStride;
            DirectStore.Column((float*)store->Outputs[0], stride, c00, c10, c20);
            DirectStore.Column((float*)store->Outputs[1], stride, c01, c11, c21);
            DirectStore.Column((float*)store->Outputs[2], stride, c02, c12, c22);
            DirectStore.Column((float*)store->Outputs[3], stride, c03, c13, c23);
            DirectStore.Column((float*)store->Outputs[4], stride, c04, c14, c24);
            DirectStore.Column((float*)store->Outputs[5], stride, c05, c15, c25);
            DirectStore.Column((float*)store->Outputs[6], stride, c06, c16, c26);
            DirectStore.Column((float*)store->Outputs[7], stride, c07, c17, c27);
            return;
        }
        var floor = Vector512.Create(store->Relu ? 0f : float.NegativeInfinity);
        store->Put(c00, 0, 0, floor); store->Put(c01, 0, 1, floor); store->Put(c02, 0, 2, floor);
        store->Put(c03, 0, 3, floor); store->Put(c04, 0, 4, floor); store->Put(c05, 0, 5, floor);
        store->Put(c06, 0, 6, floor); store->Put(c07, 0, 7, floor);
        store->Put(c10, 1, 0, floor); store->Put(c11, 1, 1, floor); store->Put(c12, 1, 2, floor);
        store->Put(c13, 1, 3, floor); store->Put(c14, 1, 4, floor); store->Put(c15, 1, 5, floor);
        store->Put(c16, 1, 6, floor); store->Put(c17, 1, 7, floor);
        store->Put(c20, 2, 0, floor); store->Put(c21, 2, 1, floor); store->Put(c22, 2, 2, floor);
        store->Put(c23, 2, 3, floor); store->Put(c24, 2, 4, floor); store->Put(c25, 2, 5, floor);
        store->Put(c26, 2, 6, floor); store->Put(c27, 2, 7, floor);
    }

    /// <summary>Forward8x3's first vector: tile[i·3·16 + l] = Σ_d w[d·8 + i] · b_0[offsets[d] + l].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Forward8x1(float* w, int* offsets, int depth, float* b0p, float* tile)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default;
        for (int* term = offsets, end = offsets + depth; term < end; term++, w += 8)
        {
            var b = Vector512.Load(b0p + *term);
            c0 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[0]), b, c0);
            c1 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[1]), b, c1);
            c2 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[2]), b, c2);
            c3 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[3]), b, c3);
            c4 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[4]), b, c4);
            c5 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[5]), b, c5);
            c6 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[6]), b, c6);
            c7 = Avx512F.FusedMultiplyAdd(Vector512.Create(w[7]), b, c7);
        }
        c0.Store(tile); c1.Store(tile + 48); c2.Store(tile + 96); c3.Store(tile + 144);
        c4.Store(tile + 192); c5.Store(tile + 240); c6.Store(tile + 288); c7.Store(tile + 336);
    }

    /// <summary>Most pixels a map's last vector may hold for FewPixels to serve them a pixel at a time.</summary>
    public const int PixelTileLimit = 4;

    /// <summary>One output pixel's sums for up to 8 channel blocks at once, 8 channels in the lanes: sums[j·8 + i] =
    /// Σ_d w[j·blockStride + d·8 + i] · b[offsets[d]] for blocks j &lt; <paramref name="blocks"/>, each an 8-lane
    /// chain of FMAs in the order of Forward8x*'s, so with the same bits. Per term a block costs one 8-lane FMA
    /// where Forward8x1 spends eight 16-lane ones on its vector, whatever number of its pixels are outputs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ForwardPixel(float* w, long blockStride, int blocks, int* offsets, int depth, float* b,
        float* sums)
    {
        // Blocks past the last repeat it (computed, never read).
        float* w0 = w, w1 = w + Math.Min(1, blocks - 1) * blockStride, w2 = w + Math.Min(2, blocks - 1) * blockStride,
            w3 = w + Math.Min(3, blocks - 1) * blockStride, w4 = w + Math.Min(4, blocks - 1) * blockStride,
            w5 = w + Math.Min(5, blocks - 1) * blockStride, w6 = w + Math.Min(6, blocks - 1) * blockStride,
            w7 = w + Math.Min(7, blocks - 1) * blockStride;
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default;
        for (long d = 0, at = 0; d < depth; d++, at += 8)
        {
            var x = Vector256.Create(b[offsets[d]]);
            c0 = Fma.MultiplyAdd(Vector256.Load(w0 + at), x, c0);
            c1 = Fma.MultiplyAdd(Vector256.Load(w1 + at), x, c1);
            c2 = Fma.MultiplyAdd(Vector256.Load(w2 + at), x, c2);
            c3 = Fma.MultiplyAdd(Vector256.Load(w3 + at), x, c3);
            c4 = Fma.MultiplyAdd(Vector256.Load(w4 + at), x, c4);
            c5 = Fma.MultiplyAdd(Vector256.Load(w5 + at), x, c5);
            c6 = Fma.MultiplyAdd(Vector256.Load(w6 + at), x, c6);
            c7 = Fma.MultiplyAdd(Vector256.Load(w7 + at), x, c7);
        }
        c0.Store(sums); c1.Store(sums + 8); c2.Store(sums + 16); c3.Store(sums + 24);
        c4.Store(sums + 32); c5.Store(sums + 40); c6.Store(sums + 48); c7.Store(sums + 56);
    }

    /// <summary>Pixels that DirectKernels.ForwardPixels sums at once, and the channel blocks it takes.</summary>
    public const int PixelsAPass = 4, PixelBlocks = 4;

    /// <summary>Four output pixels' sums for up to 4 channel blocks, 8 channels in the lanes: sums[(p·4 + j)·8 + i] =
    /// Σ_d w[j·blockStride + d·8 + i] · b_p[offsets[d]] for pixels p &lt; 4 and blocks j &lt; <paramref name="blocks"/>
    /// (16 chains of FMAs, each in ForwardPixel's order, so with the same bits): a pass over the blocks' weights
    /// serves four pixels (of one image or several).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ForwardPixels(float* w, long blockStride, int blocks, int* offsets, int depth, float** b,
        float* sums)
    {
        // Blocks past the last repeat it (computed, never read).
        float* w0 = w, w1 = w + Math.Min(1, blocks - 1) * blockStride, w2 = w + Math.Min(2, blocks - 1) * blockStride,
            w3 = w + Math.Min(3, blocks - 1) * blockStride;
        float* b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default,
            c10 = default, c11 = default, c12 = default, c13 = default,
            c20 = default, c21 = default, c22 = default, c23 = default,
            c30 = default, c31 = default, c32 = default, c33 = default;
        for (long d = 0, at = 0; d < depth; d++, at += 8)
        {
            long o = offsets[d];
            var v0 = Vector256.Load(w0 + at);
            var v1 = Vector256.Load(w1 + at);
            var v2 = Vector256.Load(w2 + at);
            var v3 = Vector256.Load(w3 + at);
            var x = Vector256.Create(b0[o]);
            c00 = Fma.MultiplyAdd(v0, x, c00);
            c01 = Fma.MultiplyAdd(v1, x, c01);
            c02 = Fma.MultiplyAdd(v2, x, c02);
            c03 = Fma.MultiplyAdd(v3, x, c03);
            x = Vector256.Create(b1[o]);
            c10 = Fma.MultiplyAdd(v0, x, c10);
            c11 = Fma.MultiplyAdd(v1, x, c11);
            c12 = Fma.MultiplyAdd(v2, x, c12);
            c13 = Fma.MultiplyAdd(v3, x, c13);
            x = Vector256.Create(b2[o]);
            c20 = Fma.MultiplyAdd(v0, x, c20);
            c21 = Fma.MultiplyAdd(v1, x, c21);
            c22 = Fma.MultiplyAdd(v2, x, c22);
            c23 = Fma.MultiplyAdd(v3, x, c23);
            x = Vector256.Create(b3[o]);
            c30 = Fma.MultiplyAdd(v0, x, c30);
            c31 = Fma.MultiplyAdd(v1, x, c31);
            c32 = Fma.MultiplyAdd(v2, x, c32);
            c33 = Fma.MultiplyAdd(v3, x, c33);
        }
        c00.Store(sums); c01.Store(sums + 8); c02.Store(sums + 16); c03.Store(sums + 24);
        c10.Store(sums + 32); c11.Store(sums + 40); c12.Store(sums + 48); c13.Store(sums + 56);
        c20.Store(sums + 64); c21.Store(sums + 72); c22.Store(sums + 80); c23.Store(sums + 88);
        c30.Store(sums + 96); c31.Store(sums + 104); c32.Store(sums + 112); c33.Store(sums + 120);
    }

    /// <summary>sums[i·6 + j] += Σ over images, output rows and 16-wide pixel vectors of dy_i · x at offsets[j],
    /// where dy_i is row k0 + i of dy (o1, o2, o3 its distances from row 0) and x the image's buffer; positions %
    /// 16 = 0; for j &lt; 3 alone with <typeparamref name="TTerms"/> = ThreeTerms.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Weight4x6<TTerms>(float* dy, long o1, long o2, long o3, long dyImageStride, int images,
        float* x, long xImageStride, int* offsets, int positions, int rowFloats, int rowSkip, float* sums)
        where TTerms : struct, IStepTerms
    {
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c04 = default, c05 = default,
            c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default,
            c20 = default, c21 = default, c22 = default, c23 = default, c24 = default, c25 = default,
            c30 = default, c31 = default, c32 = default, c33 = default, c34 = default, c35 = default;
        long f0 = offsets[0], f1 = offsets[1], f2 = offsets[2], f3 = offsets[3], f4 = offsets[4], f5 = offsets[5];
        for (int n = 0; n < images; n++, dy += dyImageStride, x += xImageStride)
        {
            for (float* g = dy, xp = x, end = dy + positions; g < end; xp += rowSkip)
            for (float* rowEnd = g + rowFloats; g < rowEnd; g += 16, xp += 16)
            {
                {
                    var d0 = Vector512.Load(g);
                    var d1 = Vector512.Load(g + o1);
                    var d2 = Vector512.Load(g + o2);
                    var d3 = Vector512.Load(g + o3);
                    var b = Vector512.Load(xp + f0);
                    c00 = Avx512F.FusedMultiplyAdd(d0, b, c00);
                    c10 = Avx512F.FusedMultiplyAdd(d1, b, c10);
                    c20 = Avx512F.FusedMultiplyAdd(d2, b, c20);
                    c30 = Avx512F.FusedMultiplyAdd(d3, b, c30);
                    b = Vector512.Load(xp + f1);
                    c01 = Avx512F.FusedMultiplyAdd(d0, b, c01);
                    c11 = Avx512F.FusedMultiplyAdd(d1, b, c11);
                    c21 = Avx512F.FusedMultiplyAdd(d2, b, c21);
                    c31 = Avx512F.FusedMultiplyAdd(d3, b, c31);
                    b = Vector512.Load(xp + f2);
                    c02 = Avx512F.FusedMultiplyAdd(d0, b, c02);
                    c12 = Avx512F.FusedMultiplyAdd(d1, b, c12);
                    c22 = Avx512F.FusedMultiplyAdd(d2, b, c22);
                    c32 = Avx512F.FusedMultiplyAdd(d3, b, c32);
                    if (!TTerms.Six) continue;
                    b = Vector512.Load(xp + f3);
                    c03 = Avx512F.FusedMultiplyAdd(d0, b, c03);
                    c13 = Avx512F.FusedMultiplyAdd(d1, b, c13);
                    c23 = Avx512F.FusedMultiplyAdd(d2, b, c23);
                    c33 = Avx512F.FusedMultiplyAdd(d3, b, c33);
                    b = Vector512.Load(xp + f4);
                    c04 = Avx512F.FusedMultiplyAdd(d0, b, c04);
                    c14 = Avx512F.FusedMultiplyAdd(d1, b, c14);
                    c24 = Avx512F.FusedMultiplyAdd(d2, b, c24);
                    c34 = Avx512F.FusedMultiplyAdd(d3, b, c34);
                    b = Vector512.Load(xp + f5);
                    c05 = Avx512F.FusedMultiplyAdd(d0, b, c05);
                    c15 = Avx512F.FusedMultiplyAdd(d1, b, c15);
                    c25 = Avx512F.FusedMultiplyAdd(d2, b, c25);
                    c35 = Avx512F.FusedMultiplyAdd(d3, b, c35);
                }
            }
        }
        // The 24 sums in a tree of whole-vector shuffles and adds (about 75 instructions where four-at-a-time
        // reductions to 128 bits took about 170): in one process, batch-1 64×56×56 → 128 1x1/2 48.6 → 46.9 µs,
        // batch-128 16×32×32 → 16 1956 → 1899, batch-8 256×56×56 → 64 2750 → 2624.
        var first = Singles(Pairs(Four(c00, c01, c02, c03), Four(c04, c05, c10, c11)),
            Pairs(Four(c12, c13, c14, c15), Four(c20, c21, c22, c23)));
        var rest = Pairs(Four(c24, c25, c30, c31), Four(c32, c33, c34, c35));
        (Vector512.Load(sums) + Avx512F.PermuteVar16x32(first, FirstOrder)).Store(sums);
        (Vector256.Load(sums + 16) + Avx512F.PermuteVar16x32(Singles(rest, rest), RestOrder).GetLower())
            .Store(sums + 16);
    }

    /// <summary>tile[(i·3 + j)·8 + l] = Σ_d w[d·4 + i] · b_j[offsets[d] + l]: Forward8x3's AVX2 form (all 16 ymm
    /// registers: 12 sums, 3 pixel vectors, 1 broadcast); stored through <paramref name="store"/> when
    /// <paramref name="tile"/> is null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Forward4x3(float* w, int* offsets, int depth, float* b0p, float* b1p, float* b2p, float* tile,
        DirectStore* store)
    {
        Vector256<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default,
            c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default;
        for (int* term = offsets, end = offsets + depth; term < end; term++, w += 4)
        {
            long o = *term;
            var b0 = Vector256.Load(b0p + o);
            var b1 = Vector256.Load(b1p + o);
            var b2 = Vector256.Load(b2p + o);
            var a = Vector256.Create(w[0]);
            c00 = Fma.MultiplyAdd(a, b0, c00);
            c01 = Fma.MultiplyAdd(a, b1, c01);
            c02 = Fma.MultiplyAdd(a, b2, c02);
            a = Vector256.Create(w[1]);
            c10 = Fma.MultiplyAdd(a, b0, c10);
            c11 = Fma.MultiplyAdd(a, b1, c11);
            c12 = Fma.MultiplyAdd(a, b2, c12);
            a = Vector256.Create(w[2]);
            c20 = Fma.MultiplyAdd(a, b0, c20);
            c21 = Fma.MultiplyAdd(a, b1, c21);
            c22 = Fma.MultiplyAdd(a, b2, c22);
            a = Vector256.Create(w[3]);
            c30 = Fma.MultiplyAdd(a, b0, c30);
            c31 = Fma.MultiplyAdd(a, b1, c31);
            c32 = Fma.MultiplyAdd(a, b2, c32);
        }
        if (tile == null && store->Plain)
        {
            long stride = store->ChannelStride;
            DirectStore.Column((float*)store->Outputs[0], stride, c00, c10, c20, c30);
            DirectStore.Column((float*)store->Outputs[1], stride, c01, c11, c21, c31);
            DirectStore.Column((float*)store->Outputs[2], stride, c02, c12, c22, c32);
            return;
        }
        if (tile == null)
        {
            var floor = Vector256.Create(store->Relu ? 0f : float.NegativeInfinity);
            store->Put(c00, 0, 0, floor); store->Put(c01, 0, 1, floor); store->Put(c02, 0, 2, floor);
            store->Put(c10, 1, 0, floor); store->Put(c11, 1, 1, floor); store->Put(c12, 1, 2, floor);
            store->Put(c20, 2, 0, floor); store->Put(c21, 2, 1, floor); store->Put(c22, 2, 2, floor);
            store->Put(c30, 3, 0, floor); store->Put(c31, 3, 1, floor); store->Put(c32, 3, 2, floor);
            return;
        }
        c00.Store(tile); c01.Store(tile + 8); c02.Store(tile + 16);
        c10.Store(tile + 24); c11.Store(tile + 32); c12.Store(tile + 40);
        c20.Store(tile + 48); c21.Store(tile + 56); c22.Store(tile + 64);
        c30.Store(tile + 72); c31.Store(tile + 80); c32.Store(tile + 88);
    }

    /// <summary>sums[i·6 + j] += the sums for the two rows dy (i = 0) and dy + o1 (i = 1), 8-wide: Weight4x6's AVX2
    /// form (for j &lt; 3 alone with <typeparamref name="TTerms"/> = ThreeTerms).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Weight2x6<TTerms>(float* dy, long o1, long dyImageStride, int images, float* x,
        long xImageStride, int* offsets, int positions, int rowFloats, int rowSkip, float* sums)
        where TTerms : struct, IStepTerms
    {
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default, c04 = default, c05 = default,
            c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
        // Long offsets and stepped pointers: no sign extension or index arithmetic per load (the loop's integer
        // work otherwise rivals its 12 fused multiply-adds for the core's issue slots).
        long f0 = offsets[0], f1 = offsets[1], f2 = offsets[2], f3 = offsets[3], f4 = offsets[4], f5 = offsets[5];
        for (int n = 0; n < images; n++, dy += dyImageStride, x += xImageStride)
        {
            for (float* g = dy, xp = x, end = dy + positions; g < end; xp += rowSkip)
            for (float* rowEnd = g + rowFloats; g < rowEnd; g += 8, xp += 8)
            {
                var d0 = Vector256.Load(g);
                var d1 = Vector256.Load(g + o1);
                var b = Vector256.Load(xp + f0);
                c00 = Fma.MultiplyAdd(d0, b, c00);
                c10 = Fma.MultiplyAdd(d1, b, c10);
                b = Vector256.Load(xp + f1);
                c01 = Fma.MultiplyAdd(d0, b, c01);
                c11 = Fma.MultiplyAdd(d1, b, c11);
                b = Vector256.Load(xp + f2);
                c02 = Fma.MultiplyAdd(d0, b, c02);
                c12 = Fma.MultiplyAdd(d1, b, c12);
                if (!TTerms.Six) continue;
                b = Vector256.Load(xp + f3);
                c03 = Fma.MultiplyAdd(d0, b, c03);
                c13 = Fma.MultiplyAdd(d1, b, c13);
                b = Vector256.Load(xp + f4);
                c04 = Fma.MultiplyAdd(d0, b, c04);
                c14 = Fma.MultiplyAdd(d1, b, c14);
                b = Vector256.Load(xp + f5);
                c05 = Fma.MultiplyAdd(d0, b, c05);
                c15 = Fma.MultiplyAdd(d1, b, c15);
            }
        }
        AddTo(sums, SumEach(c00, c01, c02, c03)); AddTo(sums + 4, SumEach(c04, c05, c10, c11));
        AddTo(sums + 8, SumEach(c12, c13, c14, c15));
    }
}

public sealed unsafe partial class CpuBackend
{
    /// <summary>A worker's padded-image buffer for the direct convolutions.</summary>
    internal float* DirectSourceScratch(int worker, long floats) =>
        (float*)WorkerScratch(worker, DirectSourceSlot, floats * sizeof(float));

    /// <summary>A worker's outputs of a stride-2 data gradient's phases, before they are interleaved.</summary>
    internal float* DirectPhaseScratch(int worker, long floats) =>
        (float*)WorkerScratch(worker, ColumnsSlot, floats * sizeof(float));

    /// <summary>Largest per-image buffer (floats) the direct convolutions use; bigger images take the GEMM path.</summary>
    private const long DirectImageLimit = 1 << 20;

    private static ShiftedSource ForwardSource(ConvGeometry g, float* x) => new()
    {
        Source = x, Channels = g.InChannels, Height = g.InHeight, Width = g.InWidth,
        OutHeight = g.OutHeight, OutWidth = g.OutWidth, KernelHeight = g.KernelHeight, KernelWidth = g.KernelWidth,
        StrideH = g.StrideHeight, StrideW = g.StrideWidth, OriginY = g.PadTop, OriginX = g.PadLeft,
    };

    /// <summary>dy seen as the source of the stride-1 data gradient: the flipped kernel, padding R−1−PadTop.</summary>
    private static ShiftedSource DataSource(ConvGeometry g, float* dy) => new()
    {
        Source = dy, Channels = g.OutChannels, Height = g.OutHeight, Width = g.OutWidth,
        OutHeight = g.InHeight, OutWidth = g.InWidth, KernelHeight = g.KernelHeight, KernelWidth = g.KernelWidth,
        StrideH = 1, StrideW = 1, OriginY = g.KernelHeight - 1 - g.PadTop, OriginX = g.KernelWidth - 1 - g.PadLeft,
    };

    /// <summary>With AVX2 the direct kernels beat the packed GEMM only where its packing is a large share of the
    /// work: where the GEMM has few rows or a shallow depth, and the kernel is not pointwise (a 1x1 stride-1
    /// convolution's patch rows are the source planes, copied as they are). Measured per ResNet-20 and ResNet-50
    /// layer shape (docs/performance.md, "AVX2 direct convolutions"); at or below this many on the GEMM's narrow
    /// side, the direct path serves. With AVX-512 it serves every shape (within DirectImageLimit and the other
    /// limits below).</summary>
    private const int NarrowGemmLimit = 64;

    /// <summary>Whether a direct convolution pass of <paramref name="g"/> serves a GEMM whose rows or depth, the
    /// smaller, is <paramref name="narrowSide"/>.</summary>
    private static bool DirectServes(ConvGeometry g, long narrowSide) =>
        DirectKernels.IsSupported &&
        (Avx512F.IsSupported || (narrowSide <= NarrowGemmLimit && !PatchMatrix.IsPointwise(g)));

    private static bool UseDirectForward(ConvGeometry g) =>
        DirectServes(g, Math.Min(g.OutChannels, (long)g.InChannels * g.KernelHeight * g.KernelWidth)) &&
        ForwardSource(g, null).ChoiceFloats <= DirectImageLimit;

    /// <summary>Images below which a stride-2 data gradient runs directly if its buffer of dy fits DirectImageLimit as
    /// built, in padded rows (the 7x7/2 stem's: 0.85 M floats, 3.3 M with a plane per tap column). The stem's data
    /// gradient, in one process: batch 1 0.90 ms directly against 1.45 by the columns path (3 channel blocks for 2
    /// threads), batch 2 1.86 / 2.53, batch 4 level, batch 8 7.5 / 6.6 (the columns path's tasks, an image each,
    /// then fill the threads).</summary>
    private const int PhasedBuiltBatchLimit = 4;

    /// <summary>Stride 1, or with AVX-512 stride 2 from an input twice the output each way (PhasedBackwardData).
    /// </summary>
    private static bool UseDirectBackwardData(ConvGeometry g) =>
        DirectServes(g, Math.Min(g.InChannels, (long)g.OutChannels * g.KernelHeight * g.KernelWidth)) &&
        (g.StrideHeight == 1 && g.StrideWidth == 1 && DataSource(g, null).ImageFloats <= DirectImageLimit ||
            Avx512F.IsSupported && g.StrideHeight == 2 && g.StrideWidth == 2 && g.InHeight == 2 * g.OutHeight &&
            g.InWidth == 2 * g.OutWidth && (PhasedSource(g, null).ImageFloats <= DirectImageLimit ||
                g.Batch < PhasedBuiltBatchLimit && PhasedSource(g, null).BuiltImageFloats <= DirectImageLimit));

    /// <summary>The weight gradient's GEMM: K rows, N·OH·OW deep, C·R·S columns; what decides is the input
    /// channels (measured), and with AVX2 a pointwise layer that narrows the channels four times or more takes the
    /// direct kernels too (batch 8: 256×56×56 → 64 12.5–15.3 → 10.9–12.3 ms, 512×28×28 → 128 9.8–13.1 → 8.4–8.6;
    /// halving ones ran level, widening ones, 64 → 256 and 128 → 512, slower).</summary>
    private static bool UseDirectBackwardWeight(ConvGeometry g) =>
        (DirectServes(g, g.InChannels) ||
            DirectKernels.IsSupported && PatchMatrix.IsPointwise(g) && 4L * g.OutChannels <= g.InChannels) &&
        g.OutHeight * g.OutWidth % DirectKernels.Lanes == 0 &&
        ForwardSource(g, null).ChoiceFloats <= DirectImageLimit;

    /// <summary>Images a task takes where each image's last vector holds a few pixels (FewPixelsLast): their last
    /// pixels share passes over the weights, 4 at a time. In one process, batch 8, against one image a task: the
    /// data gradients of 256×14×14 → 512 1x1/2 329 → 301 µs and 1024×14×14 → 2048 1x1/2 4.85 → 4.72 ms, the
    /// forwards of 512×7×7 → 2048 2.32 → 2.20 ms and 2048×7×7 → 512 2.28 → 2.16 (8 images: level with 4; 3:
    /// between). As many as have their buffers in FewPixelGroupBytes.</summary>
    private const int FewPixelImages = 4;

    /// <summary>Bytes of built buffers a task of FewPixelImages images holds at most (a core's L2). 4 images a task
    /// of 256×28×28 → 256 3x3/2 (1.3 MB of buffer an image) took its batch-8 forward 5.02 → 5.75 ms in one
    /// process; 1024×14×14 → 2048 1x1/2's (0.2 MB an image) 4.96 → 4.64.</summary>
    private const long FewPixelGroupBytes = 1 << 20;

    /// <summary>Built buffers up to which a task of TileVectors images holds them where its map alone would take one
    /// image a task (SmallGroupsPerThread): ResNet-20's 3-channel stem, 14 KB an image.</summary>
    private const long SmallGroupBytes = 256 << 10;

    /// <summary>Tasks a thread has at least where small images are grouped on maps of many vectors: the tiles then
    /// run across each task's images, with no tile of one vector per image. In one process, two runs, ResNet-20's
    /// 3×32×32 → 16 forward at batch 128 445 → 419 and 507 → 459 µs, its data gradient 590 → 562 and 638 → 627, at
    /// batch 64 245 → 237 (AVX2: 892 → 875, 1086 → 1075, 431 → 423); at batch 8 (3 tasks on 2 threads) 26.7 →
    /// 32.4, so not there. Larger buffers took longer grouped (512×28×28 → 128 1x1 at batch 8 2.17 → 2.36 ms,
    /// 128×28×28 ← 512's data gradient 2.24 → 2.45).</summary>
    private const int SmallGroupsPerThread = 8;

    /// <summary>Images per task: enough pixel vectors that the tiles (TileVectors vectors each) waste little. With
    /// AVX-512 a map whose last tile would be one vector of a few pixels leaves that vector to a pixel at a time
    /// (DirectConvJob.FewPixels), FewPixelImages images a task: a 7x7 map's 49 pixels then cost 3 vector passes and
    /// a pixel, where in groups of 3 images every fourth vector held one pixel. Small buffers on maps of many
    /// vectors go TileVectors images a task where the tasks stay many (SmallGroupsPerThread).
    /// <paramref name="imageBytes"/>: an image's built buffer (0 read in place); <paramref name="threads"/>: the
    /// backend's.</summary>
    private static int DirectGroup(int positions, int batch, long imageBytes, int threads)
    {
        int lanes = DirectKernels.Lanes, tileVectors = DirectKernels.TileVectors;
        int vectors = (positions + lanes - 1) / lanes, lastPixels = positions - (vectors - 1) * lanes;
        if (DirectConvJob.FewPixelsLast(vectors, lastPixels, tileVectors))
            return (int)Math.Clamp(FewPixelGroupBytes / Math.Max(1, imageBytes), 1, Math.Min(FewPixelImages, batch));
        if (vectors % tileVectors == 0) return 1;
        bool small = imageBytes > 0 && tileVectors * imageBytes <= SmallGroupBytes &&
            batch >= SmallGroupsPerThread * tileVectors * threads;
        return vectors >= 8 * tileVectors && !small ? 1 : Math.Min(tileVectors, batch);
    }

    /// <summary>Output rows a band of a direct convolution has at least when its images are split by rows.</summary>
    private const int MinBandRows = 4;

    /// <summary>A built buffer float's cost in 16-wide FMAs (a copy, in a part's L2), for choosing bands.</summary>
    private const double BuildCostInFmas = 0.5;

    /// <summary>BuildCostInFmas of a buffer gathered at stride 2 (a float a cycle: 128×28×28 → 256 1x1/2's build
    /// was 6 of its 47 µs at batch 1). Batch 1 in one process, against 0.5, with 2 threads: the 1x1/2 layers
    /// 128×28×28 → 256 forward 47.3 → 41.2 µs and 256×56×56 → 512 615 → 590, 256×28×28 → 256 3x3/2 679 → 671
    /// (two bands of rows in place of two ranges of channels that each built the whole buffer); batch 2 and 4
    /// of 128×28×28 → 256 93 → 80 and 197 → 171 µs; the rest level.</summary>
    private const double StridedBuildCostInFmas = 2;

    /// <summary>Ranges of output-channel blocks per band, so that <paramref name="bands"/> bands make about
    /// <paramref name="parts"/> parts: at least one, and at least two blocks a range.</summary>
    private static int ChannelParts(int parts, int bands, int blocks) =>
        Math.Clamp((parts + bands - 1) / bands, 1, Math.Max(1, blocks / 2));

    /// <summary>Of 1 to <paramref name="most"/> bands of rows, the count that costs least, the most bands on a tie:
    /// the tiles' FMAs (<paramref name="depth"/> terms a vector and output channel; a band's last vector is partly
    /// padding: 14x14 maps in 3 bands of 5, 5 and 4 rows have 14 vectors, in 1 band 13) plus the buffer floats
    /// built, which fewer bands build again for each range of output channels that shares a band (128×56×56 3x3/2
    /// in 1 band: 4 copies of 2.4 MB); none where the source is read in place.</summary>
    private static int CheapestBands(ShiftedSource source, int depth, int most, int parts, int blocks,
        int outChannels)
    {
        int outHeight = source.OutHeight;
        double imageFloats = source.BuiltImageFloats, bestCost = double.MaxValue;
        double buildCost = source.StrideW == 1 ? BuildCostInFmas : StridedBuildCostInFmas;
        int best = most;
        for (int bands = most; bands >= 1; bands--)
        {
            int rows = (outHeight + bands - 1) / bands, vectors = 0, built = 0;
            for (int oh = 0; oh < outHeight; oh += rows, built++)
                vectors += (Math.Min(rows, outHeight - oh) * source.OutWidth + DirectKernels.Lanes - 1) /
                    DirectKernels.Lanes;
            double cost = (double)vectors * depth * outChannels +
                (source.IsIdentity ? 0 : buildCost * ChannelParts(parts, built, blocks) * imageFloats);
            if (cost < bestCost) (best, bestCost) = (bands, cost);
        }
        return best;
    }

    /// <summary>Runs a direct convolution over images in groups of DirectGroup: the terms of its
    /// <paramref name="count"/> phases (DirectPhase; their weights packed), each source channel's taps in order,
    /// interleaved into a twice as tall and wide output when <paramref name="interleaved"/>. When the groups are fewer
    /// than two per thread (batch 1), each group's work is split into parts: bands of at least MinBandRows output
    /// rows, each building only its rows of the buffer, and, where the rows are too few for enough bands, ranges of
    /// at least two output-channel blocks that build the same band. The parts are the fewest that share the groups
    /// evenly among the threads (batch 1: one per thread, batch 2: none), as each builds its own buffer: with two
    /// per thread, in one process, batch 1 256×14×14 → 512 1x1/2 forward took 0.057 ms where one per thread took
    /// 0.047, 512×28×28 → 1024 0.61 / 0.57, 256×14×14 → 512 3x3/2 0.36 / 0.32, 512×7×7 → 512 3x3 0.67 / 0.64;
    /// batch 2 the 1x1/2 layers 3–12 % faster, the 7x7/2 stem's forward 2 % slower (1.27 / 1.30 ms), the rest
    /// level.</summary>
    private void RunDirectConv(ShiftedSource source, DirectPhase* phases, int count, bool interleaved,
        int outChannels, int batch, float* output, float* bias, float* residual, bool relu)
    {
        int outHeight = source.OutHeight, positions = outHeight * source.OutWidth;
        int depth = DirectPhase.Depth(phases, count, source.Channels);
        int group = DirectGroup(positions, batch, source.IsIdentity ? 0 : source.BuiltImageFloats * sizeof(float),
            ThreadCount);
        int groups = (batch + group - 1) / group;
        int blocks = (outChannels + DirectKernels.ChannelBlock - 1) / DirectKernels.ChannelBlock;
        int parts = EvenParts(groups);
        int rowParts = CheapestBands(source, depth, Math.Max(1, Math.Min(parts, outHeight / MinBandRows)), parts,
            blocks, outChannels);
        int channelParts = ChannelParts(parts, rowParts, blocks);
        int partRows = (outHeight + rowParts - 1) / rowParts;
        rowParts = (outHeight + partRows - 1) / partRows;   // no empty band
        // Every band's buffer has the same layout, so one set of offsets serves (read in place: the source's own).
        bool inPlace = source.IsIdentity;
        source.OutHeight = inPlace ? outHeight : partRows;
        source.PaddedRows = source.CanPadRows;
        var offsets = (int*)WorkerScratch(0, DirectOffsetSlot, (long)depth * sizeof(int));
        for (int p = 0; p < count; p++)
        {
            ref var phase = ref phases[p];
            phase.Offsets = offsets;
            for (int c = 0; c < source.Channels; c++)
            for (int t = 0; t < phase.Taps; t++)
                *offsets++ = source.Offset(c, phase.WindowRows[t], phase.WindowColumns[t]);
        }
        var job = new DirectConvJob
        {
            Source = source, Phases = phases, PhaseCount = count, OutChannels = outChannels, OutHeight = outHeight,
            Batch = batch, GroupImages = group, RowParts = rowParts, ChannelParts = channelParts, PartRows = partRows,
            Output = output, Bias = bias, Residual = residual, Relu = relu, Interleaved = interleaved, Backend = this,
            InPlace = inPlace,
        };
        Parallel(groups * rowParts * channelParts, ref job);
    }

    /// <summary>Parts to cut each of <paramref name="units"/> units of work into (images, groups of images): the
    /// fewest that share the units' parts evenly among the threads, and no more than two a thread (batch 1: one a
    /// thread; batch 2 on two threads: one an image).</summary>
    private int EvenParts(int units) =>
        Math.Min((2 * ThreadCount + units - 1) / units, ThreadCount / GreatestCommonDivisor(units, ThreadCount));

    private static int GreatestCommonDivisor(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }

    /// <summary>Runs the direct kernels over the whole of a kernel, its taps in order, the weights of tap t at
    /// KernelTaps[t] = t, or (<paramref name="flipped"/>, the stride-1 data gradient) R·S − 1 − t.</summary>
    private void RunWholeKernel(ShiftedSource source, DeviceBuffer<float> w, WeightPass pass, bool flipped,
        int outChannels, int batch, float* output, float* bias, float* residual, bool relu)
    {
        int kernelArea = source.KernelHeight * source.KernelWidth;
        int* taps = stackalloc int[3 * kernelArea];
        var phase = new DirectPhase
        {
            Taps = kernelArea, KernelTaps = taps, WindowRows = taps + kernelArea, WindowColumns = taps + 2 * kernelArea,
        };
        for (int t = 0; t < kernelArea; t++)
        {
            taps[t] = flipped ? kernelArea - 1 - t : t;
            phase.WindowRows[t] = t / source.KernelWidth;
            phase.WindowColumns[t] = t % source.KernelWidth;
        }
        DirectWeights(w, pass, WeightLayout.Direct, outChannels, source.Channels, kernelArea, &phase, 1);
        RunDirectConv(source, &phase, 1, false, outChannels, batch, output, bias, residual, relu);
        GC.KeepAlive(w);   // its kept pack must outlive the run that reads it
    }

    private void DirectForward(ConvGeometry g, float* x, DeviceBuffer<float> w, float* bias, float* y,
        float* residual, bool relu) =>
        RunWholeKernel(ForwardSource(g, x), w, WeightPass.Forward, false, g.OutChannels, g.Batch, y, bias, residual,
            relu);

    /// <summary>dx = the stride-1 forward convolution of dy with w flipped and its channels swapped; at stride 2,
    /// PhasedBackwardData.</summary>
    private void DirectBackwardData(ConvGeometry g, float* dy, DeviceBuffer<float> w, float* dx)
    {
        if (g.StrideHeight == 1)
            RunWholeKernel(DataSource(g, dy), w, WeightPass.BackwardData, true, g.InChannels, g.Batch, dx, null, null,
                false);
        else PhasedBackwardData(g, dy, w, dx);
    }

    /// <summary>Where one dimension of a stride-2 data gradient reads dy: dx position 2i + a takes the kernel's taps
    /// r ≡ a + pad (mod 2), tap r from dy position i + (a + pad − r) / 2; every parity's taps together read a window
    /// from i − Origin, Size places long.</summary>
    private static (int Origin, int Size) ParityWindow(int kernel, int pad)
    {
        int low = int.MaxValue, high = int.MinValue;
        for (int a = 0; a < 2; a++)
        for (int r = (a + pad) & 1; r < kernel; r += 2)
        {
            int shift = (a + pad - r) / 2;
            (low, high) = (Math.Min(low, shift), Math.Max(high, shift));
        }
        return (-low, high - low + 1);
    }

    /// <summary>dy seen as the source of a stride-2 data gradient's phases: ParityWindow's window in each dimension,
    /// over outputs as large as dy (each phase's share of dx).</summary>
    private static ShiftedSource PhasedSource(ConvGeometry g, float* dy)
    {
        var (originY, height) = ParityWindow(g.KernelHeight, g.PadTop);
        var (originX, width) = ParityWindow(g.KernelWidth, g.PadLeft);
        return new ShiftedSource
        {
            Source = dy, Channels = g.OutChannels, Height = g.OutHeight, Width = g.OutWidth,
            OutHeight = g.OutHeight, OutWidth = g.OutWidth, KernelHeight = height, KernelWidth = width,
            StrideH = 1, StrideW = 1, OriginY = originY, OriginX = originX,
        };
    }

    /// <summary>
    /// The data gradient of a stride-2 convolution whose input is twice its output each way (every ResNet
    /// downsampling layer) as up to four stride-1 convolutions of dy, one per parity (a, b) of dx's rows and
    /// columns, with no zeros multiplied: dx[n, c, 2i + a, 2j + b] = Σ_k Σ w[k, c, r, s] · dy[n, k, i + (a + PadTop −
    /// r) / 2, j + (b + PadLeft − s) / 2] over the taps r ≡ a + PadTop and s ≡ b + PadLeft (mod 2). The phases read
    /// one buffer of dy (PhasedSource: for 3x3/2 with padding 1 a 2x2 window, the phases taking 4, 2, 2 and 1 of
    /// its taps) and are interleaved into dx; a parity no tap reaches (1x1/2's odd rows and columns) is zero. The
    /// columns path (Convolution.cs) computed the same sums through the GEMM and col2im at 150–250 GFLOP/s.
    /// </summary>
    private void PhasedBackwardData(ConvGeometry g, float* dy, DeviceBuffer<float> w, float* dx)
    {
        var source = PhasedSource(g, dy);
        int kh = g.KernelHeight, kw = g.KernelWidth, kernelArea = kh * kw, count = 0, at = 0;
        int* taps = stackalloc int[3 * kernelArea];
        var phases = stackalloc DirectPhase[4];
        for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
        {
            var phase = new DirectPhase
            {
                RowStart = a, ColumnStart = b, KernelTaps = taps + at, WindowRows = taps + kernelArea + at,
                WindowColumns = taps + 2 * kernelArea + at,
            };
            for (int r = (a + g.PadTop) & 1; r < kh; r += 2)
            for (int s = (b + g.PadLeft) & 1; s < kw; s += 2, at++, phase.Taps++)
            {
                taps[at] = r * kw + s;
                taps[kernelArea + at] = (a + g.PadTop - r) / 2 + source.OriginY;
                taps[2 * kernelArea + at] = (b + g.PadLeft - s) / 2 + source.OriginX;
            }
            if (phase.Taps > 0) phases[count++] = phase;
        }
        DirectWeights(w, WeightPass.BackwardData, WeightLayout.DirectPhases, g.InChannels, g.OutChannels, kernelArea,
            phases, count);
        RunDirectConv(source, phases, count, true, g.InChannels, g.Batch, dx, null, null, false);
        GC.KeepAlive(w);   // its kept pack must outlive the run that reads it
    }

    private void DirectBackwardWeight(ConvGeometry g, float* x, float* dy, float* dw)
    {
        int kernelArea = g.KernelHeight * g.KernelWidth, depth = g.InChannels * kernelArea;
        int paddedDepth = (depth + 5) / 6 * 6;
        var source = ForwardSource(g, x);
        source.PaddedRows = source.CanPadRows;
        var offsets = (int*)WorkerScratch(0, DirectOffsetSlot, (long)paddedDepth * sizeof(int));
        for (int c = 0, d = 0; c < g.InChannels; c++)
        for (int r = 0; r < g.KernelHeight; r++)
        for (int s = 0; s < g.KernelWidth; s++, d++)
            offsets[d] = source.Offset(c, r, s);
        for (int d = depth; d < paddedDepth; d++) offsets[d] = offsets[depth - 1];

        int positions = g.OutHeight * g.OutWidth;
        int partitions = Math.Min(g.Batch, 16);
        int channels = DirectKernels.WeightChannels;
        int paddedChannels = (g.OutChannels + channels - 1) / channels * channels;
        int callParts = Math.Min(EvenParts(partitions), paddedDepth / 6 * (paddedChannels / channels));
        int group = DirectWeightJob.ImagesPerCall(positions, source.IsIdentity ? 0 : source.ImageFloats * sizeof(float),
            (g.Batch + partitions - 1) / partitions);
        long partitionLength = DirectWeightJob.PartialFloats(paddedDepth, paddedChannels);
        var partials = (float*)WorkerScratch(0, PartialsSlot, partitions * partitionLength * sizeof(float));
        var job = new DirectWeightJob
        {
            Source = source, Offsets = offsets, PaddedDepth = paddedDepth, PaddedChannels = paddedChannels,
            OutChannels = g.OutChannels, Positions = positions, Batch = g.Batch, Partitions = partitions,
            CallParts = callParts, GroupImages = group, OutputGradient = dy, Partials = partials, Backend = this,
            Output = partitions == 1 ? dw : null, Depth = depth,
        };
        Parallel(partitions * callParts, ref job);
        if (job.Output != null) return;
        var sum = new PartialSumJob
        {
            Partials = partials, Output = dw, Partitions = partitions, Depth = depth, OutChannels = g.OutChannels,
            PaddedChannels = paddedChannels, PartitionLength = partitionLength,
        };
        Parallel((g.OutChannels + PartialSumJob.ChannelsPerTask - 1) / PartialSumJob.ChannelsPerTask, ref sum);
    }
}
