// Host-side checks every tensor op runs before it launches anything: shapes, devices and liveness, each failure
// an exception that names the op and the shapes or devices involved.
using System.Numerics;

namespace Engine.Core.Ops;

internal static class Check
{
    public static void SameShape<T>(string op, Tensor<T> a, string aName, Tensor<T> b, string bName)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (a.Shape != b.Shape)
            throw new ArgumentException($"{op}: {aName} has shape {a.Shape} but {bName} has shape {b.Shape}.");
    }

    public static void SameDevice<T>(string op, Tensor<T> a, Tensor<T> b) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!ReferenceEquals(a.Device, b.Device))
            throw new ArgumentException(
                $"{op}: tensors live on different devices ({a.Device} and {b.Device}); move one first.");
    }

    /// <summary>A batch of images, [N, C, H, W]: what the pooling and shortcut ops take.</summary>
    public static void Images<T>(string op, Tensor<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (x.Rank != 4) throw new ArgumentException($"{op}: input {x.Shape} must be [N, C, H, W].");
    }
}
