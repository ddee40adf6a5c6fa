// Host-side checks that every backend runs before any launch. A kernel never sees a buffer it could overrun:
// a wrong length, a disposed buffer or a buffer of another backend is an ArgumentException naming what was wrong.
using System.Numerics;

namespace Engine.Kernels;

public static class Validate
{
    /// <summary>Checks that <paramref name="buffer"/> is live, belongs to <paramref name="backend"/> and has
    /// exactly <paramref name="expectedLength"/> elements.</summary>
    public static void Buffer<T>(IBackend backend, string op, string name, DeviceBuffer<T> buffer, long expectedLength)
        where T : unmanaged
    {
        Owned(backend, op, name, buffer);
        if (buffer.Length != expectedLength)
            throw new ArgumentException(
                $"{op}: buffer '{name}' has {buffer.Length} elements, expected {expectedLength}.", name);
    }

    /// <summary>Checks that <paramref name="buffer"/> is live and belongs to <paramref name="backend"/>.</summary>
    public static void Owned<T>(IBackend backend, string op, string name, DeviceBuffer<T> buffer)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (buffer.IsDisposed)
            throw new ObjectDisposedException(name, $"{op}: buffer '{name}' has been disposed.");
        if (!ReferenceEquals(buffer.Backend, backend))
            throw new ArgumentException(
                $"{op}: buffer '{name}' lives on {buffer.Backend.Kind}, not on {backend.Kind}.", name);
    }

    /// <summary>Checks that two buffers have the same number of elements.</summary>
    public static void SameLength<T>(IBackend backend, string op, DeviceBuffer<T> a, string aName,
        DeviceBuffer<T> b, string bName) where T : unmanaged
    {
        Owned(backend, op, aName, a);
        Buffer(backend, op, bName, b, a.Length);
    }

    /// <summary>Checks that three buffers have the same number of elements.</summary>
    public static void SameLength<T>(IBackend backend, string op, DeviceBuffer<T> a, string aName,
        DeviceBuffer<T> b, string bName, DeviceBuffer<T> c, string cName) where T : unmanaged
    {
        SameLength(backend, op, a, aName, b, bName);
        Buffer(backend, op, cName, c, a.Length);
    }
}
