// The paper's option-A shortcut as one fused kernel each way: x [N, C, H, W] → y [N, K, OH, OW] with
// OH = ⌈H / stride⌉: y[n, k, i, j] = x[n, k − PadFront, i·stride, j·stride] for the input's channels, 0 for the
// K − C extra ones. Backward: dx[n, c, h, w] = dy[n, c + PadFront, h/stride, w/stride] where h and w are
// multiples of the stride, else 0. Both are gathers over their output, a row of lanes per output row (several rows
// per group), so every element is written and no element pays an index division.
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

    /// <summary>Images N.</summary>
    public readonly int Batch = g.Batch;
}

/// <summary>The option-A shortcut kernels: a row of lanes per row of their output (RowConfig), striding along the
/// row; every element is written. The row is decomposed once per thread (32-bit: the geometry keeps tensors under
/// 2^31 elements), so no element pays a division.</summary>
public static class ShortcutKernels
{
    /// <summary>Row r = (n·K + k)·OH + i of y (one row of lanes each): y[n, k, i, j] = x[n, k − PadFront, i·Stride,
    /// j·Stride] for the input's channels, 0 for the others.</summary>
    public static void Forward<T>(ArrayView<T> x, ArrayView<T> y, ShortcutShape s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int row = KernelIndex.Row;
        if (row >= s.Batch * s.K * s.OH) return;
        int i = row % s.OH, plane = row / s.OH;
        int k = plane % s.K, image = plane / s.K;
        int c = k - s.PadFront;
        // Indices advance as loop variables, so the row's decomposition stays before the loop.
        int target = row * s.OW + Group.IdxX, end = (row + 1) * s.OW;
        if (c < 0 || c >= s.C)
        {
            for (; target < end; target += Group.DimX) y[target] = T.Zero;
            return;
        }
        int source = ((image * s.C + c) * s.H + i * s.Stride) * s.W + Group.IdxX * s.Stride;
        for (; target < end; target += Group.DimX, source += Group.DimX * s.Stride) y[target] = x[source];
    }

    /// <summary>Row r = (n·C + c)·H + h of dx (one row of lanes each): dx[n, c, h, j·Stride] = dy[n, c + PadFront,
    /// h / Stride, j] on rows h that are multiples of the stride, 0 everywhere else. Each thread writes the
    /// Stride elements of its output column j, so no column is divided.</summary>
    public static void Backward<T>(ArrayView<T> dy, ArrayView<T> dx, ShortcutShape s)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int row = KernelIndex.Row;
        if (row >= s.Batch * s.C * s.H) return;
        int h = row % s.H, plane = row / s.H;
        int c = plane % s.C, image = plane / s.C;
        int i = h / s.Stride;
        // Indices advance as loop variables, so the row's decomposition stays before the loops.
        int target = row * s.W + Group.IdxX * s.Stride, end = (row + 1) * s.W, step = Group.DimX * s.Stride;
        if (i * s.Stride != h)
        {
            for (int t = row * s.W + Group.IdxX; t < end; t += Group.DimX) dx[t] = T.Zero;
            return;
        }
        int source = ((image * s.K + c + s.PadFront) * s.OH + i) * s.OW + Group.IdxX;
        for (; target < end; target += step, source += Group.DimX)
        {
            dx[target] = dy[source];
            for (int q = target + 1; q < target + s.Stride && q < end; q++) dx[q] = T.Zero;
        }
    }
}

public sealed partial class IlgpuBackend
{
    /// <summary>A row of lanes per row of the output, as many lanes as the row has elements (a power of two, at most
    /// the group), and as many rows per group as fill min(256, MaxNumThreadsPerGroup) threads: group (lanes,
    /// rows per group), grid ⌈rows / rows per group⌉ (<see cref="KernelIndex.Row"/>). Narrow rows share a group
    /// rather than each idling most of a group of their own: one group per row of 16 made a grid of 262,144
    /// one-warp groups, bound by the rate at which the device starts groups.</summary>
    private KernelConfig RowConfig(int rows, int width)
    {
        int threads = Math.Min(256, MaxGroupSize), lanes = 1;
        while (lanes < width && lanes * 2 <= threads) lanes *= 2;
        int rowsPerGroup = threads / lanes;
        return new KernelConfig(new Index3D(checked((rows + rowsPerGroup - 1) / rowsPerGroup), 1, 1),
            new Index3D(lanes, rowsPerGroup, 1));
    }

    /// <inheritdoc/>
    protected override void ShortcutForwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ShortcutShape>>(
            nameof(ShortcutKernels.Forward),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, ShortcutShape>(ShortcutKernels.Forward));
        var s = new ShortcutShape(g);
        kernel(_accelerator.DefaultStream, RowConfig(checked(g.Batch * s.K * s.OH), s.OW), View(x), View(y), s);
    }

    /// <inheritdoc/>
    protected override void ShortcutBackwardCore<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx)
    {
        var kernel = Kernel<T, Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ShortcutShape>>(
            nameof(ShortcutKernels.Backward),
            static a => a.LoadKernel<ArrayView<T>, ArrayView<T>, ShortcutShape>(ShortcutKernels.Backward));
        var s = new ShortcutShape(g);
        kernel(_accelerator.DefaultStream, RowConfig(checked(g.Batch * s.C * s.H), s.OW), View(dy), View(dx), s);
    }
}
