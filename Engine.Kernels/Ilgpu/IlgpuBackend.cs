// The ILGPU backend: one ILGPU context and accelerator (CUDA, OpenCL or ILGPU's CPU accelerator), its memory,
// and the cache of loaded kernels. The op families live in the other files of this folder as partial classes,
// each with its kernels beside the host methods that launch them (Backend has checked their arguments).
//
// Launch shape for streaming kernels: a grid-stride loop over `extent` threads, extent = min(n, MaxNumThreads),
// so one launch covers any length, loads are coalesced on a GPU, and the CPU accelerator runs one thread per
// worker instead of simulating millions.
using System.Collections.Concurrent;
using System.Numerics;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Engine.Kernels.Ilgpu;

/// <summary>Which ILGPU accelerator a backend runs on.</summary>
public enum IlgpuKind
{
    /// <summary>NVIDIA GPUs through CUDA (kind <c>cuda</c>).</summary>
    Cuda,

    /// <summary>OpenCL GPUs of any vendor (kind <c>opencl</c>).</summary>
    OpenCL,

    /// <summary>ILGPU's CPU accelerator, which runs the same kernels on managed threads (kind <c>ilgpu-cpu</c>);
    /// always present.</summary>
    Cpu,
}

/// <summary>
/// The backend that runs every op as an ILGPU kernel on one CUDA, OpenCL or CPU accelerator. Create it with
/// <see cref="Create"/>; kernels are compiled on first use and cached per backend.
/// </summary>
public sealed partial class IlgpuBackend : Backend
{
    /// <summary>
    /// The CPU accelerator's shape: 2 threads per warp, 1 warp per multiprocessor, 1 multiprocessor. Measured on
    /// the development machines: ~31 µs per launch against ~290 µs for ILGPU's default CPU device, whose many
    /// simulated threads are all woken for every launch. Kernels size their groups from
    /// <see cref="MaxGroupSize"/>, so they run here with small groups and on a GPU with large ones.
    /// </summary>
    public static CPUDevice CpuDevice => new(numThreadsPerWarp: 2, numWarpsPerMultiprocessor: 1, numMultiprocessors: 1);

    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly ConcurrentDictionary<(string Name, Type Args), Delegate> _kernels = new();
    private readonly int _maxThreads;

    private IlgpuBackend(IlgpuKind kind, Context context, Accelerator accelerator)
    {
        IlgpuKind = kind;
        _context = context;
        _accelerator = accelerator;
        _maxThreads = Math.Max(1, accelerator.MaxNumThreads);
    }

    /// <summary>The accelerator this backend runs on.</summary>
    public IlgpuKind IlgpuKind { get; }

    /// <inheritdoc/>
    public override string Kind => IlgpuKind switch
    {
        IlgpuKind.Cuda => "cuda",
        IlgpuKind.OpenCL => "opencl",
        _ => "ilgpu-cpu",
    };

    /// <summary>The accelerator's name and type, its multiprocessor count and warp size.</summary>
    public override string Description => $"{_accelerator.Name} ({_accelerator.AcceleratorType}, " +
                                 $"{_accelerator.NumMultiprocessors} multiprocessors, warp {_accelerator.WarpSize})";

    /// <inheritdoc/>
    public override int LoadedKernelCount => _kernels.Count;

    /// <summary>The kernels loaded so far, by name (diagnostics and tests).</summary>
    public IEnumerable<string> LoadedKernelNames => _kernels.Keys.Select(key => key.Name);

    /// <summary>Kernel launches queued since the backend was created (each kernel taken from the cache is launched
    /// once; launch counting for `step --count-launches` and the fusion tests).</summary>
    public long LaunchCount { get; private set; }

    /// <summary>Host waits on the device since the backend was created: Synchronize, the waits before every host
    /// copy, and those before a scratch buffer is replaced.</summary>
    public long SynchronizationCount { get; private set; }

    /// <summary>Largest group (thread block) the accelerator allows.</summary>
    public int MaxGroupSize => _accelerator.MaxNumThreadsPerGroup;

    /// <summary>True when ILGPU sees at least one device of <paramref name="kind"/> that it can use.</summary>
    public static bool IsAvailable(IlgpuKind kind)
    {
        if (kind == IlgpuKind.Cpu) return true;
        try
        {
            using var context = CreateContext(kind, CpuDevice);
            return context.Devices.Any(d => d.AcceleratorType == ToAcceleratorType(kind));
        }
        catch (Exception)
        {
            return false; // driver library missing or refused: the kind is simply not present
        }
    }

