// OpenMPI's C API, bound at run time: libmpi.so.40 (OpenMPI 4.x, Debian's openmpi-bin/libopenmpi-dev) is loaded
// with NativeLibrary only when an MPI communicator is asked for, so machines without MPI never touch it.
//
// OpenMPI's predefined handles are the addresses of exported globals (mpi.h: MPI_COMM_WORLD is
// &ompi_mpi_comm_world, MPI_FLOAT &ompi_mpi_float, MPI_DOUBLE &ompi_mpi_double, MPI_SUM &ompi_mpi_op_sum), so they
// are read with NativeLibrary.GetExport; the functions are called through unmanaged function pointers with mpi.h's
// signatures (handles are pointers, counts are int).
using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Core.Distributed;

/// <summary>The part of OpenMPI's C API the communicator uses, resolved from one loaded libmpi.</summary>
internal sealed unsafe class MpiLibrary
{
    /// <summary>The shared library of OpenMPI 4, the one Debian and Ubuntu ship.</summary>
    public const string DefaultName = "libmpi.so.40";

    /// <summary>How to install it, for error messages.</summary>
    public const string InstallHint = "install OpenMPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)";

    /// <summary>mpi.h: MPI_THREAD_MULTIPLE, the level that lets the watchdog thread call MPI_Abort while the main
    /// thread waits in a collective, and a communication thread run collectives (on a duplicated communicator)
    /// while the main thread runs others.</summary>
    public const int ThreadMultiple = 3;

    /// <summary>mpi.h: MPI_IN_PLACE.</summary>
    public static readonly nint InPlace = 1;

    public readonly nint CommWorld, Float, Double, Sum;

    public readonly delegate* unmanaged<int*, nint, int, int*, int> InitThread;
    public readonly delegate* unmanaged<int*, int> Initialized;
    public readonly delegate* unmanaged<int*, int> Finalized;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<nint, int*, int> CommRank;
    public readonly delegate* unmanaged<nint, int*, int> CommSize;
    public readonly delegate* unmanaged<nint, void*, int, nint, nint, nint, int> Allreduce;
    public readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> Alltoall;
    public readonly delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int> Allgather;
    public readonly delegate* unmanaged<void*, int, nint, int, nint, int> Bcast;
    public readonly delegate* unmanaged<nint, int> Barrier;
    public readonly delegate* unmanaged<nint, int, int> Abort;
    public readonly delegate* unmanaged<int*, int> QueryThread;
    public readonly delegate* unmanaged<nint, nint*, int> CommDup;
    public readonly delegate* unmanaged<nint*, int> CommFree;
    private readonly delegate* unmanaged<int, byte*, int*, int> _errorString;

    private MpiLibrary(nint library)
    {
        CommWorld = NativeLibrary.GetExport(library, "ompi_mpi_comm_world");
        Float = NativeLibrary.GetExport(library, "ompi_mpi_float");
        Double = NativeLibrary.GetExport(library, "ompi_mpi_double");
        Sum = NativeLibrary.GetExport(library, "ompi_mpi_op_sum");
        InitThread = (delegate* unmanaged<int*, nint, int, int*, int>)NativeLibrary.GetExport(library, "MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(library, "MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(library, "MPI_Finalized");
        Finalize = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)NativeLibrary.GetExport(library, "MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)NativeLibrary.GetExport(library, "MPI_Comm_size");
        Allreduce = (delegate* unmanaged<nint, void*, int, nint, nint, nint, int>)NativeLibrary.GetExport(library, "MPI_Allreduce");
        Alltoall = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)NativeLibrary.GetExport(library, "MPI_Alltoall");
        Allgather = (delegate* unmanaged<void*, int, nint, void*, int, nint, nint, int>)NativeLibrary.GetExport(library, "MPI_Allgather");
        Bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)NativeLibrary.GetExport(library, "MPI_Bcast");
        Barrier = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, "MPI_Barrier");
        Abort = (delegate* unmanaged<nint, int, int>)NativeLibrary.GetExport(library, "MPI_Abort");
        QueryThread = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(library, "MPI_Query_thread");
        CommDup = (delegate* unmanaged<nint, nint*, int>)NativeLibrary.GetExport(library, "MPI_Comm_dup");
        CommFree = (delegate* unmanaged<nint*, int>)NativeLibrary.GetExport(library, "MPI_Comm_free");
        _errorString = (delegate* unmanaged<int, byte*, int*, int>)NativeLibrary.GetExport(library, "MPI_Error_string");
    }

    /// <summary>Loads <paramref name="name"/> and resolves every symbol, or throws DllNotFoundException naming the
    /// library and how to install it (EntryPointNotFoundException when it is not OpenMPI 4's).</summary>
    public static MpiLibrary Load(string name)
    {
        if (!NativeLibrary.TryLoad(name, out var library))
            throw new DllNotFoundException($"MPI is not installed: the OpenMPI library {name} was not found; {InstallHint}.");
        try
        {
            return new MpiLibrary(library);
        }
        catch (EntryPointNotFoundException error)
        {
            throw new EntryPointNotFoundException(
                $"{name} is not OpenMPI 4's MPI library ({error.Message}); {InstallHint}.", error);
        }
    }

    /// <summary>The datatype handle of <typeparamref name="T"/>: MPI_FLOAT or MPI_DOUBLE.</summary>
    public nint DatatypeOf<T>() =>
        typeof(T) == typeof(float) ? Float
        : typeof(T) == typeof(double) ? Double
        : throw new NotSupportedException($"MPI collectives take float or double elements; got {typeof(T).Name}.");

    /// <summary>Throws InvalidOperationException naming <paramref name="call"/> and MPI's own message unless
    /// <paramref name="code"/> is MPI_SUCCESS. (With MPI's default error handler a failing call aborts the job
    /// before it returns; this catches the rest.)</summary>
    public void Check(int code, string call)
    {
        if (code == 0) return;
        var text = stackalloc byte[512]; // MPI_MAX_ERROR_STRING is 256 in OpenMPI 4
        int length = 0;
        string message = _errorString(code, text, &length) == 0
            ? Encoding.UTF8.GetString(text, Math.Clamp(length, 0, 512))
            : "no description";
        throw new InvalidOperationException($"{call} failed with MPI error {code}: {message}.");
    }
}
