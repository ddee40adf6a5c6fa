// The managed-SIMD CPU backend: buffers in 64-byte-aligned native memory, a pool of worker threads sized to the
// cores, and per-worker scratch memory reused by every op. The op families live in the other files of this folder
// as partial classes, each with its forward and backward side by side.
//
// Every op runs synchronously on the calling thread and its helpers, so Synchronize has nothing to wait for.
// Work is cut into tasks whose results do not depend on which thread runs them or in which order they are claimed:
// a task owns its outputs and sums in a fixed order, so the same inputs give the same bits on every run.
//
// float is the fast path: a packed GEMM with AVX-512 (8x32 micro-tiles) or AVX2+FMA (6x16) for Gemm and the
// convolutions (Gemm.cs, Convolution.cs). double (used for gradient checks), and float on a CPU with neither, take
// plain generic loops beside them that compute the same math. The other families are generic over T, with
// Vector256<T> loops where they stream.
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

/// <summary>
/// The managed-SIMD CPU backend (kind <c>cpu</c>): native 64-byte-aligned buffers, one worker thread per core, and a
/// packed AVX-512 or AVX2+FMA GEMM for float. Every op runs synchronously and gives the same bits on every run.
/// </summary>
public sealed unsafe partial class CpuBackend : Backend
{
    private readonly WorkerPool _pool;
    private readonly Scratch[] _scratch;

    /// <summary>Starts one helper thread per core but one (the calling thread is the other worker).</summary>
    public CpuBackend() : this(Environment.ProcessorCount) { }

    /// <summary>Runs ops on <paramref name="threads"/> workers: the calling thread and threads − 1 helpers (as
    /// torch.set_num_threads). Results are bit-identical for every thread count.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> is below 1.</exception>
    public CpuBackend(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        _pool = new WorkerPool(threads);
        _scratch = new Scratch[_pool.ThreadCount];
        for (int i = 0; i < _scratch.Length; i++) _scratch[i] = new Scratch();
    }

    /// <summary>Always <c>cpu</c>.</summary>
    public override string Kind => "cpu";

    /// <summary>The float GEMM's instruction set and micro-tile, and the thread count; "scalar loops" on a CPU with
    /// neither AVX-512 nor AVX2+FMA.</summary>
    public override string Description => PackedGemm.IsSupported
        ? $"Managed SIMD CPU ({PackedGemm.InstructionSet}, {PackedGemm.TileRows}x{PackedGemm.TileColumns} GEMM " +
          $"micro-tiles for float; {_pool.ThreadCount} threads on {Environment.ProcessorCount} cores)"
        : $"Managed CPU (scalar loops; {_pool.ThreadCount} threads on {Environment.ProcessorCount} cores)";

    /// <summary>Nothing is compiled at run time beyond the .NET JIT.</summary>
    public override int LoadedKernelCount => 0;

    /// <summary>Threads that run the tasks of one op (the caller and its helpers).</summary>
    public int ThreadCount => _pool.ThreadCount;

    /// <summary>Allocates <paramref name="length"/> uninitialised elements of native memory, 64-byte aligned.</summary>
    protected override DeviceBuffer<T> AllocateCore<T>(long length) => new CpuBuffer<T>(this, length);

    /// <summary>Nothing to wait for: every op has finished when it returns.</summary>
    protected override void SynchronizeCore() { }

    /// <summary>Stops the worker threads and frees their scratch memory; buffers keep their own memory until they are
    /// disposed.</summary>
    protected override void DisposeCore()
    {
        _pool.Dispose();
        foreach (var scratch in _scratch) scratch.Dispose();
    }

    /// <summary>Outputs of at least this many bytes (2 MiB: more than two cores' L2 hold) are written in
    /// non-temporal stores where an op writes whole cache lines (Winograd's output transform, batch-norm's y, dx and
    /// residual gradient): they would reach memory before their reader came anyway, and streamed they skip the read
    /// that fetches each line before it is written. ResNet-20 at batch 128 (outputs of 2, 4 and 8 MiB), in one
    /// process: training 105.6 → 100.3 ms a step, inference 30.3 → 29.0 ms.</summary>
    internal const long StreamedOutputBytes = 2 << 20;

    /// <summary>Whether an output of <paramref name="elements"/> values of <paramref name="elementSize"/> bytes is
    /// written past the caches (<see cref="StreamedOutputBytes"/>).</summary>
    private static bool Streams(long elements, int elementSize) => elements * elementSize >= StreamedOutputBytes;

