// The MPI communicator: one per process of a job started by mpirun, over MPI_COMM_WORLD of OpenMPI (MpiLibrary).
//
// Data goes through host memory (HostCommunicator), in chunks of at most MaxChunkElements so that MPI's int counts
// and the staging memory stay bounded whatever the tensor's length.
//
// Sums are deterministic by default (MpiReduction.RankOrdered): each chunk is split into Size segments; an
// MPI_Alltoall hands rank r segment r of every rank, rank r adds them in rank order ((x0 + x1) + x2) + …, and an
// MPI_Allgather returns the summed segments to every rank. Every element is thus the same sequential rank-order
// sum on every rank, in every run and for every chunk size, for the same ~2(n-1)/n·N traffic as a ring
// all-reduce. MpiReduction.Library calls MPI_Allreduce(MPI_SUM) instead: MPI picks the algorithm, and with more
// than two ranks the summation order (so the last bits) may change with the message size or the MPI settings.
// With exactly two ranks both take MPI_Allreduce: IEEE addition is commutative, so x0 + x1 is the one possible
// sum whatever the algorithm (and MPI's own path is about twice as fast: no staging copies).
//
// Duplicate gives a second communicator over the same ranks (MPI_Comm_dup, with its own staging and watchdog) for a
// second thread: data-parallel training reduces gradient buckets on it while the main thread runs other collectives
// (MPI_THREAD_MULTIPLE lets both threads call MPI; each communicator keeps its own order on every rank).
//
// Failures: MPI's default error handler aborts the whole job on a failing call; mpirun ends the job when a rank
// exits without MPI_Finalize; a rank that hangs is caught by the CollectiveWatchdog of the ranks waiting for it,
// which print one line and call MPI_Abort after CollectiveTimeout.
using System.Numerics;
using System.Runtime.InteropServices;

namespace Engine.Core.Distributed;

/// <summary>How <see cref="MpiCommunicator"/> sums.</summary>
public enum MpiReduction
{
    /// <summary>Every element summed in rank order (rank 0 first) by an all-to-all, ordered local sums and an
    /// all-gather: bit-identical on every rank and in every run of the same world size.</summary>
    RankOrdered,

    /// <summary>MPI_Allreduce with MPI_SUM: MPI's own algorithm; with more than two ranks the summation order may
    /// vary with message size and MPI settings.</summary>
    Library,
}

/// <summary>A rank of a job started by <c>mpirun</c>, communicating over OpenMPI's MPI_COMM_WORLD (libmpi.so.40,
/// loaded only when <see cref="Open"/> is called). Tensors on any device are copied through host memory. Open one
/// per process; disposing it finalizes MPI.</summary>
public sealed unsafe class MpiCommunicator : HostCommunicator
{
    /// <summary>The exit status of a job that a collective timeout aborted (as the <c>timeout</c> command's).</summary>
    public const int TimeoutExitCode = 124;

    /// <summary>How long one collective may block when <see cref="Open"/> is given no timeout.</summary>
    public static readonly TimeSpan DefaultCollectiveTimeout = TimeSpan.FromMinutes(10);

    private static readonly Lock OpenGate = new();
    private static bool s_opened;

    private readonly MpiLibrary _mpi;
    private readonly nint _comm; // MPI_COMM_WORLD, or a duplicate of it (Duplicate)
    private readonly bool _duplicate;
    private readonly CollectiveWatchdog _watchdog;
    private readonly bool _initializedHere;
    private readonly Dictionary<Type, (Array Send, Array Receive)> _segments = [];
    private bool _disposed;

