// The option-A shortcut: x [N, C, H, W] → y [N, K, OH, OW], subsampled by the stride, input channels placed at
// PadFront, zeros elsewhere; and its backward. A task takes a stretch of consecutive planes of the tensor it writes
// (about ChunkLength elements: a ResNet-20 plane is 64 to 1024), so every element is written once, in memory order.
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void ShortcutForwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        var job = new ShortcutJob<T>
        {
            G = g, X = Data(x), Y = Data(y), Forward = true, Planes = g.Batch * g.OutChannels,
            StretchPlanes = Math.Max(1, ChunkLength / Math.Max(1, g.OutHeight * g.OutWidth)),
        };
        Parallel(job.Stretches, ref job);
    }

    /// <inheritdoc/>
    protected override void ShortcutBackwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
    {
        var job = new ShortcutJob<T>
        {
            G = g, X = Data(dx), Y = Data(dy), Forward = false, Planes = g.Batch * g.InChannels,
            StretchPlanes = Math.Max(1, ChunkLength / Math.Max(1, g.InHeight * g.InWidth)),
        };
        Parallel(job.Stretches, ref job);
    }

    /// <summary>Forward, plane p = n·K + k: y[n, k, i, j] = x[n, k − PadFront, i·s, j·s] or 0.
    /// Backward, plane p = n·C + c: x[n, c, h, w] = y[n, c + PadFront, h/s, w/s] where s divides h and w, else 0.
    /// Task t writes planes [t·StretchPlanes, (t + 1)·StretchPlanes).</summary>
    private struct ShortcutJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public ShortcutGeometry G;
        public T* X, Y;
        public bool Forward;
        public int Planes, StretchPlanes;

        public readonly int Stretches => (Planes + StretchPlanes - 1) / StretchPlanes;

        public readonly void Execute(int task, int worker)
        {
            int end = Math.Min(Planes, (task + 1) * StretchPlanes);
            for (int plane = task * StretchPlanes; plane < end; plane++)
                if (Forward) ForwardPlane(plane);
                else BackwardPlane(plane);
        }

        private readonly void ForwardPlane(int plane)
        {
            int inWidth = G.InWidth, outHeight = G.OutHeight, outWidth = G.OutWidth, stride = G.Stride;
            int n = plane / G.OutChannels, c = plane % G.OutChannels - G.PadFront, outPlane = outHeight * outWidth;
            T* y = Y + (long)plane * outPlane;
            if (c < 0 || c >= G.InChannels)
            {
                new Span<T>(y, outPlane).Clear();
                return;
            }
            T* x = X + ((long)n * G.InChannels + c) * G.InHeight * inWidth;
            if (typeof(T) == typeof(float) && stride == 2 && Avx512F.IsSupported)
            {
                EvenRowsAndColumns((float*)x, inWidth, outHeight, outWidth, (float*)y);
                return;
            }
            for (int i = 0; i < outHeight; i++)
            {
                T* source = x + (long)i * stride * inWidth;
                T* target = y + (long)i * outWidth;
                if (typeof(T) == typeof(float))   // the direct convolutions' row gather: vectors at stride 2
                    ShiftedSource.FillRow((float*)source, inWidth, 0, stride, outWidth, (float*)target);
                else
                    for (int j = 0; j < outWidth; j++) target[j] = source[j * stride];
            }
        }

        /// <summary>y[i][j] = x[2i][2j] for a float plane with AVX-512: a row at a time (EvenColumns), or two
        /// rows a vector where output rows are 8 wide from input rows of 16 (ResNet-20's 16×16 → 8×8), where the
        /// rows one at a time (with a call per row) cost three times a copy of the plane.</summary>
        private static void EvenRowsAndColumns(float* x, int inWidth, int outHeight, int outWidth, float* y)
        {
            if (outWidth == 8 && inWidth == 16)
            {
                var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                int i = 0;
                for (; i + 2 <= outHeight; i += 2)
                {
                    var upper = Vector512.Load(x + 2 * i * 16);
                    Avx512F.PermuteVar16x32x2(upper, even, Vector512.Load(x + (2 * i + 2) * 16)).Store(y + i * 8);
                }
                if (i < outHeight)
                    Avx512F.PermuteVar16x32x2(Vector512.Load(x + 2 * i * 16), even, Vector512<float>.Zero)
                        .GetLower().Store(y + i * 8);
                return;
            }
            for (int i = 0; i < outHeight; i++)
                ShiftedSource.EvenColumns(x + (long)2 * i * inWidth, outWidth, inWidth, y + (long)i * outWidth);
        }

        /// <summary>Zeroes the plane, then places dy at the subsampled positions; a float row at stride 2 is
        /// written whole, dy interleaved with zeros (with AVX-512 and rows twice as wide as dy's, every row is
        /// written once: the even rows spread by the phased data gradient's interleave, the odd rows zeroed).
        /// </summary>
        private readonly void BackwardPlane(int plane)
        {
            int inWidth = G.InWidth, inPlane = G.InHeight * inWidth, outWidth = G.OutWidth, stride = G.Stride;
            int n = plane / G.InChannels, c = plane % G.InChannels;
            T* dx = X + (long)plane * inPlane;
            T* dy = Y + ((long)n * G.OutChannels + c + G.PadFront) * G.OutHeight * outWidth;
            if (typeof(T) == typeof(float) && stride == 2 && inWidth == 2 * outWidth && Avx512F.IsSupported)
            {
                DirectConvJob.InterleaveRows((float*)dy, null, outWidth, G.OutHeight, (float*)dx);
                for (int i = 1; i < G.InHeight; i += 2) PackedGemm.ZeroRow((float*)dx + (long)i * inWidth, inWidth);
                return;
            }
            new Span<T>(dx, inPlane).Clear();
            for (int i = 0; i < G.OutHeight; i++)
            {
                T* target = dx + (long)i * stride * inWidth;
                T* source = dy + (long)i * outWidth;
                int j = 0;
                if (typeof(T) == typeof(float) && stride == 2 && Avx2.IsSupported)
                    for (; j + 8 <= outWidth && 2 * j + 16 <= inWidth; j += 8)
                        ShiftedSource.Interleave(Vector256.Load((float*)source + j), Vector256<float>.Zero,
                            (float*)target + 2 * j);
                for (; j < outWidth; j++) target[j * stride] = source[j];
            }
        }
    }
}