    /// <summary>The memory behind a buffer already validated as owned by this backend.</summary>
    private static T* Data<T>(DeviceBuffer<T> buffer) where T : unmanaged => ((CpuBuffer<T>)buffer).Data;

    // Scratch slots: buffers one task needs at the same time. PartialsSlot of worker 0 belongs to the calling
    // thread, which sets it up before a run (per-chunk or per-slice partial sums) and reads it afterwards; so do
    // PackedASlot and SharedBSlot of worker 0 (a GEMM's packed A, and its B when every row part reads it: read by
    // every task; a strided data gradient's packed wᵀ in PackedASlot too). ColumnsSlot holds a task's columns (the
    // strided data gradient, Winograd) or its phases' outputs (the direct stride-2 data gradient): a different op
    // each, never nested.
    private const int PackedBSlot = 0, PackedASlot = 1, EdgeTileSlot = 2, PartialsSlot = 3, PackWorkSlot = 4,
        ColumnsSlot = 5, DirectSourceSlot = 6, DirectWeightSlot = 7, DirectOffsetSlot = 8, PoolColumnsSlot = 9,
        SharedBSlot = 10, TaskASlot = 11;

    /// <summary>Scratch memory of one worker: at least <paramref name="bytes"/>, 64-byte aligned, kept for reuse.</summary>
    private void* WorkerScratch(int worker, int slot, long bytes) => _scratch[worker].Get(slot, bytes);

    /// <summary>Runs <paramref name="job"/> for tasks 0 … <paramref name="taskCount"/> − 1 on the pool.</summary>
    private void Parallel<TJob>(int taskCount, ref TJob job) where TJob : struct, IParallelJob =>
        _pool.Run(taskCount, ref job);

    /// <summary>Memory of a <see cref="CpuBackend"/>: native, 64-byte aligned, released on Dispose.</summary>
    private sealed class CpuBuffer<T> : DeviceBuffer<T> where T : unmanaged
    {
        /// <summary>Bytes allocated past the last element, never written: a 512-bit load that starts at an element
        /// stays inside the allocation. The direct convolutions read a pointwise layer's input in place, and a
        /// tile's last vector may pass the tensor's end (its lanes there are never stored).</summary>
        private const int VectorOverrunBytes = 64;

        private readonly CpuBackend _backend;
        private T* _data;

        /// <summary>Packed convolution weights kept for this buffer (WeightPacks.cs); null until first packed.</summary>
        public WeightPacks? WeightPacks;

        public CpuBuffer(CpuBackend backend, long length)
        {
            _backend = backend;
            Length = length;
            _data = (T*)NativeMemory.AlignedAlloc((nuint)(length * sizeof(T) + VectorOverrunBytes), 64);
        }

        ~CpuBuffer() => Release();

        public T* Data => _data;
        public override long Length { get; }
        public override Backend Backend => _backend;
        public override bool IsDisposed => _data == null;

        protected internal override void CopyFromHostCore(ReadOnlySpan<T> source)
        {
            source.CopyTo(new Span<T>(_data, checked((int)Length)));
            GC.KeepAlive(this); // the finalizer must not free the memory while it is being written
        }

        protected internal override void CopyToHostCore(Span<T> destination)
        {
            new ReadOnlySpan<T>(_data, checked((int)Length)).CopyTo(destination);
            GC.KeepAlive(this); // the finalizer must not free the memory while it is being read
        }

        public override void Dispose()
        {
            Release();
            GC.SuppressFinalize(this);
        }

        private void Release()
        {
            if (_data == null) return;
            NativeMemory.AlignedFree(_data);
            _data = null;
            WeightPacks?.Release();
            WeightPacks = null;
        }
    }

    /// <summary>A few growable native blocks owned by one worker.</summary>
    private sealed class Scratch : IDisposable
    {
        private const int Slots = 12;
        private readonly void*[] _blocks = new void*[Slots];
        private readonly long[] _sizes = new long[Slots];

        public void* Get(int slot, long bytes)
        {
            if (_sizes[slot] < bytes)
            {
                NativeMemory.AlignedFree(_blocks[slot]);
                long size = Math.Max(bytes, _sizes[slot] * 2);
                _blocks[slot] = NativeMemory.AlignedAlloc((nuint)size, 64);
                _sizes[slot] = size;
            }
            return _blocks[slot];
        }

        public void Dispose()
        {
            for (int i = 0; i < Slots; i++)
            {
                NativeMemory.AlignedFree(_blocks[i]);
                _blocks[i] = null;
                _sizes[i] = 0;
            }
        }
    }
}