    private MpiCommunicator(MpiLibrary mpi, MpiReduction reduction, TimeSpan collectiveTimeout)
    {
        _mpi = mpi;
        _comm = mpi.CommWorld;
        Reduction = reduction;
        int flag = 0, provided = 0, rank = 0, size = 0;
        mpi.Check(mpi.Finalized(&flag), "MPI_Finalized");
        if (flag != 0)
            throw new InvalidOperationException("MPI was already finalized in this process; it can be initialized once.");
        mpi.Check(mpi.Initialized(&flag), "MPI_Initialized");
        if (flag == 0)
        {
            mpi.Check(mpi.InitThread(null, 0, MpiLibrary.ThreadMultiple, &provided), "MPI_Init_thread");
            _initializedHere = true;
            if (provided < MpiLibrary.ThreadMultiple)
            {
                mpi.Finalize();
                throw new NotSupportedException(
                    $"This MPI library provides thread level {provided}; the communicator needs MPI_THREAD_MULTIPLE " +
                    $"({MpiLibrary.ThreadMultiple}) for its timeout watchdog. {MpiLibrary.InstallHint}.");
            }
        }
        mpi.Check(mpi.QueryThread(&provided), "MPI_Query_thread"); // also when MPI was initialized elsewhere
        ThreadLevel = provided;
        mpi.Check(mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
        mpi.Check(mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        _watchdog = new CollectiveWatchdog(collectiveTimeout, AbortJob);
    }

    /// <summary>A communicator over <paramref name="comm"/>, a duplicate of <paramref name="parent"/>'s.</summary>
    private MpiCommunicator(MpiCommunicator parent, nint comm)
    {
        _mpi = parent._mpi;
        _comm = comm;
        _duplicate = true;
        Reduction = parent.Reduction;
        ThreadLevel = parent.ThreadLevel;
        Rank = parent.Rank;
        Size = parent.Size;
        MaxChunkElements = parent.MaxChunkElements;
        _watchdog = new CollectiveWatchdog(parent.CollectiveTimeout, AbortJob);
    }

    /// <summary>Initializes MPI (thread level MPI_THREAD_MULTIPLE) and returns this process's rank of
    /// MPI_COMM_WORLD. Throws DllNotFoundException when OpenMPI's libmpi.so.40 is not installed (naming the
    /// package), InvalidOperationException when the process was not started by <c>mpirun</c> (no
    /// OMPI_COMM_WORLD_SIZE or PMIX_RANK in the environment), or when MPI was already opened in this process.</summary>
    /// <param name="reduction">How sums are computed; every rank must pass the same.</param>
    /// <param name="collectiveTimeout">How long one collective may wait for the other ranks before this rank prints
    /// which one timed out and aborts the job (exit status <see cref="TimeoutExitCode"/>); default
    /// <see cref="DefaultCollectiveTimeout"/>.</param>
    public static MpiCommunicator Open(MpiReduction reduction = MpiReduction.RankOrdered, TimeSpan? collectiveTimeout = null) =>
        OpenLibrary(MpiLibrary.DefaultName, reduction, collectiveTimeout);

    /// <summary><see cref="Open"/> with another library file (tests: the error for a missing one).</summary>
    internal static MpiCommunicator OpenLibrary(string libraryName, MpiReduction reduction, TimeSpan? collectiveTimeout)
    {
        var mpi = MpiLibrary.Load(libraryName);
        if (!StartedByMpirun)
            throw new InvalidOperationException(
                "This process was not started by mpirun (OMPI_COMM_WORLD_SIZE is not set): start every rank with it, " +
                "e.g. `mpirun -np 2 <command>`.");
        lock (OpenGate)
        {
            if (s_opened)
                throw new InvalidOperationException("MPI is already open in this process: open one MpiCommunicator per process.");
            s_opened = true;
        }
        return new MpiCommunicator(mpi, reduction, collectiveTimeout ?? DefaultCollectiveTimeout);
    }

    /// <summary>True when the environment carries the rank variables of OpenMPI's launcher (mpirun) or of a PMIx
    /// launcher (Slurm's srun).</summary>
    public static bool StartedByMpirun =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE")) ||
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("PMIX_RANK"));

    /// <inheritdoc/>
    public override int Rank { get; }

    /// <inheritdoc/>
    public override int Size { get; }

    /// <summary><c>mpi</c>.</summary>
    public override string Kind => "mpi";

    /// <summary>How sums are computed.</summary>
    public MpiReduction Reduction { get; }

    /// <summary>The thread level MPI provides (MPI_Query_thread): 3, MPI_THREAD_MULTIPLE, when this communicator
    /// initialized MPI.</summary>
    public int ThreadLevel { get; }

    /// <summary>How long one collective may block before the job is aborted.</summary>
    public TimeSpan CollectiveTimeout => _watchdog.Timeout;

    /// <summary>Most elements one MPI call moves; longer data goes in several calls (int counts, bounded staging).
    /// 2^18 (1 MiB of float32): on this project's measurements, larger chunks made shared-memory transfers slower
    /// and far more variable. Settable for tests, identically on every rank.</summary>
    internal int MaxChunkElements { get; set; } = 1 << 18;

    /// <inheritdoc/>
    public override void AllReduceSum<T>(Span<T> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var datatype = _mpi.DatatypeOf<T>();
        if (Size == 1) return;
        foreach (var (chunk, name) in Chunks(data.Length, $"all-reduce sum of {data.Length:N0} {ElementName<T>()} values"))
        {
            using var armed = _watchdog.Arm(name);
            if (Reduction == MpiReduction.Library || Size == 2)
                fixed (T* p = data.Slice(chunk.Start, chunk.Length))
                    _mpi.Check(_mpi.Allreduce(MpiLibrary.InPlace, p, chunk.Length, datatype, _mpi.Sum, _comm), "MPI_Allreduce");
            else
                RankOrderedSum(data.Slice(chunk.Start, chunk.Length), datatype);
        }
    }

    /// <inheritdoc/>
    public override void Broadcast<T>(Span<T> data, int root = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckRoot(root);
        var datatype = _mpi.DatatypeOf<T>();
        if (Size == 1) return;
        foreach (var (chunk, name) in Chunks(data.Length, $"broadcast of {data.Length:N0} {ElementName<T>()} values from rank {root}"))
        {
            using var armed = _watchdog.Arm(name);
            fixed (T* p = data.Slice(chunk.Start, chunk.Length))
                _mpi.Check(_mpi.Bcast(p, chunk.Length, datatype, root, _comm), "MPI_Bcast");
        }
    }

    /// <inheritdoc/>
    public override void Barrier()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var armed = _watchdog.Arm("barrier");
        _mpi.Check(_mpi.Barrier(_comm), "MPI_Barrier");
    }

