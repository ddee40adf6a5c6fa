// Tensor<T>: a dense, row-major (NCHW for images) array of float or double on one device, with the autograd
// fields (RequiresGrad, Grad, the node that produced it). Ops live in Ops/*.cs as further parts of this class;
// the static class Tensor creates tensors (from arrays, zeros/ones/full, seeded normal/uniform).
//
// Memory: a tensor's buffer comes from its device's pool and goes back on Dispose. Tensors created inside a
// TensorScope are disposed with it; parameters and gradients are created outside any scope and live until
// disposed explicitly.
using System.Numerics;
using Engine.Core.Autograd;
using Engine.Kernels;

namespace Engine.Core;

/// <summary>A dense, row-major (NCHW for images) array of float or double on one <see cref="Engine.Core.Device"/>,
/// with its autograd state; the counterpart of torch.Tensor. Create one with the static <see cref="Tensor"/> class;
/// ops (Ops/*.cs) record a backward when grad mode is on and an input requires grad. Its buffer goes back to the
/// device's pool on <see cref="Dispose"/>, or when the <see cref="TensorScope"/> it was created in ends.</summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/> (any other type throws
/// <see cref="NotSupportedException"/> on creation).</typeparam>
public sealed partial class Tensor<T> : ITensorScoped where T : unmanaged, IFloatingPointIeee754<T>
{
    private DeviceBuffer<T>? _buffer;
    private bool _requiresGrad;
    private List<IDisposable>? _attachments;

    internal Tensor(Device device, Shape shape, bool inScope = true)
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
            throw new NotSupportedException($"Tensor element type must be float or double; got {typeof(T).Name}.");
        Device = device;
        Shape = shape;
        _buffer = device.Rent<T>(shape.Length);
        if (inScope) TensorScope.Adopt(this);
    }

    /// <summary>The device that holds the data and runs this tensor's ops; every input of an op must share it.</summary>
    public Device Device { get; }

    /// <summary>The dimensions, outermost first (NCHW for images).</summary>
    public Shape Shape { get; }

    /// <summary>Number of elements.</summary>
    public long Length => Shape.Length;

    /// <summary>Number of dimensions (0 for a scalar).</summary>
    public int Rank => Shape.Rank;

    /// <summary>float32 or float64.</summary>
    public string DType => DTypeName;

    internal static string DTypeName => typeof(T) == typeof(float) ? "float32" : "float64";

    /// <summary>The scope that disposes this tensor when it ends, or null when it lives until disposed explicitly
    /// (parameters, gradients, tensors created outside any scope or moved out with
    /// <see cref="TensorScope.Keep{T}"/>).</summary>
    public TensorScope? Scope { get; internal set; }

    TensorScope? ITensorScoped.Scope
    {
        get => Scope;
        set => Scope = value;
    }

    /// <summary>True once the buffer went back to the pool; any further access to the data throws
    /// <see cref="ObjectDisposedException"/>.</summary>
    public bool IsDisposed => _buffer is null;

    internal DeviceBuffer<T> Buffer => _buffer ?? throw new ObjectDisposedException(
        nameof(Tensor<T>), $"Tensor {Shape} {DType} on {Device} has been disposed.");

    /// <summary>Whether gradients flow to this tensor. Settable on leaves only (tensors no op produced).</summary>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (!IsLeaf)
                throw new InvalidOperationException(
                    $"RequiresGrad can only be set on leaf tensors; this {Shape} tensor was produced by '{Node!.Op}'.");
            _requiresGrad = value;
        }
    }

    /// <summary>Accumulated gradient of a leaf after Backward; null until then.</summary>
    public Tensor<T>? Grad { get; internal set; }

    /// <summary>Counts in-place writes, so that a backward can tell that a tensor it saved has changed since.</summary>
    internal int Version { get; private set; }

    /// <summary>The op that produced this tensor, or null for a leaf.</summary>
    internal GradNode<T>? Node { get; private set; }

    /// <summary>True when no recorded op produced this tensor (created from data, a parameter, or computed with grad
    /// mode off or from inputs that do not require grad), as torch.Tensor.is_leaf. Backward accumulates into the
    /// <see cref="Grad"/> of leaves only.</summary>
    public bool IsLeaf => Node is null;

    /// <summary>Attaches the op that produced this tensor (called by ops when grad mode is on).</summary>
    internal void SetNode(GradNode<T> node)
    {
        Node = node;
        NodeVersion = Version;
        _requiresGrad = true;
    }

    /// <summary>This tensor's version when its node was attached.</summary>
    internal int NodeVersion { get; private set; }

    /// <summary>Ties <paramref name="resource"/> (e.g. what an op saved for its backward) to this tensor's
    /// lifetime: it is disposed with the tensor.</summary>
    internal void Attach(IDisposable resource) => (_attachments ??= []).Add(resource);

    /// <summary>A device buffer of another element type (labels, argmax indices) that lives as long as this
    /// tensor.</summary>
    internal DeviceBuffer<TOther> AttachBuffer<TOther>(long length) where TOther : unmanaged
    {
        var buffer = Device.Rent<TOther>(length);
        Attach(new PooledBuffer<TOther>(Device, buffer));
        return buffer;
    }

    /// <summary>Returns a rented buffer to its device's pool when disposed.</summary>
    private sealed class PooledBuffer<TOther>(Device device, DeviceBuffer<TOther> buffer) : IDisposable
        where TOther : unmanaged
    {
        private DeviceBuffer<TOther>? _buffer = buffer;

        public void Dispose()
        {
            var taken = Interlocked.Exchange(ref _buffer, null);
            if (taken is not null) device.Return(taken);
        }
    }

    /// <summary>Copies the data to a new host array.</summary>
    public T[] ToArray()
    {
        var data = Tensor.HostArray<T>(Shape);
        Buffer.CopyToHost(data);
        return data;
    }

    /// <summary>The value of a one-element tensor.</summary>
    public T Item()
    {
        if (Length != 1)
            throw new InvalidOperationException($"Item() needs a one-element tensor; this one has shape {Shape}.");
        return ToArray()[0];
    }

    /// <summary>Overwrites the data from the host (no gradient is recorded).</summary>
    public void CopyFrom(ReadOnlySpan<T> data)
    {
        CheckInPlace("CopyFrom");
        if (data.Length != Length)
            throw new ArgumentException($"CopyFrom: {data.Length} values given for a tensor of shape {Shape}.");
        Buffer.CopyFromHost(data);
    }

    /// <summary>Drops the accumulated gradient.</summary>
    public void ZeroGrad()
    {
        Grad?.Dispose();
        Grad = null;
    }

    /// <summary>Before an in-place write: refused on a graph's tensors while grad mode is on; otherwise allowed,
    /// and counted (<see cref="Version"/>), so that a backward that saved this tensor refuses to run on the
    /// changed values.</summary>
    internal void CheckInPlace(string op)
    {
        if (GradMode.IsEnabled && !IsLeaf)
            throw new InvalidOperationException(
                $"{op}: in-place write to a {Shape} tensor produced by '{Node!.Op}' would corrupt its graph.");
        if (GradMode.IsEnabled && RequiresGrad)
            throw new InvalidOperationException(
                $"{op}: in-place write to a leaf {Shape} tensor that requires grad; wrap it in GradMode.NoGrad().");
        Version++;
    }

    /// <summary>Shape, element type and device, e.g. <c>Tensor [2, 3] float32 on cuda#1</c> (never the data).</summary>
    public override string ToString() => $"Tensor {Shape} {DType} on {Device}";

    /// <summary>Returns the buffer to the device's pool and disposes the gradient and whatever an op saved for the
    /// backward with it; the graph link is dropped. Disposing twice has no further effect.</summary>
    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is null) return;
        Device.Return(buffer);
        if (_attachments is not null)
            foreach (var attachment in _attachments) attachment.Dispose();
        _attachments = null;
        Grad?.Dispose();
        Grad = null;
        Node = null;
    }
}