/// <summary>One parallel op: <see cref="Execute"/> runs task <c>task</c> on worker <c>worker</c>
/// (0 is the calling thread), and must write only what that task owns.</summary>
internal interface IParallelJob
{
    void Execute(int task, int worker);
}

/// <summary>
/// Persistent worker threads (one fewer than <c>threads</c>: the caller works too). A run publishes a job and a
/// task count, starts the helpers it needs, and every thread claims runs of consecutive task indices from one shared
/// counter until none are left (one task a claim unless the tasks are many; see GrainsPerThread); the caller returns
/// once every helper is done. Runs are serialised, and so are the backend's ops (Backend's lock), so the per-worker
/// scratch memory never serves two ops at once.
/// A helper waits for its next run on a start counter of its own, awake for HelperSpinTicks, then asleep on its own
/// semaphore; the caller waits for the helpers spinning too, and both yield their core after TightSpinTicks
/// (SpinWait's backoff and yields, and the semaphore's, let each end of a run go unnoticed for about a microsecond).
/// Nothing is allocated per run: the job is a struct on the caller's stack, reached through a pointer.
/// </summary>
internal sealed unsafe class WorkerPool : IDisposable
{
    private readonly Thread[] _helpers;
    private readonly SemaphoreSlim[] _wakes;
    private readonly HelperLine[] _lines;
    private readonly long _spinTicks;
    private readonly object _gate = new();
    private delegate*<void*, int, int, void> _body;
    private void* _job;
    private int _taskCount;
    private Counters _counters;
    private volatile bool _stopping;

    /// <summary>The counters every thread writes during a run, each on a cache line of its own. On the line of the
    /// run's job, body and task count, which every task reads, each claim moved that line to the claiming core and
    /// the other core's next reads missed.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 3 * CacheLine)]
    private struct Counters
    {
        [FieldOffset(CacheLine)] public int NextTask;
        [FieldOffset(2 * CacheLine)] public int BusyHelpers;
    }

    /// <summary>What one helper waits on, on a cache line of its own: its count of runs started, and whether it
    /// sleeps (so the caller wakes it).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 2 * CacheLine)]
    private struct HelperLine
    {
        [FieldOffset(CacheLine)] public int Starts;
        [FieldOffset(CacheLine + sizeof(int))] public int Sleeping;
    }

    private const int CacheLine = 64;

    /// <summary>How long a helper waits awake for its next run before it sleeps: 0.2 ms, the gaps between a network's
    /// ops (a woken helper started 1–2 µs late, a batch-1 convolution's 45 µs run and its gaps took 2.7 µs more than a
    /// core's half of the work). After TightSpinTicks it yields its core between checks, to any thread that needs it;
    /// where the threads (of all of the job's processes on this machine, LocalProcesses) are more than the cores it
    /// sleeps at once.</summary>
    private static readonly long HelperSpinTicks = Stopwatch.Frequency / 5_000;

    /// <summary>How long a waiting thread spins before it also yields its core between checks: 20 µs (a yield here
    /// takes 1.7 µs; a spin, 80 ns).</summary>
    private static readonly long TightSpinTicks = Stopwatch.Frequency / 50_000;

    /// <summary>Spins between a waiting thread's looks at the clock.</summary>
    private const int SpinsPerClockRead = 16;

    public WorkerPool(int threads)
    {
        ThreadCount = Math.Max(1, threads);
        _helpers = new Thread[ThreadCount - 1];
        _wakes = new SemaphoreSlim[_helpers.Length];
        _lines = new HelperLine[_helpers.Length];
        _spinTicks = ThreadCount * LocalProcesses() <= Environment.ProcessorCount ? HelperSpinTicks : 0;
        for (int i = 0; i < _helpers.Length; i++)
        {
            _wakes[i] = new SemaphoreSlim(0);
            _helpers[i] = new Thread(HelperLoop) { IsBackground = true, Name = $"cpu-backend-{i + 1}" };
            _helpers[i].Start(i + 1);
        }
    }

    public int ThreadCount { get; }

