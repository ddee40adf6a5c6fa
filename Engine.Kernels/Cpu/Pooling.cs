// Pooling: max pooling with its argmax and average pooling over any PoolGeometry (rectangular window, strides,
// per-side padding, dilation for max pooling, ceil mode), and global average pooling; x [N, C, H, W],
// y [N, C, OH, OW] (global: y [N, C]).
//
// Every task owns whole (n, c) planes: one, or (global average pooling, max-pool backward) about ChunkLength
// elements of them. Each window's taps inside the input come from PoolGeometry.InputTaps, so padding is skipped,
// never read. Max-pool forward is vectorised down the window's rows (Vector256 over the input columns), then across
// the window's columns (Vector256 over the output columns, each tap read at the stride). Backward gathers nothing
// across planes: each plane's dx is zeroed and every dy of the plane added to the cells of its window (max: its
// argmax) in output order, so overlapping windows sum deterministically. Max-pool backward takes about ChunkLength
// input elements per task (whole planes); it builds each plane's dx in the worker's scratch and streams it out with
// non-temporal stores (so dx is written once and never read from memory, as an in-place scatter's stores read it),
// and checks each plane's argmax in the task just before its scatter reads it again from the cache; an index
// outside its plane throws after the run, naming the first, and dx is then unspecified (that plane is left
// unwritten).
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void MaxPoolForwardCore<T>(PoolGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y,
        DeviceBuffer<int> argmax)
    {
        var job = new MaxPoolForwardJob<T> { G = g, X = Data(x), Y = Data(y), Argmax = Data(argmax), Backend = this };
        Parallel(g.Batch * g.Channels, ref job);
    }

    /// <inheritdoc/>
    protected override void MaxPoolBackwardCore<T>(PoolGeometry g, DeviceBuffer<T> dy, DeviceBuffer<int> argmax,
        DeviceBuffer<T> dx)
    {
        long firstBad = long.MaxValue;
        int* indices = Data(argmax);
        int planes = g.Batch * g.Channels, planeSize = g.InHeight * g.InWidth;
        var job = new MaxPoolBackwardJob<T>
        {
            G = g, DY = Data(dy), Argmax = indices, DX = Data(dx), FirstBad = &firstBad, Backend = this,
            Planes = planes, PlanesPerTask = PlanesPerTask(planeSize),
        };
        Parallel(PlaneTasks(planes, planeSize), ref job);
        if (firstBad != long.MaxValue)
            throw new ArgumentException(
                $"max-pool backward: argmax[{firstBad}] = {indices[firstBad]} is outside the {g.InHeight}x{g.InWidth} " +
                "plane.", nameof(argmax));
    }

    /// <inheritdoc/>
    protected override void AvgPoolForwardCore<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> x,
        DeviceBuffer<T> y)
    {
        var job = new AvgPoolJob<T>
            { G = g, CountIncludePad = countIncludePad, Forward = true, X = Data(x), Y = Data(y) };
        Parallel(g.Batch * g.Channels, ref job);
    }

    /// <inheritdoc/>
    protected override void AvgPoolBackwardCore<T>(PoolGeometry g, bool countIncludePad, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx)
    {
        var job = new AvgPoolJob<T>
            { G = g, CountIncludePad = countIncludePad, Forward = false, X = Data(dx), Y = Data(dy) };
        Parallel(g.Batch * g.Channels, ref job);
    }

    /// <inheritdoc/>
    protected override void GlobalAveragePoolForwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> x,
        DeviceBuffer<T> y)
    {
        var job = new GlobalAveragePoolJob<T>
            { X = Data(x), Y = Data(y), Planes = batch * channels, Spatial = spatial, Forward = true };
        Parallel(PlaneTasks(batch * channels, spatial), ref job);
    }

    /// <inheritdoc/>
    protected override void GlobalAveragePoolBackwardCore<T>(int batch, int channels, int spatial, DeviceBuffer<T> dy,
        DeviceBuffer<T> dx)
    {
        var job = new GlobalAveragePoolJob<T>
            { X = Data(dx), Y = Data(dy), Planes = batch * channels, Spatial = spatial, Forward = false };
        Parallel(PlaneTasks(batch * channels, spatial), ref job);
    }

    /// <summary>Planes per task of a plane-wise streaming op: about ChunkLength elements.</summary>
    private static int PlanesPerTask(int spatial) => Math.Max(1, ChunkLength / Math.Max(spatial, 1));

    private static int PlaneTasks(int planes, int spatial) =>
        (planes + PlanesPerTask(spatial) - 1) / PlanesPerTask(spatial);

    /// <summary>
    /// Plane <c>task</c>: each output is the window maximum and argmax its flat index in the input plane; ties go to
    /// the first in row-major order, a NaN wins (the last NaN of the window, as PyTorch). Per output row, a Vector256
    /// pass down the window's rows keeps every input column's maximum and the flat index it came from (rows in
    /// order: a greater value or a NaN replaces), in a row of columns with the padding's columns on both sides (−∞ at
    /// an index past every input, so a tap there never wins). Then each output vector combines its window's taps by
    /// Beats, which picks the same element as the row-major scan because a flat index grows in row-major window
    /// order: a tap is the column row read at the output stride (a load at stride 1, even elements of two loads at
    /// stride 2, gathered otherwise), and the result is stored straight to y and argmax.
    /// </summary>
    private struct MaxPoolForwardJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public PoolGeometry G;
        public T* X, Y;
        public int* Argmax;
        public CpuBackend Backend;

        public void Execute(int task, int worker)
        {
            // Locals, so the loops below keep the geometry in registers.
            int height = G.InHeight, width = G.InWidth, outHeight = G.OutHeight, outWidth = G.OutWidth;
            int dilationHeight = G.DilationHeight, dilationWidth = G.DilationWidth;
            int kernelWidth = G.KernelWidth, strideWidth = G.StrideWidth, lanes = Vector256<T>.Count;
            T* plane = X + (long)task * height * width;
            long outOffset = (long)task * outHeight * outWidth;
            T* y = Y + outOffset;
            int* argmax = Argmax + outOffset;
            // columnMax[w] (w from −PadLeft): column w's maximum over the window's rows, columnIndex[w] its flat
            // index (as the bits of an integer of T's size, so the vector select moves it with the value). Past
            // the input, as far as the last window's taps and a vector's reads at the stride reach, padding.
            int lead = G.PadLeft, lastTap = (outWidth - 1) * strideWidth - lead + (kernelWidth - 1) * dilationWidth;
            int span = lead + Math.Max(width, lastTap + 1) + (strideWidth + 1) * lanes;
            var columnMax = (T*)Backend.WorkerScratch(worker, PoolColumnsSlot, 2L * span * sizeof(T));
            T* columnIndex = columnMax + span;
            new Span<T>(columnMax, span).Fill(T.NegativeInfinity);
            new Span<T>(columnIndex, span).Fill(IndexBits(int.MaxValue));
            columnMax += lead;
            columnIndex += lead;
            for (int oh = 0; oh < outHeight; oh++)
            {
                int h0 = oh * G.StrideHeight - G.PadTop;
                var (rFirst, rEnd) = PoolGeometry.InputTaps(h0, G.KernelHeight, dilationHeight, height);
                for (int r = rFirst; r < rEnd; r++)
                {
                    int row = h0 + r * dilationHeight;
                    KeepColumnMaxima(plane + (long)row * width, row * width, columnMax, columnIndex, width,
                        first: r == rFirst);
                }

                // Combine the taps in window order, Vector256 over the output columns.
                T* yRow = y + oh * outWidth;
                int* argmaxRow = argmax + oh * outWidth;
                if (strideWidth == 1) CombineTaps<ContiguousTaps>(yRow, argmaxRow, columnMax, columnIndex);
                else if (strideWidth == 2 && Avx2.IsSupported)
                    CombineTaps<EvenTaps>(yRow, argmaxRow, columnMax, columnIndex);
                else CombineTaps<GatheredTaps>(yRow, argmaxRow, columnMax, columnIndex);
            }
        }

        /// <summary>One output row: each output's window taps (column maxima and their indices) combined in
        /// window order by Beats, a vector of outputs at a time, each tap read by <typeparamref name="TTaps"/>.
        /// </summary>
        private readonly void CombineTaps<TTaps>(T* yRow, int* argmaxRow, T* columnMax, T* columnIndex)
            where TTaps : struct, ITapReader
        {
            int outWidth = G.OutWidth, stride = G.StrideWidth, dilation = G.DilationWidth, taps = G.KernelWidth;
            int lead = G.PadLeft, o = 0;
            for (; o + Vector256<T>.Count <= outWidth; o += Vector256<T>.Count)
            {
                int w0 = o * stride - lead;
                var best = TTaps.Read(columnMax + w0, stride);
                var bestIndex = TTaps.Read(columnIndex + w0, stride);
                for (int q = 1, w = w0 + dilation; q < taps; q++, w += dilation)
                {
                    var v = TTaps.Read(columnMax + w, stride);
                    var index = TTaps.Read(columnIndex + w, stride);
                    var take = Beats(v, index, best, bestIndex);
                    best = Vector256.ConditionalSelect(take, v, best);
                    bestIndex = Vector256.ConditionalSelect(take, index, bestIndex);
                }
                best.Store(yRow + o);
                StoreIndices(bestIndex, argmaxRow + o);
            }
            for (; o < outWidth; o++)
            {
                int w0 = o * stride - lead;
                T best = columnMax[w0];
                int bestIndex = IndexOf(columnIndex[w0]);
                for (int q = 1, w = w0 + dilation; q < taps; q++, w += dilation)
                {
                    int index = IndexOf(columnIndex[w]);
                    if (Beats(columnMax[w], index, best, bestIndex)) (best, bestIndex) = (columnMax[w], index);
                }
                yRow[o] = best;
                argmaxRow[o] = bestIndex;
            }
        }

        /// <summary>Input row <paramref name="values"/>, whose first element has flat index
        /// <paramref name="start"/>: the first row of a window sets each column's maximum and index; a later one
        /// replaces them where it holds a greater value or a NaN.</summary>
        private static void KeepColumnMaxima(T* values, int start, T* columnMax, T* columnIndex, int width,
            bool first)
        {
            int w = 0;
            for (; w + Vector256<T>.Count <= width; w += Vector256<T>.Count)
            {
                var v = Vector256.Load(values + w);
                var index = IndexVector(start + w);
                if (first)
                {
                    v.Store(columnMax + w);
                    index.Store(columnIndex + w);
                    continue;
                }
                var best = Vector256.Load(columnMax + w);
                var replace = Vector256.GreaterThan(v, best) | ~Vector256.Equals(v, v);
                Vector256.ConditionalSelect(replace, v, best).Store(columnMax + w);
                Vector256.ConditionalSelect(replace, index, Vector256.Load(columnIndex + w)).Store(columnIndex + w);
            }
            for (; w < width; w++)
                if (first || values[w] > columnMax[w] || T.IsNaN(values[w]))
                {
                    columnMax[w] = values[w];
                    columnIndex[w] = IndexBits(start + w);
                }
        }

        /// <summary>The flat indices start, start + 1, … as <see cref="IndexBits"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<T> IndexVector(int start) =>
            sizeof(T) == sizeof(int)
                ? (Vector256.Create(start) + Vector256<int>.Indices).As<int, T>()
                : (Vector256.Create((long)start) + Vector256<long>.Indices).As<long, T>();

        /// <summary>A vector of <see cref="IndexBits"/> stored as ints.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void StoreIndices(Vector256<T> indices, int* dst)
        {
            if (sizeof(T) == sizeof(int))
            {
                indices.As<T, int>().Store(dst);
                return;
            }
            var wide = indices.As<T, long>();
            for (int j = 0; j < Vector256<long>.Count; j++) dst[j] = (int)wide.GetElement(j);
        }

        /// <summary>True when (v, index) comes before (best, bestIndex) in the window's order: a NaN beats every
        /// number and an earlier NaN; otherwise a greater value, or an equal one at a smaller index.</summary>
        private static bool Beats(T v, int index, T best, int bestIndex) =>
            T.IsNaN(v) ? !T.IsNaN(best) || index > bestIndex
                : !T.IsNaN(best) && (v > best || (v == best && index < bestIndex));

        /// <summary><see cref="Beats(T, int, T, int)"/> lane by lane, the indices as <see cref="IndexBits"/>.</summary>
        private static Vector256<T> Beats(Vector256<T> v, Vector256<T> index, Vector256<T> best,
            Vector256<T> bestIndex)
        {
            var isNaN = ~Vector256.Equals(v, v);
            var bestIsNaN = ~Vector256.Equals(best, best);
            return (isNaN & (~bestIsNaN | IndexGreater(index, bestIndex))) |
                   Vector256.AndNot(Vector256.GreaterThan(v, best) |
                                    (Vector256.Equals(v, best) & IndexGreater(bestIndex, index)), isNaN | bestIsNaN);
        }

        private static Vector256<T> IndexGreater(Vector256<T> a, Vector256<T> b) =>
            sizeof(T) == sizeof(int)
                ? Vector256.GreaterThan(a.As<T, int>(), b.As<T, int>()).As<int, T>()
                : Vector256.GreaterThan(a.As<T, long>(), b.As<T, long>()).As<long, T>();

        /// <summary>An index carried in a T: the bits of an int (float) or a long (double).</summary>
        private static T IndexBits(int index) =>
            sizeof(T) == sizeof(int) ? Unsafe.BitCast<int, T>(index) : Unsafe.BitCast<long, T>(index);

        private static int IndexOf(T bits) =>
            sizeof(T) == sizeof(int) ? Unsafe.BitCast<T, int>(bits) : (int)Unsafe.BitCast<T, long>(bits);
    }

    /// <summary>Reads one window tap for a vector of consecutive outputs: src[0], src[stride], ….</summary>
    private interface ITapReader
    {
        static abstract Vector256<T> Read<T>(T* src, int stride) where T : unmanaged;
    }

    /// <summary>Stride 1: one load.</summary>
    private struct ContiguousTaps : ITapReader
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Read<T>(T* src, int stride) where T : unmanaged => Vector256.Load(src);
    }

    /// <summary>Stride 2 (AVX2): the even elements of two loads.</summary>
    private struct EvenTaps : ITapReader
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<T> Read<T>(T* src, int stride) where T : unmanaged =>
            sizeof(T) == sizeof(float)
                ? ShiftedSource.EveryOtherElement((float*)src, false).As<float, T>()
                // Doubles: the first of each 128-bit pair from either load, then the quarters put in order.
                : Avx2.Permute4x64(Avx.Shuffle(Vector256.Load((double*)src), Vector256.Load((double*)src + 4), 0),
                    0b11_01_10_00).As<double, T>();
    }

    /// <summary>Any stride: element by element.</summary>
    private struct GatheredTaps : ITapReader
    {
        public static Vector256<T> Read<T>(T* src, int stride) where T : unmanaged
        {
            T* gathered = stackalloc T[Vector256<T>.Count];
            for (int j = 0; j < Vector256<T>.Count; j++) gathered[j] = src[j * stride];
            return Vector256.Load(gathered);
        }
    }

    /// <summary>Planes <c>task</c>·PlanesPerTask … (about ChunkLength input elements), one by one: the plane's
    /// argmax is checked first (Vector256, unsigned: a negative index fails too); a plane with an index outside it
    /// is left unwritten and its first bad index goes to <see cref="FirstBad"/> (the least over the planes). Then
    /// the plane's dx is built in the worker's scratch (zeroed, then dx[argmax[o]] += dy[o] in output order, in the
    /// cache) and streamed to dx with non-temporal stores, so dx is written once and never read from memory.</summary>
    private struct MaxPoolBackwardJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public PoolGeometry G;
        public T* DY, DX;
        public int* Argmax;
        /// <summary>The least flat index (over the whole argmax) of an index outside its plane; long.MaxValue
        /// while none.</summary>
        public long* FirstBad;
        public CpuBackend Backend;
        public int Planes, PlanesPerTask;

        public void Execute(int task, int worker)
        {
            int planeSize = G.InHeight * G.InWidth, outSize = G.OutHeight * G.OutWidth;
            var scratch = (T*)Backend.WorkerScratch(worker, PoolColumnsSlot, (long)planeSize * sizeof(T));
            int end = Math.Min(Planes, (task + 1) * PlanesPerTask);
            for (int plane = task * PlanesPerTask; plane < end; plane++)
            {
                T* dy = DY + (long)plane * outSize;
                int* argmax = Argmax + (long)plane * outSize;
                int bad = FirstOutside(argmax, outSize, (uint)planeSize);
                if (bad >= 0)
                {
                    long index = (long)plane * outSize + bad, seen;
                    while (index < (seen = Volatile.Read(ref *FirstBad)) &&
                           Interlocked.CompareExchange(ref *FirstBad, index, seen) != seen) { }
                    continue;
                }
                new Span<T>(scratch, planeSize).Clear();
                for (int o = 0; o < outSize; o++) scratch[argmax[o]] += dy[o];
                Stream(scratch, DX + (long)plane * planeSize, planeSize);
            }
            if (Sse.IsSupported) Sse.StoreFence(); // the streamed stores are visible before the task counts as done
        }

        /// <summary>target[0 … count) = source[0 … count): scalar up to target's first 32-byte boundary, then
        /// Vector256 non-temporal stores, then the scalar tail.</summary>
        private static void Stream(T* source, T* target, int count)
        {
            int i = 0;
            while (i < count && ((nuint)(target + i) & 31) != 0) target[i] = source[i++];
            for (; i + Vector256<T>.Count <= count; i += Vector256<T>.Count)
                Vector256.Load(source + i).StoreAlignedNonTemporal(target + i);
            for (; i < count; i++) target[i] = source[i];
        }

        /// <summary>The first o with (uint)indices[o] ≥ limit, or −1.</summary>
        private static int FirstOutside(int* indices, int count, uint limit)
        {
            var bound = Vector256.Create(limit);
            var outside = Vector256<uint>.Zero;
            int o = 0;
            for (; o + Vector256<uint>.Count <= count; o += Vector256<uint>.Count)
                outside |= Vector256.GreaterThanOrEqual(Vector256.Load((uint*)indices + o), bound);
            bool any = outside != Vector256<uint>.Zero;
            for (; o < count; o++) any |= (uint)indices[o] >= limit;
            if (!any) return -1;
            for (o = 0; (uint)indices[o] < limit; o++) { }
            return o;
        }
    }

    /// <summary>Plane <c>task</c> of average pooling. Forward: y[o] = the sum of o's input cells (row-major) /
    /// the window's divisor. Backward: dx = 0, then every cell of window o gets dy[o] / divisor, in output
    /// order.</summary>
    private struct AvgPoolJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public PoolGeometry G;
        public bool CountIncludePad, Forward;
        /// <summary>x and y forward; dx and dy backward.</summary>
        public T* X, Y;

        public void Execute(int task, int worker)
        {
            int height = G.InHeight, width = G.InWidth, outHeight = G.OutHeight, outWidth = G.OutWidth;
            T* plane = X + (long)task * height * width;
            T* y = Y + (long)task * outHeight * outWidth;
            if (!Forward) new Span<T>(plane, height * width).Clear();
            for (int oh = 0; oh < outHeight; oh++)
            {
                int h0 = oh * G.StrideHeight - G.PadTop;
                int hFirst = Math.Max(h0, 0), hEnd = Math.Min(h0 + G.KernelHeight, height);
                int rows = PoolGeometry.AverageCount(h0, G.KernelHeight, height, G.PadBottom, CountIncludePad);
                for (int ow = 0; ow < outWidth; ow++)
                {
                    int w0 = ow * G.StrideWidth - G.PadLeft;
                    int wFirst = Math.Max(w0, 0), wEnd = Math.Min(w0 + G.KernelWidth, width);
                    int columns = PoolGeometry.AverageCount(w0, G.KernelWidth, width, G.PadRight, CountIncludePad);
                    T divisor = T.CreateTruncating(rows) * T.CreateTruncating(columns);
                    if (Forward)
                    {
                        T sum = T.Zero;
                        for (int h = hFirst; h < hEnd; h++)
                            for (int w = wFirst; w < wEnd; w++)
                                sum += plane[h * width + w];
                        y[oh * outWidth + ow] = sum / divisor;
                    }
                    else
                    {
                        T share = y[oh * outWidth + ow] / divisor;
                        for (int h = hFirst; h < hEnd; h++)
                            for (int w = wFirst; w < wEnd; w++)
                                plane[h * width + w] += share;
                    }
                }
            }
        }
    }

    /// <summary>Forward: y[p] = sum of plane p / HW. Backward: every element of plane p of x is y[p] / HW.</summary>
    private struct GlobalAveragePoolJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* X, Y;
        public int Planes, Spatial;
        public bool Forward;

        public void Execute(int task, int worker)
        {
            int perTask = PlanesPerTask(Spatial);
            int end = Math.Min(Planes, (task + 1) * perTask);
            T count = T.CreateTruncating(Spatial);
            for (int p = task * perTask; p < end; p++)
            {
                T* plane = X + (long)p * Spatial;
                if (Forward) Y[p] = Sum(plane, Spatial) / count;
                else new Span<T>(plane, Spatial).Fill(Y[p] / count);
            }
        }
    }
}