/// <summary>Creates tensors.</summary>
public static class Tensor
{
    /// <summary>A tensor holding <paramref name="data"/> (row-major) with the given shape.</summary>
    public static Tensor<T> FromArray<T>(T[] data, Shape shape, Device? device = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.LongLength != shape.Length)
            throw new ArgumentException($"FromArray: {data.Length} values do not fill shape {shape} ({shape.Length}).");
        var tensor = new Tensor<T>(device ?? Device.Default, shape);
        tensor.Buffer.CopyFromHost(data);
        return tensor;
    }

    /// <summary>A tensor with every element equal to <paramref name="value"/>.</summary>
    public static Tensor<T> Full<T>(Shape shape, T value, Device? device = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tensor = new Tensor<T>(device ?? Device.Default, shape);
        tensor.Device.Backend.Fill(tensor.Buffer, value);
        return tensor;
    }

    /// <summary>A tensor of zeros, as torch.zeros.</summary>
    public static Tensor<T> Zeros<T>(Shape shape, Device? device = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        Full(shape, T.Zero, device);

    /// <summary>A tensor of ones, as torch.ones.</summary>
    public static Tensor<T> Ones<T>(Shape shape, Device? device = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        Full(shape, T.One, device);

    /// <summary>Samples of N(mean, std²) from the engine's own seeded generator (SplitMix64, Box–Muller): the same
    /// seed gives the same tensor on every device and every .NET version.</summary>
    public static Tensor<T> RandomNormal<T>(Shape shape, int seed, double mean = 0, double std = 1,
        Device? device = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new DeterministicRandom((long)RandomStream.Tensor, seed);
        var data = HostArray<T>(shape);
        for (int i = 0; i < data.Length; i++) data[i] = T.CreateChecked(mean + std * random.NextNormal());
        return FromArray(data, shape, device);
    }

    /// <summary>Samples of U[low, high) from the engine's own seeded generator (SplitMix64).</summary>
    public static Tensor<T> RandomUniform<T>(Shape shape, int seed, double low = 0, double high = 1,
        Device? device = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new DeterministicRandom((long)RandomStream.Tensor, seed);
        var data = HostArray<T>(shape);
        for (int i = 0; i < data.Length; i++) data[i] = T.CreateChecked(low + (high - low) * random.NextDouble());
        return FromArray(data, shape, device);
    }

    /// <summary>A host array for every element of <paramref name="shape"/>, or an ArgumentException naming the shape
    /// when a .NET array cannot hold that many.</summary>
    internal static T[] HostArray<T>(Shape shape) =>
        shape.Length <= Array.MaxLength
            ? new T[shape.Length]
            : throw new ArgumentException($"A tensor of shape {shape} has {shape.Length:N0} elements; a host array " +
                                          $"holds at most {Array.MaxLength:N0}.", nameof(shape));

    /// <summary>A tensor that belongs to no scope (parameters, gradients, anything long-lived).</summary>
    internal static Tensor<T> Unscoped<T>(Shape shape, Device device) where T : unmanaged, IFloatingPointIeee754<T> =>
        new(device, shape, inScope: false);
}
