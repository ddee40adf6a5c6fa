// Device: where tensors live and ops run. A device wraps one backend (for the ILGPU kinds: one ILGPU context and
// accelerator with its cache of loaded kernels) and a pool of freed buffers, so that a training loop reuses memory
// instead of allocating it.
//
// Backends are made by Engine.Kernels' Backends factory; this file knows only Backend. Kinds: cuda and opencl (ILGPU kernels on a GPU), cpu (the managed-SIMD CPU backend) and ilgpu-cpu (the same
// ILGPU kernels on ILGPU's CPU accelerator: slow, for verifying them). Chosen, in order of precedence: explicitly
// by API (Device.Create) or by a CLI flag (Device.Select("--device" value)), by the ENGINE_DEVICE environment
// variable, or by default: CUDA, then OpenCL, then cpu. SelectionReason says which rule picked it.
using System.Numerics;
using System.Runtime.CompilerServices;
using Engine.Kernels;

namespace Engine.Core;

/// <summary>Where tensors live and ops run: one backend (ILGPU on cuda, opencl or ilgpu-cpu; the managed-SIMD
/// backend on cpu) plus a pool of freed buffers that tensors of the same length reuse. Counterpart of
/// torch.device, except that it owns its resources: disposing it frees the backend and the pool. Safe to use from
/// several threads: the backend runs one op at a time and the pool is locked; each thread keeps its own tensors.</summary>
public sealed class Device : IDisposable
{
    /// <summary>Environment variable naming the default device kind.</summary>
    public const string EnvironmentVariable = "ENGINE_DEVICE";

    /// <summary>Every device kind.</summary>
    public static IReadOnlyList<string> Kinds => Backends.Kinds;

    /// <summary>The kinds the default tries, in order.</summary>
    public static IReadOnlyList<string> DefaultOrder { get; } = ["cuda", "opencl", "cpu"];

    private static readonly Lock DefaultLock = new();
    private static Device? _default;
    private static int _nextId;

    private readonly Lock _poolLock = new();
    private readonly Dictionary<(Type Element, long Length), Stack<object>> _pool = new();
    private long _liveBuffers;
    private long _pooledBuffers;
    private bool _disposed;

    private Device(Backend backend, string selectionReason)
    {
        Backend = backend;
        SelectionReason = selectionReason;
        Id = Interlocked.Increment(ref _nextId);
    }

    /// <summary>The backend that runs this device's ops.</summary>
    public Backend Backend { get; }

    /// <summary>Device kind: cuda, opencl, cpu or ilgpu-cpu.</summary>
    public string Kind => Backend.Kind;

    /// <summary>Distinguishes devices of the same kind in messages.</summary>
    public int Id { get; }

    /// <summary>Why this device was chosen (API, CLI flag, environment variable, or the default order).</summary>
    public string SelectionReason { get; }

    /// <summary>Buffers handed out and not yet returned.</summary>
    public long LiveBuffers => Interlocked.Read(ref _liveBuffers);

    /// <summary>Freed buffers kept for reuse.</summary>
    public long PooledBuffers => Interlocked.Read(ref _pooledBuffers);

    /// <summary>Kind and id, e.g. <c>cuda#1</c>.</summary>
    public override string ToString() => $"{Kind}#{Id}";

    /// <summary>True when a device of <paramref name="kind"/> is present on this machine.</summary>
    /// <exception cref="ArgumentException">Unknown kind.</exception>
    public static bool IsAvailable(string kind) => Backends.IsAvailable(kind);

    /// <summary>Creates a device of the given kind.</summary>
    /// <exception cref="ArgumentException">Unknown kind.</exception>
    /// <exception cref="InvalidOperationException">The kind is not present on this machine.</exception>
    public static Device Create(string kind, string selectionReason = "chosen by API") =>
        new(Backends.Create(kind), selectionReason);

    /// <summary>A device over an existing backend (e.g. a specially configured one); the device owns it.</summary>
    public static Device FromBackend(Backend backend, string selectionReason = "chosen by API") =>
        new(backend, selectionReason);

    /// <summary>
    /// The device for a program: <paramref name="requested"/> (a CLI flag's value) if given, else
    /// ENGINE_DEVICE if set, else the first kind present in <see cref="DefaultOrder"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The requested or ENGINE_DEVICE kind is unknown.</exception>
    /// <exception cref="InvalidOperationException">The requested or ENGINE_DEVICE kind is not present, or no
    /// kind of the default order is.</exception>
    public static Device Select(string? requested)
    {
        if (!string.IsNullOrWhiteSpace(requested))
            return Create(requested, $"chosen by --device {requested}");
        string? fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
            return Create(fromEnvironment, $"chosen by {EnvironmentVariable}={fromEnvironment}");
        var absent = new List<string>();
        foreach (string kind in DefaultOrder)
        {
            if (IsAvailable(kind))
                return Create(kind, absent.Count == 0
                    ? $"default: first of {string.Join(", ", DefaultOrder)}"
                    : $"default: no {string.Join(" or ", absent)} device present");
            absent.Add(kind);
        }
        throw new InvalidOperationException("No device is present.");
    }

    /// <summary>The process-wide default device (see <see cref="Select"/>), created on first use.</summary>
    public static Device Default
    {
        get
        {
            lock (DefaultLock) return _default ??= Select(null);
        }
    }

    /// <summary>A buffer of exactly <paramref name="length"/> elements, reused from the pool when one is free.
    /// Its contents are undefined.</summary>
    internal DeviceBuffer<T> Rent<T>(long length) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Interlocked.Increment(ref _liveBuffers);
        lock (_poolLock)
        {
            if (_pool.TryGetValue((typeof(T), length), out var stack) && stack.Count > 0)
            {
                _pooledBuffers--;
                return (DeviceBuffer<T>)stack.Pop();
            }
        }
        try
        {
            return Backend.Allocate<T>(length);
        }
        catch (OutOfMemoryException)
        {
            Interlocked.Decrement(ref _liveBuffers);
            throw new OutOfMemoryException($"{this}: cannot allocate {length:N0} elements of {typeof(T).Name} " +
                                           $"({(double)length * Unsafe.SizeOf<T>() / (1 << 30):N2} GiB).");
        }
    }

    /// <summary>Gives a buffer back for reuse.</summary>
    internal void Return<T>(DeviceBuffer<T> buffer) where T : unmanaged
    {
        Interlocked.Decrement(ref _liveBuffers);
        if (_disposed)
        {
            buffer.Dispose();
            return;
        }
        lock (_poolLock)
        {
            var key = (typeof(T), buffer.Length);
            if (!_pool.TryGetValue(key, out var stack)) _pool[key] = stack = new Stack<object>();
            stack.Push(buffer);
            _pooledBuffers++;
        }
    }

    /// <summary>Frees every pooled buffer (live tensors are untouched).</summary>
    public void ReleasePooledBuffers()
    {
        lock (_poolLock)
        {
            foreach (var stack in _pool.Values)
                foreach (var buffer in stack)
                    ((IDisposable)buffer).Dispose();
            _pool.Clear();
            _pooledBuffers = 0;
        }
    }

    /// <summary>Waits for every queued op.</summary>
    public void Synchronize() => Backend.Synchronize();

    /// <summary>Frees the pooled buffers and the backend; buffers of live tensors are freed as those tensors are
    /// disposed. If this was the default device, the next <see cref="Default"/> selects a new one.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        ReleasePooledBuffers();
        _disposed = true;
        Backend.Dispose();
        lock (DefaultLock)
            if (ReferenceEquals(_default, this)) _default = null;
    }
}
