// Pooling with gradients: max-pool and average pool over x [N, C, H, W] with PyTorch's / ONNX's geometry
// (rectangular window, strides per axis, padding per side (top, bottom, left, right), dilation for max pooling,
// ceil mode; PoolGeometry), and global average pooling ([N, C, H, W] → [N, C]). The square, symmetric case has its
// own overloads.
using Engine.Core.Autograd;
using Engine.Core.Ops;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>Max pooling of x [N, C, H, W] with a square window, equal strides and the same padding on every
    /// side (torch.nn.MaxPool2d's common form). Backward: dy goes to each window's maximum (first on ties).</summary>
    public Tensor<T> MaxPool2d(int kernel, int stride, int padding = 0) =>
        MaxPool2d(kernel, kernel, stride, stride, padding, padding, padding, padding);

    /// <summary>Max pooling of x [N, C, H, W] (torch.nn.MaxPool2d, ONNX MaxPool): padding counts as −∞, a NaN wins
    /// its window, ties go to the first element in row-major window order. Backward: dy goes to each window's
    /// maximum.</summary>
    /// <exception cref="ArgumentException">x is not 4-D or the geometry is invalid (see
    /// <see cref="PoolGeometry.Validated()"/>).</exception>
    public Tensor<T> MaxPool2d(int kernelHeight, int kernelWidth, int strideHeight, int strideWidth, int padTop,
        int padBottom, int padLeft, int padRight, int dilationHeight = 1, int dilationWidth = 1,
        bool ceilMode = false)
    {
        var x = this;
        Check.Images("max-pool", x);
        var g = new PoolGeometry(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], kernelHeight, kernelWidth,
            strideHeight, strideWidth, padTop, padBottom, padLeft, padRight, dilationHeight, dilationWidth,
            ceilMode).Validated();
        var backend = Device.Backend;
        var y = new Tensor<T>(Device, [g.Batch, g.Channels, g.OutHeight, g.OutWidth]);
        var argmax = y.AttachBuffer<int>(y.Length);
        backend.MaxPoolForward(g, x.Buffer, y.Buffer, argmax);
        return Graph.Record(y, "max-pool", [x], dy =>
        {
            var dx = new Tensor<T>(dy.Device, x.Shape);
            backend.MaxPoolBackward(g, dy.Buffer, argmax, dx.Buffer);
            return [dx];
        });
    }

    /// <summary>Average pooling of x [N, C, H, W] with a square window, equal strides and the same padding on every
    /// side (torch.nn.AvgPool2d's common form; see the general overload).</summary>
    public Tensor<T> AvgPool2d(int kernel, int stride, int padding = 0, bool ceilMode = false,
        bool countIncludePad = true) =>
        AvgPool2d(kernel, kernel, stride, stride, padding, padding, padding, padding, ceilMode, countIncludePad);

    /// <summary>Average pooling of x [N, C, H, W] with PyTorch's avg_pool2d semantics (ONNX AveragePool without
    /// dilation agrees whenever ceil mode is off): padding adds 0 to each window's sum; the divisor counts the
    /// window's cells inside the padded input when <paramref name="countIncludePad"/> (PyTorch's default; never the
    /// cells past it that ceil mode adds), else only its input cells. Backward: dy / divisor to every input cell of
    /// the window.</summary>
    /// <exception cref="ArgumentException">x is not 4-D or the geometry is invalid (see
    /// <see cref="PoolGeometry.ValidatedForAverage"/>).</exception>
    public Tensor<T> AvgPool2d(int kernelHeight, int kernelWidth, int strideHeight, int strideWidth, int padTop,
        int padBottom, int padLeft, int padRight, bool ceilMode = false, bool countIncludePad = true)
    {
        var x = this;
        Check.Images("avg-pool", x);
        var g = new PoolGeometry(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], kernelHeight, kernelWidth,
            strideHeight, strideWidth, padTop, padBottom, padLeft, padRight, CeilMode: ceilMode).ValidatedForAverage();
        var backend = Device.Backend;
        var y = new Tensor<T>(Device, [g.Batch, g.Channels, g.OutHeight, g.OutWidth]);
        backend.AvgPoolForward(g, countIncludePad, x.Buffer, y.Buffer);
        return Graph.Record(y, "avg-pool", [x], dy =>
        {
            var dx = new Tensor<T>(dy.Device, x.Shape);
            backend.AvgPoolBackward(g, countIncludePad, dy.Buffer, dx.Buffer);
            return [dx];
        });
    }

    /// <summary>Mean over H and W: [N, C, H, W] → [N, C]. Backward: dy / (H·W) to every position.</summary>
    public Tensor<T> GlobalAveragePool()
    {
        var x = this;
        Check.Images("global average pool", x);
        int batch = x.Shape[0], channels = x.Shape[1], spatial = x.Shape[2] * x.Shape[3];
        var backend = Device.Backend;
        var y = new Tensor<T>(Device, [batch, channels]);
        backend.GlobalAveragePoolForward(batch, channels, spatial, x.Buffer, y.Buffer);
        return Graph.Record(y, "global average pool", [x], dy =>
        {
            var dx = new Tensor<T>(dy.Device, x.Shape);
            backend.GlobalAveragePoolBackward(batch, channels, spatial, dy.Buffer, dx.Buffer);
            return [dx];
        });
    }
}