    /// <summary>This job's processes on this machine, whose threads share its cores: the local ranks an MPI launcher
    /// names (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS), else 1. Two ranks of two threads on
    /// two cores ran the MPI tests 38–39 → 42–43 s with helpers awake between runs.</summary>
    private static int LocalProcesses()
    {
        foreach (var name in new[] { "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name), out int ranks) && ranks > 1) return ranks;
        return 1;
    }

    public void Run<TJob>(int taskCount, ref TJob job) where TJob : struct, IParallelJob
    {
        if (taskCount <= 0) return;
        lock (_gate)
        {
            int helpers = Math.Min(_helpers.Length, taskCount - 1);
            if (helpers == 0)
            {
                for (int task = 0; task < taskCount; task++) job.Execute(task, 0);
                return;
            }

            _body = &Execute<TJob>;
            _job = Unsafe.AsPointer(ref job);
            _taskCount = taskCount;
            _counters.NextTask = 0;
            Volatile.Write(ref _counters.BusyHelpers, helpers);
            for (int i = 0; i < helpers; i++) Start(i);
            Work(0);
            long yieldFrom = 0;
            for (int spins = 1; Volatile.Read(ref _counters.BusyHelpers) != 0; spins++)
            {
                if (spins % SpinsPerClockRead != 0) Thread.SpinWait(1);
                else if (yieldFrom == 0) yieldFrom = Stopwatch.GetTimestamp() + TightSpinTicks;
                else if (Stopwatch.GetTimestamp() >= yieldFrom) Thread.Yield();
            }
            _job = null;
        }
    }

    /// <summary>Starts helper <paramref name="index"/> on the published run: the count it watches goes up (a full
    /// fence, after the run's fields), then, if it sleeps, it is woken. A helper that reads the count unchanged has
    /// set Sleeping before (a full fence too), so this reads it set and wakes it; both may happen, a wake with no run
    /// behind it, which the helper takes for none.</summary>
    private void Start(int index)
    {
        ref var line = ref _lines[index];
        Interlocked.Increment(ref line.Starts);
        if (Volatile.Read(ref line.Sleeping) != 0) _wakes[index].Release();
    }

    private static void Execute<TJob>(void* job, int task, int worker) where TJob : struct, IParallelJob =>
        Unsafe.AsRef<TJob>(job).Execute(task, worker);

    /// <summary>Claims per thread, on average, when the tasks are many: a claim takes taskCount / (64 · threads)
    /// consecutive tasks, so a run has 64 · threads claims or more. One task a claim moved the counter's cache line
    /// between cores for every task, which cost more than a small task (a 32×32 plane's max-pool) itself; with
    /// fewer than 128 tasks a thread (a convolution's images at batch 128) a claim is still one task, so the last
    /// thread never waits for more than one.</summary>
    private const int GrainsPerThread = 64;

    /// <summary>Claims runs of tasks until none are left. The body and job are read once: a task reads nothing of
    /// the pool.</summary>
    private void Work(int worker)
    {
        var body = _body;
        void* job = _job;
        int count = _taskCount, grain = Math.Max(1, count / (GrainsPerThread * ThreadCount)), first;
        // Unsigned: every thread adds one grain past the end at most once, so the counter stays far from
        // wrapping; compared unsigned, even a wrapped one would end the loop.
        while ((uint)(first = Interlocked.Add(ref _counters.NextTask, grain) - grain) < (uint)count)
            for (int task = first, end = count - first > grain ? first + grain : count; task < end; task++)
                body(job, task, worker);
    }

    private void HelperLoop(object? id)
    {
        int worker = (int)id!, seen = 0;
        while (true)
        {
            seen = AwaitStart(worker - 1, seen);
            if (_stopping) return;
            Work(worker);
            Interlocked.Decrement(ref _counters.BusyHelpers);
        }
    }

    /// <summary>Waits until helper <paramref name="index"/>'s start count differs from <paramref name="seen"/>
    /// and returns it: awake for HelperSpinTicks (spinning, then yielding), then asleep until Start wakes it (a wake
    /// that finds the count unchanged starts the wait over).</summary>
    private int AwaitStart(int index, int seen)
    {
        ref var line = ref _lines[index];
        long start = Stopwatch.GetTimestamp();
        for (int spins = 1; ; spins++)
        {
            int starts = Volatile.Read(ref line.Starts);
            if (starts != seen) return starts;
            if (spins % SpinsPerClockRead != 0)
            {
                Thread.SpinWait(1);
                continue;
            }
            long awake = Stopwatch.GetTimestamp() - start;
            if (awake < Math.Min(TightSpinTicks, _spinTicks)) continue;
            if (awake < _spinTicks)
            {
                Thread.Yield();
                continue;
            }
            Interlocked.Exchange(ref line.Sleeping, 1);
            if (Volatile.Read(ref line.Starts) == seen) _wakes[index].Wait();
            Volatile.Write(ref line.Sleeping, 0);
            start = Stopwatch.GetTimestamp();
        }
    }

    public void Dispose()
    {
        _stopping = true;
        for (int i = 0; i < _helpers.Length; i++)   // none on a 1-core machine
        {
            Interlocked.Increment(ref _lines[i].Starts);
            _wakes[i].Release();
        }
    }
}
