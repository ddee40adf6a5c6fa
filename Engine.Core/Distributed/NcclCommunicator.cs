// The NCCL communicator: one rank per CUDA device, started by mpirun like the MPI one; MPI gives each process its
// rank and carries NCCL's unique id from rank 0 to the others, then NCCL's ring collectives do the reductions on
// the GPUs (NVLink, PCIe, InfiniBand with GPUDirect where present).
//
// The engine's device buffers do not expose their CUDA addresses (Engine.Kernels keeps them private), so a tensor
// goes through HostCommunicator's host staging and then into a CUDA buffer this communicator owns: host → device,
// NCCL in place, device → host. That costs two PCIe copies per collective that an in-place NCCL call on the
// tensor's own buffer would not; the interface is the same either way. Built and its refusals tested on a machine
// without GPU or NCCL; never run on a GPU (docs/distributed.md).
using System.Numerics;
using System.Runtime.InteropServices;

namespace Engine.Core.Distributed;

/// <summary>A rank of a job started by <c>mpirun</c> with one process per CUDA device, reducing with NCCL
/// (libnccl.so.2, loaded only by <see cref="Open(TimeSpan?)"/>).</summary>
public sealed unsafe class NcclCommunicator : HostCommunicator
{
    private readonly NcclLibrary _nccl;
    private readonly MpiCommunicator _mpi;
    private readonly nint _comm;
    private readonly int _cudaDevice;
    private ulong _staging;
    private long _stagingBytes;
    private bool _disposed;

    private NcclCommunicator(NcclLibrary nccl, MpiCommunicator mpi)
    {
        _nccl = nccl;
        _mpi = mpi;
        int localRank = int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_RANK"), out int local)
            ? local : mpi.Rank;
        if (localRank >= nccl.DeviceCount)
            throw new InvalidOperationException(
                $"--distributed nccl takes one CUDA device per rank: local rank {localRank} has none (this host has " +
                $"{nccl.DeviceCount}); start at most {nccl.DeviceCount} ranks per host.");
        _cudaDevice = localRank;
        int device;
        nint context;
        NcclLibrary.CheckCuda(nccl.CuDeviceGet(&device, localRank), "cuDeviceGet");
        NcclLibrary.CheckCuda(nccl.CuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        NcclLibrary.CheckCuda(nccl.CuCtxSetCurrent(context), "cuCtxSetCurrent");

        NcclUniqueId id;
        if (mpi.Rank == 0) nccl.Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        var bytes = new Span<byte>(id.Internal, 128);
        var words = MemoryMarshal.Cast<byte, double>(bytes).ToArray(); // MPI_Bcast copies the bits as they are
        mpi.Broadcast<double>(words);
        MemoryMarshal.AsBytes(words.AsSpan()).CopyTo(bytes);
        nint comm;
        using (mpi.ArmWatchdog("ncclCommInitRank"))
            nccl.Check(nccl.CommInitRank(&comm, mpi.Size, id, mpi.Rank), "ncclCommInitRank");
        _comm = comm;
    }

    /// <summary>Checks for NCCL and a CUDA device, opens MPI (<see cref="MpiCommunicator.Open"/>) and creates the
    /// NCCL communicator of every rank's device (local rank i takes CUDA device i).</summary>
    /// <exception cref="InvalidOperationException">libnccl.so.2, the CUDA driver or a CUDA device is missing (checked
    /// before MPI is touched), the process was not started by mpirun, or a host has more ranks than devices.
    /// </exception>
    /// <param name="collectiveTimeout">As <see cref="MpiCommunicator.Open"/>'s.</param>
    public static NcclCommunicator Open(TimeSpan? collectiveTimeout = null) => Open(NcclLibrary.NcclName, collectiveTimeout);

    /// <summary><see cref="Open(TimeSpan?)"/> with another NCCL library name (tests).</summary>
    internal static NcclCommunicator Open(string ncclName, TimeSpan? collectiveTimeout)
    {
        var nccl = NcclLibrary.Load(ncclName);
        var mpi = MpiCommunicator.Open(MpiReduction.RankOrdered, collectiveTimeout);
        try
        {
            return new NcclCommunicator(nccl, mpi);
        }
        catch
        {
            mpi.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public override int Rank => _mpi.Rank;

    /// <inheritdoc/>
    public override int Size => _mpi.Size;

    /// <summary><c>nccl</c>.</summary>
    public override string Kind => "nccl";

    /// <summary>The CUDA device of this rank.</summary>
    public int CudaDevice => _cudaDevice;

    /// <summary>ncclAllReduce(ncclSum) in place on a CUDA copy of <paramref name="data"/>.</summary>
    public override void AllReduceSum<T>(Span<T> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Size == 1) return;
        OnDevice(data, $"NCCL all-reduce sum of {data.Length:N0} {MpiCommunicator.ElementName<T>()} values",
            (buffer, count, type) => _nccl.AllReduce(buffer, buffer, count, type, NcclLibrary.Sum, _comm, 0));
    }

    /// <summary>ncclBroadcast in place on a CUDA copy of <paramref name="data"/>.</summary>
    public override void Broadcast<T>(Span<T> data, int root = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckRoot(root);
        if (Size == 1) return;
        OnDevice(data, $"NCCL broadcast of {data.Length:N0} {MpiCommunicator.ElementName<T>()} values from rank {root}",
            (buffer, count, type) => _nccl.Broadcast(buffer, buffer, count, type, root, _comm, 0));
    }

    /// <inheritdoc/>
    public override void Barrier() => _mpi.Barrier();

    /// <summary>Refused: the collectives of two NCCL communicators on one device, launched from two threads on the
    /// same (default) CUDA stream, may wait for each other in a different order on each rank and deadlock; gradients
    /// are reduced after backward instead.</summary>
    public override ICommunicator Duplicate() => throw new NotSupportedException(
        "NCCL collectives are not run from two threads at once (two NCCL communicators sharing one CUDA stream may " +
        "deadlock); gradients are all-reduced after backward.");

    /// <summary>Destroys the NCCL communicator, frees the CUDA staging buffer and finalizes MPI.</summary>
    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_staging != 0) _nccl.CuMemFree(_staging);
        _nccl.CommDestroy(_comm);
        _nccl.CuDevicePrimaryCtxRelease(_cudaDevice);
        _mpi.Dispose();
        base.Dispose();
    }

