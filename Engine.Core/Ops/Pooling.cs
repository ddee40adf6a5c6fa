// Pooling with gradients: max-pool (square window, stride, symmetric padding) and global average pooling
// ([N, C, H, W] → [N, C]).
using Engine.Core.Autograd;
using Engine.Core.Ops;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>Max pooling of x [N, C, H, W]. Backward: dy goes to each window's maximum (first on ties).</summary>
    public Tensor<T> MaxPool2d(int kernel, int stride, int padding = 0)
    {
        var x = this;
        Check.Images("max-pool", x);
        var g = new PoolGeometry(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], kernel, stride, padding).Validated();
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
