// The paper's option-A shortcut as one fused kernel each way: x [N, C, H, W] → y [N, K, OH, OW] with
// OH = ⌈H / stride⌉: y[n, k, i, j] = x[n, k − PadFront, i·stride, j·stride] for the input's channels, 0 for the
// K − C extra ones. Backward: dx[n, c, h, w] = dy[n, c + PadFront, h/stride, w/stride] where h and w are
// multiples of the stride, else 0. Both are grid-stride gathers over their output, so every element is written.
using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Engine.Kernels.Ilgpu;

/// <summary>ShortcutGeometry flattened for kernels.</summary>
public readonly struct ShortcutShape(ShortcutGeometry g)
{
    /// <summary>Input channels C, rows H and columns W; output channels K.</summary>
    public readonly int C = g.InChannels, H = g.InHeight, W = g.InWidth, K = g.OutChannels;

    /// <summary>Output rows OH and columns OW, the subsampling stride, and the zero channels before the
    /// input's.</summary>
    public readonly int OH = g.OutHeight, OW = g.OutWidth, Stride = g.Stride, PadFront = g.PadFront;
}

/// <summary>The option-A shortcut kernels: grid-stride gathers over their output, so every element is
/// written.</summary>
public static class ShortcutKernels
{
    /// <summary>y[n, k, i, j] = x[n, k − PadFront, i·s.Stride, j·s.Stride] for the input's channels, 0 for the
    /// others.</summary>
    public static void Forward<T>(Index1D thread, ArrayView<T> x, ArrayView<T> y, ShortcutShape s, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long o = thread; o < y.Length; o += stride)
        {
            int j = (int)(o % s.OW);
            long rest = o / s.OW;
            int i = (int)(rest % s.OH);
            rest /= s.OH;
            int k = (int)(rest % s.K);
            long image = rest / s.K;
            int c = k - s.PadFront;
            y[o] = c >= 0 && c < s.C
                ? x[((image * s.C + c) * s.H + i * s.Stride) * s.W + j * s.Stride]
                : T.Zero;
        }
    }

    /// <summary>dx[n, c, h, w] = dy[n, c + PadFront, h / s.Stride, w / s.Stride] where s.Stride divides h and w, else
    /// 0.</summary>
    public static void Backward<T>(Index1D thread, ArrayView<T> dy, ArrayView<T> dx, ShortcutShape s, int stride)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (long i = thread; i < dx.Length; i += stride)
        {
            int w = (int)(i % s.W);
            long rest = i / s.W;
            int h = (int)(rest % s.H);
            rest /= s.H;
            int c = (int)(rest % s.C);
            long image = rest / s.C;
            dx[i] = h % s.Stride == 0 && w % s.Stride == 0
                ? dy[((image * s.K + c + s.PadFront) * s.OH + h / s.Stride) * s.OW + w / s.Stride]
                : T.Zero;
        }
    }
}

public sealed partial class IlgpuBackend
{
    /// <inheritdoc/>
    protected override void ShortcutForwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ShortcutShape, int>>(
            nameof(ShortcutKernels.Forward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ShortcutShape, int>(
                ShortcutKernels.Forward));
        int extent = StreamExtent(y.Length);
        kernel(_accelerator.DefaultStream, extent, View(x), View(y), new ShortcutShape(g), extent);
    }

    /// <inheritdoc/>
    protected override void ShortcutBackwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, Index1D, ArrayView<T>, ArrayView<T>, ShortcutShape, int>>(
            nameof(ShortcutKernels.Backward),
            static a => a.LoadAutoGroupedKernel<Index1D, ArrayView<T>, ArrayView<T>, ShortcutShape, int>(
                ShortcutKernels.Backward));
        int extent = StreamExtent(dx.Length);
        kernel(_accelerator.DefaultStream, extent, View(dy), View(dx), new ShortcutShape(g), extent);
    }
}
