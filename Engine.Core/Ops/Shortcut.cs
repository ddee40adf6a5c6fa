// The paper's option-A shortcut with its gradient: x [N, C, H, W] → [N, K, ⌈H/s⌉, ⌈W/s⌉], subsampled by the
// stride with the K − C extra channels zero (split evenly before and after the input's, as the common PyTorch
// CIFAR ResNets do).
using Engine.Core.Autograd;
using Engine.Core.Ops;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>Option-A shortcut to <paramref name="outChannels"/> channels. Backward: dy at the kept positions
    /// and channels.</summary>
    public Tensor<T> ZeroPadShortcut(int outChannels, int stride)
    {
        var x = this;
        Check.Images("shortcut A", x);
        var g = ShortcutGeometry.Centered(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], outChannels, stride);
        var backend = Device.Backend;
        var y = new Tensor<T>(Device, [g.Batch, g.OutChannels, g.OutHeight, g.OutWidth]);
        backend.ShortcutForward(g, x.Buffer, y.Buffer);
        return Graph.Record(y, "shortcut A", [x], dy =>
        {
            var dx = new Tensor<T>(dy.Device, x.Shape);
            backend.ShortcutBackward(g, dy.Buffer, dx.Buffer);
            return [dx];
        });
    }
}
