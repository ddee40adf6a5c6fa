// Host-side checks: the argument checks Backend's public ops run once before calling a backend (a kernel never sees a
// buffer it could overrun: a wrong length, a disposed buffer or a buffer of another backend is an exception naming
// the op and the argument), and the label-value check that Engine.Core runs before it uploads labels.
using System.Numerics;

namespace Engine.Kernels;

/// <summary>Host-side argument checks; each failure names the op and the argument. <see cref="Labels"/> is for
/// callers of the backend; the rest serve <see cref="Backend"/>'s ops.</summary>
public static class Validate
{
    /// <summary>Checks that <paramref name="buffer"/> is live, belongs to <paramref name="backend"/> and has
    /// exactly <paramref name="expectedLength"/> elements.</summary>
    internal static void Buffer<T>(Backend backend, string op, string name, DeviceBuffer<T> buffer, long expectedLength)
        where T : unmanaged
    {
        Owned(backend, op, name, buffer);
        if (buffer.Length != expectedLength)
            throw new ArgumentException(
                $"{op}: buffer '{name}' has {buffer.Length} elements, expected {expectedLength}.", name);
    }

    /// <summary>Checks that <paramref name="buffer"/> is live and belongs to <paramref name="backend"/>.</summary>
    internal static void Owned<T>(Backend backend, string op, string name, DeviceBuffer<T> buffer)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (buffer.IsDisposed)
            throw new ObjectDisposedException(name, $"{op}: buffer '{name}' has been disposed.");
        if (!ReferenceEquals(buffer.Backend, backend))
            throw new ArgumentException(
                $"{op}: buffer '{name}' lives on {buffer.Backend.Kind}, not on {backend.Kind}.", name);
    }

    /// <summary>Checks the extents of an [N, C, HW] tensor: none negative (two negative factors would make a
    /// positive length that passes the buffer checks).</summary>
    internal static void Extents(string op, int batch, int channels, int spatial)
    {
        if (batch < 0 || channels < 0 || spatial < 0)
            throw new ArgumentException($"{op}: negative extent (N={batch}, C={channels}, HW={spatial}).");
    }

    /// <summary>Checks the extents of global average pooling's [N, C, H·W] input: an empty batch is allowed (an empty
    /// output), an empty plane or no channel is not (as PyTorch's adaptive average pooling; a mean over nothing
    /// would be 0/0).</summary>
    internal static void GlobalPoolExtents(string op, int batch, int channels, int spatial)
    {
        if (batch < 0 || channels < 1 || spatial < 1)
            throw new ArgumentException($"{op}: input [N, C, H·W] = [{batch}, {channels}, {spatial}] needs at least " +
                                        "one channel and a non-empty plane.");
    }

    /// <summary>Checks batch-norm's running-statistics momentum: in [0, 1] (0 keeps the running statistics, 1
    /// replaces them by the batch's).</summary>
    internal static void Momentum(string op, double momentum)
    {
        if (!(momentum >= 0 && momentum <= 1))
            throw new ArgumentException($"{op}: momentum {momentum} must lie in [0, 1].", nameof(momentum));
    }

    /// <summary>Checks batch-norm's epsilon, added to the variance under the square root: positive and
    /// finite.</summary>
    internal static void Epsilon(string op, double epsilon)
    {
        if (!(epsilon > 0 && double.IsFinite(epsilon)))
            throw new ArgumentException($"{op}: epsilon {epsilon} must be positive and finite.", nameof(epsilon));
    }

    /// <summary>Checks that every label lies in [0, classes): THE check of label values, run on the host by
    /// Engine.Core's cross-entropy and top-k before the labels are uploaded. The backends take a label buffer on
    /// trust (checking its length only): reading it back to check would synchronise the device on every loss. A
    /// kernel that still meets a label outside [0, classes) (a caller of Backend that skipped this check) reads no
    /// logit with it and writes NaN or "not correct" for that sample.</summary>
    /// <exception cref="ArgumentException">A label is outside [0, classes); the message names the op, the label,
    /// its sample index and the class count.</exception>
    public static void Labels(string op, ReadOnlySpan<int> labels, int classes)
    {
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classes)
                throw new ArgumentException($"{op}: label {labels[i]} of sample {i} is outside [0, {classes}).");
    }

    /// <summary>Checks the buffers of parameter <paramref name="i"/> of an Adam step (named as entry i of the
    /// op's lists): grad and both moments as long as param, the maximum of the second moment present (and as long)
    /// exactly when AMSGrad is on, and the five buffers distinct.</summary>
    internal static void AdamBuffers<T>(Backend backend, string op, AdamParameters p, int i, DeviceBuffer<T> param,
        DeviceBuffer<T> grad, DeviceBuffer<T> expAvg, DeviceBuffer<T> expAvgSq, DeviceBuffer<T>? maxExpAvgSq)
        where T : unmanaged
    {
        SameLength(backend, op, param, $"parameters[{i}]", grad, $"grads[{i}]", expAvg, $"expAvgs[{i}]");
        Buffer(backend, op, $"expAvgSqs[{i}]", expAvgSq, param.Length);
        if (p.Amsgrad)
        {
            if (maxExpAvgSq is null)
                throw new ArgumentException(
                    $"{op}: AMSGrad needs a buffer for the maximum of the second moment of parameter {i}.",
                    "maxExpAvgSqs");
            Buffer(backend, op, $"maxExpAvgSqs[{i}]", maxExpAvgSq, param.Length);
        }
        else if (maxExpAvgSq is not null)
            throw new ArgumentException(
                $"{op}: a maximum of the second moment was given for parameter {i} but AMSGrad is off.",
                "maxExpAvgSqs");
        DeviceBuffer<T>?[] buffers = [param, grad, expAvg, expAvgSq, maxExpAvgSq];
        for (int a = 0; a < buffers.Length; a++)
            for (int b = a + 1; b < buffers.Length; b++)
                if (buffers[a] is not null && ReferenceEquals(buffers[a], buffers[b]))
                    throw new ArgumentException($"{op}: the param, grad, expAvg, expAvgSq and maxExpAvgSq of " +
                                                $"parameter {i} must be distinct buffers.", "parameters");
    }

    /// <summary>Checks that two buffers have the same number of elements.</summary>
    internal static void SameLength<T>(Backend backend, string op, DeviceBuffer<T> a, string aName,
        DeviceBuffer<T> b, string bName) where T : unmanaged
    {
        Owned(backend, op, aName, a);
        Buffer(backend, op, bName, b, a.Length);
    }

    /// <summary>Checks that three buffers have the same number of elements.</summary>
    internal static void SameLength<T>(Backend backend, string op, DeviceBuffer<T> a, string aName,
        DeviceBuffer<T> b, string bName, DeviceBuffer<T> c, string cName) where T : unmanaged
    {
        SameLength(backend, op, a, aName, b, bName);
        Buffer(backend, op, cName, c, a.Length);
    }
}
