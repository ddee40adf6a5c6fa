// The option-A shortcut: x [N, C, H, W] → y [N, K, OH, OW], subsampled by the stride, input channels placed at
// PadFront, zeros elsewhere; and its backward. One task per output plane, so every element is written once.
using System.Numerics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void ShortcutForwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        var job = new ShortcutJob<T> { G = g, X = Data(x), Y = Data(y), Forward = true };
        Parallel(g.Batch * g.OutChannels, ref job);
    }

    /// <inheritdoc/>
    protected override void ShortcutBackwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
    {
        var job = new ShortcutJob<T> { G = g, X = Data(dx), Y = Data(dy), Forward = false };
        Parallel(g.Batch * g.InChannels, ref job);
    }

    /// <summary>Forward, task = n·K + k: y[n, k, i, j] = x[n, k − PadFront, i·s, j·s] or 0.
    /// Backward, task = n·C + c: x[n, c, h, w] = y[n, c + PadFront, h/s, w/s] where s divides h and w, else 0.</summary>
    private struct ShortcutJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public ShortcutGeometry G;
        public T* X, Y;
        public bool Forward;

        public void Execute(int task, int worker)
        {
            int inWidth = G.InWidth, outHeight = G.OutHeight, outWidth = G.OutWidth, stride = G.Stride;
            int inPlane = G.InHeight * inWidth, outPlane = outHeight * outWidth;
            if (Forward)
            {
                int n = task / G.OutChannels, c = task % G.OutChannels - G.PadFront;
                T* y = Y + (long)task * outPlane;
                if (c < 0 || c >= G.InChannels)
                {
                    new Span<T>(y, outPlane).Clear();
                    return;
                }
                T* x = X + ((long)n * G.InChannels + c) * inPlane;
                for (int i = 0; i < outHeight; i++)
                {
                    T* source = x + (long)i * stride * inWidth;
                    T* target = y + (long)i * outWidth;
                    if (typeof(T) == typeof(float))   // the direct convolutions' row gather: vectors at stride 2
                        ShiftedSource.FillRow((float*)source, inWidth, 0, stride, outWidth, (float*)target);
                    else
                        for (int j = 0; j < outWidth; j++) target[j] = source[j * stride];
                }
                return;
            }

            // Backward: zero the plane, then place dy at the subsampled positions.
            int batch = task / G.InChannels, channel = task % G.InChannels;
            T* dx = X + (long)task * inPlane;
            T* dy = Y + ((long)batch * G.OutChannels + channel + G.PadFront) * outPlane;
            new Span<T>(dx, inPlane).Clear();
            for (int i = 0; i < outHeight; i++)
            {
                T* target = dx + (long)i * stride * inWidth;
                T* source = dy + (long)i * outWidth;
                for (int j = 0; j < outWidth; j++) target[j * stride] = source[j];
            }
        }
    }
}