    /// <summary>Creates a backend on the first device of <paramref name="kind"/>. <paramref name="cpuDevice"/>
    /// overrides the CPU accelerator's shape (tests use a GPU-sized one to run the kernels with 16x16 groups).</summary>
    /// <exception cref="InvalidOperationException">No such device is present.</exception>
    public static IlgpuBackend Create(IlgpuKind kind, CPUDevice? cpuDevice = null)
    {
        var context = CreateContext(kind, cpuDevice ?? CpuDevice);
        try
        {
            var device = context.Devices.FirstOrDefault(d => d.AcceleratorType == ToAcceleratorType(kind))
                         ?? throw new InvalidOperationException(
                             $"No {kind} device is present (ILGPU found: " +
                             $"{string.Join(", ", context.Devices.Select(d => $"{d.AcceleratorType} '{d.Name}'"))}).");
            return new IlgpuBackend(kind, context, device.CreateAccelerator(context));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    private static Context CreateContext(IlgpuKind kind, CPUDevice cpuDevice) => Context.Create(builder =>
    {
        builder.EnableAlgorithms(); // XMath intrinsics (exp, log, sqrt) for every backend
        builder.Optimize(OptimizationLevel.O2);
        FusedMultiplyAdd.Register(builder); // fma.rn for the tiled GEMM on CUDA
        _ = kind switch
        {
            IlgpuKind.Cuda => builder.Cuda(),
            IlgpuKind.OpenCL => builder.OpenCL(),
            _ => builder.CPU(cpuDevice),
        };
    });

    private static AcceleratorType ToAcceleratorType(IlgpuKind kind) => kind switch
    {
        IlgpuKind.Cuda => AcceleratorType.Cuda,
        IlgpuKind.OpenCL => AcceleratorType.OpenCL,
        _ => AcceleratorType.CPU,
    };

    /// <summary>Allocates <paramref name="length"/> uninitialised elements of accelerator memory.</summary>
    protected override DeviceBuffer<T> AllocateCore<T>(long length) =>
        new IlgpuBuffer<T>(this, _accelerator.Allocate1D<T>(length));

    /// <summary>Waits for the accelerator's default stream.</summary>
    protected override void SynchronizeCore()
    {
        SynchronizationCount++;
        _accelerator.Synchronize();
    }

    /// <summary>
    /// Returns the kernel cached under (<paramref name="name"/>, <typeparamref name="TArgs"/>), loading it on first
    /// use, for exactly one launch (it counts one in <see cref="LaunchCount"/>: take it again for each launch).
    /// <paramref name="load"/> should be a static lambda so the hot path allocates nothing.
    /// </summary>
    private TKernel Kernel<TArgs, TKernel>(string name, Func<Accelerator, TKernel> load) where TKernel : Delegate
    {
        LaunchCount++;
        return (TKernel)_kernels.GetOrAdd((name, typeof(TArgs)), static (_, state) => state.load(state.accelerator),
            (load, accelerator: _accelerator));
    }

    /// <summary>Threads for a grid-stride launch over <paramref name="n"/> elements.</summary>
    private int StreamExtent(long n) => (int)Math.Min(n, _maxThreads);

    /// <summary>The dense view behind a buffer of this backend.</summary>
    private static ArrayView<T> View<T>(DeviceBuffer<T> buffer) where T : unmanaged =>
        ((IlgpuBuffer<T>)buffer).Memory.View;

    /// <summary>Drops the loaded kernels and releases the accelerator and the ILGPU context.</summary>
    protected override void DisposeCore()
    {
        _kernels.Clear();
        _accelerator.Dispose();
        _context.Dispose();
    }

    /// <summary>Device memory of an <see cref="IlgpuBackend"/>.</summary>
    private sealed class IlgpuBuffer<T>(IlgpuBackend backend, MemoryBuffer1D<T, Stride1D.Dense> memory)
        : DeviceBuffer<T> where T : unmanaged
    {
        public MemoryBuffer1D<T, Stride1D.Dense> Memory { get; } = memory;
        public override long Length => Memory.Length;
        public override Backend Backend => backend;
        public override bool IsDisposed => Memory.IsDisposed;

        protected internal override void CopyFromHostCore(ReadOnlySpan<T> source)
        {
            backend.SynchronizeCore();
            Memory.View.BaseView.CopyFromCPU(source);
        }

        protected internal override void CopyToHostCore(Span<T> destination)
        {
            backend.SynchronizeCore();
            Memory.View.BaseView.CopyToCPU(destination);
        }

        public override void Dispose() => Memory.Dispose();
    }
}