    private delegate int NcclCall(void* buffer, nuint count, int datatype);

    /// <summary>Copies <paramref name="data"/> to the CUDA staging buffer, runs <paramref name="call"/> on it under
    /// the watchdog, waits for the stream and copies the result back.</summary>
    private void OnDevice<T>(Span<T> data, string name, NcclCall call) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int type = typeof(T) == typeof(float) ? NcclLibrary.Float32
            : typeof(T) == typeof(double) ? NcclLibrary.Float64
            : throw new NotSupportedException($"NCCL collectives take float or double elements; got {typeof(T).Name}.");
        long bytes = (long)data.Length * sizeof(T);
        if (bytes > _stagingBytes)
        {
            if (_staging != 0) NcclLibrary.CheckCuda(_nccl.CuMemFree(_staging), "cuMemFree");
            ulong buffer;
            NcclLibrary.CheckCuda(_nccl.CuMemAlloc(&buffer, (nuint)bytes), "cuMemAlloc");
            _staging = buffer;
            _stagingBytes = bytes;
        }
        fixed (T* host = data)
        {
            NcclLibrary.CheckCuda(_nccl.CuMemcpyHtoD(_staging, host, (nuint)bytes), "cuMemcpyHtoD");
            using (_mpi.ArmWatchdog(name))
            {
                _nccl.Check(call((void*)_staging, (nuint)data.Length, type), name);
                NcclLibrary.CheckCuda(_nccl.CuStreamSynchronize(0), "cuStreamSynchronize");
            }
            NcclLibrary.CheckCuda(_nccl.CuMemcpyDtoH(host, _staging, (nuint)bytes), "cuMemcpyDtoH");
        }
    }
}