    /// <summary>MPI_Comm_dup of this communicator, with the same reduction, chunk size and timeout, and a watchdog
    /// of its own.</summary>
    /// <exception cref="NotSupportedException">MPI does not provide MPI_THREAD_MULTIPLE (possible only when MPI was
    /// initialized outside this class).</exception>
    public override ICommunicator Duplicate()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ThreadLevel < MpiLibrary.ThreadMultiple)
            throw new NotSupportedException(
                $"MPI provides thread level {ThreadLevel}, not MPI_THREAD_MULTIPLE ({MpiLibrary.ThreadMultiple}): " +
                "collectives are not run from two threads at once; gradients are all-reduced after backward.");
        nint duplicate;
        using (_watchdog.Arm("MPI_Comm_dup"))
            _mpi.Check(_mpi.CommDup(_comm, &duplicate), "MPI_Comm_dup");
        return new MpiCommunicator(this, duplicate);
    }

    /// <summary>Finalizes MPI (when this communicator initialized it), or frees a duplicate's MPI communicator;
    /// every rank must do so.</summary>
    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        int finalized = 0;
        _mpi.Check(_mpi.Finalized(&finalized), "MPI_Finalized");
        if (_duplicate && finalized == 0)
        {
            nint comm = _comm;
            using (_watchdog.Arm("MPI_Comm_free"))
                _mpi.Check(_mpi.CommFree(&comm), "MPI_Comm_free");
        }
        if (_initializedHere && finalized == 0)
            using (_watchdog.Arm("MPI_Finalize"))
                _mpi.Check(_mpi.Finalize(), "MPI_Finalize");
        _watchdog.Dispose();
        base.Dispose();
    }

    /// <summary>Arms this rank's watchdog for a collective run outside MPI (NCCL's, bootstrapped over this job):
    /// past the timeout the whole MPI job is aborted as for an MPI collective.</summary>
    internal CollectiveWatchdog.Armed ArmWatchdog(string collective) => _watchdog.Arm(collective);

    internal static string ElementName<T>() => typeof(T) == typeof(float) ? "float32" : "float64";

    /// <summary>The (start, length) pieces of at most <see cref="MaxChunkElements"/> that cover
    /// <paramref name="length"/> elements, each with a description for the watchdog.</summary>
    private IEnumerable<((int Start, int Length) Chunk, string Name)> Chunks(int length, string collective)
    {
        int count = (int)(((long)length + MaxChunkElements - 1) / MaxChunkElements);
        for (int i = 0; i < count; i++)
        {
            int start = i * MaxChunkElements;
            yield return ((start, Math.Min(MaxChunkElements, length - start)),
                count == 1 ? collective : $"{collective} (chunk {i + 1} of {count})");
        }
    }

    /// <summary>Sums <paramref name="chunk"/> over the ranks in rank order: all-to-all of Size segments, ordered
    /// local sum of segment Rank, all-gather of the sums.</summary>
    private void RankOrderedSum<T>(Span<T> chunk, nint datatype) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int segment = (chunk.Length + Size - 1) / Size;
        var (send, receive) = SegmentStaging<T>(segment * Size);
        chunk.CopyTo(send);
        send.AsSpan(chunk.Length, segment * Size - chunk.Length).Clear(); // padding of the last segment
        fixed (T* s = send, r = receive)
        {
            _mpi.Check(_mpi.Alltoall(s, segment, datatype, r, segment, datatype, _comm), "MPI_Alltoall");
            var sum = send.AsSpan(0, segment);
            receive.AsSpan(0, segment).CopyTo(sum);
            for (int rank = 1; rank < Size; rank++)
                AddInto(sum, receive.AsSpan(rank * segment, segment));
            _mpi.Check(_mpi.Allgather(s, segment, datatype, r, segment, datatype, _comm), "MPI_Allgather");
        }
        receive.AsSpan(0, chunk.Length).CopyTo(chunk);
    }

    /// <summary>Element-wise <paramref name="sum"/> += <paramref name="addend"/> (vectorised; each element is one
    /// IEEE addition, so the result does not depend on the vector width).</summary>
    private static void AddInto<T>(Span<T> sum, ReadOnlySpan<T> addend) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var sums = MemoryMarshal.Cast<T, Vector<T>>(sum);
        var addends = MemoryMarshal.Cast<T, Vector<T>>(addend);
        for (int i = 0; i < sums.Length; i++) sums[i] += addends[i];
        for (int i = sums.Length * Vector<T>.Count; i < sum.Length; i++) sum[i] += addend[i];
    }

    /// <summary>The send and receive arrays of the rank-ordered sum, kept per element type between calls.</summary>
    private (T[] Send, T[] Receive) SegmentStaging<T>(int length)
    {
        if (!_segments.TryGetValue(typeof(T), out var arrays) || arrays.Send.Length < length)
            _segments[typeof(T)] = arrays = (new T[length], new T[length]);
        return ((T[])arrays.Send, (T[])arrays.Receive);
    }

    /// <summary>The watchdog's action: one line on standard error naming the collective, then MPI_Abort, which ends
    /// every rank of the job.</summary>
    private void AbortJob(string collective)
    {
        Console.Error.WriteLine(
            $"error: rank {Rank} of {Size}: {collective} did not complete within {CollectiveTimeout.TotalSeconds:0.###} s: " +
            "another rank died, hangs or did not call the same collective; aborting the MPI job.");
        Console.Error.Flush();
        _mpi.Abort(_mpi.CommWorld, TimeoutExitCode);
        Environment.Exit(TimeoutExitCode); // MPI_Abort does not return; this is in case it ever does
    }
}
