// NCCL's C API (libnccl.so.2) and the part of the CUDA driver API (libcuda.so.1) that the NCCL communicator needs,
// bound at run time with NativeLibrary only when `--distributed nccl` asks for them, so machines without a GPU never
// touch them. Signatures as nccl.h (2.x) and cuda.h declare them; ncclUniqueId is a 128-byte struct passed by value.
using System.Runtime.InteropServices;

namespace Engine.Core.Distributed;

/// <summary>nccl.h's ncclUniqueId: 128 opaque bytes that rank 0 creates and every rank passes to
/// ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
internal unsafe struct NcclUniqueId
{
    public fixed byte Internal[128];
}

/// <summary>The NCCL and CUDA driver functions of <see cref="NcclCommunicator"/>.</summary>
internal sealed unsafe class NcclLibrary
{
    /// <summary>NCCL 2's shared library.</summary>
    public const string NcclName = "libnccl.so.2";

    /// <summary>The CUDA driver's shared library (installed with the NVIDIA driver).</summary>
    public const string CudaName = "libcuda.so.1";

    /// <summary>nccl.h: ncclFloat32, ncclFloat64, ncclSum.</summary>
    public const int Float32 = 7, Float64 = 8, Sum = 0;

    public readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    public readonly delegate* unmanaged<nint*, int, NcclUniqueId, int, int> CommInitRank;
    public readonly delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int> AllReduce;
    public readonly delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int> Broadcast;
    public readonly delegate* unmanaged<nint, int> CommDestroy;
    public readonly delegate* unmanaged<nint, int> CommAbort;
    private readonly delegate* unmanaged<int, byte*> _errorString;

    public readonly delegate* unmanaged<uint, int> CuInit;
    public readonly delegate* unmanaged<int*, int> CuDeviceGetCount;
    public readonly delegate* unmanaged<int*, int, int> CuDeviceGet;
    public readonly delegate* unmanaged<nint*, int, int> CuDevicePrimaryCtxRetain;
    public readonly delegate* unmanaged<int, int> CuDevicePrimaryCtxRelease;
    public readonly delegate* unmanaged<nint, int> CuCtxSetCurrent;
    public readonly delegate* unmanaged<ulong*, nuint, int> CuMemAlloc;
    public readonly delegate* unmanaged<ulong, int> CuMemFree;
    public readonly delegate* unmanaged<ulong, void*, nuint, int> CuMemcpyHtoD;
    public readonly delegate* unmanaged<void*, ulong, nuint, int> CuMemcpyDtoH;
    public readonly delegate* unmanaged<nint, int> CuStreamSynchronize;

    private NcclLibrary(nint nccl, nint cuda)
    {
        GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)NativeLibrary.GetExport(nccl, "ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<nint*, int, NcclUniqueId, int, int>)NativeLibrary.GetExport(nccl, "ncclCommInitRank");
        AllReduce = (delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int>)NativeLibrary.GetExport(nccl, "ncclAllReduce");
        Broadcast = (delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int>)NativeLibrary.GetExport(nccl, "ncclBroadcast");
        CommDestroy = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(nccl, "ncclCommDestroy");
        CommAbort = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(nccl, "ncclCommAbort");
        _errorString = (delegate* unmanaged<int, byte*>)NativeLibrary.GetExport(nccl, "ncclGetErrorString");
        CuInit = (delegate* unmanaged<uint, int>)NativeLibrary.GetExport(cuda, "cuInit");
        CuDeviceGetCount = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(cuda, "cuDeviceGetCount");
        CuDeviceGet = (delegate* unmanaged<int*, int, int>)NativeLibrary.GetExport(cuda, "cuDeviceGet");
        CuDevicePrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)NativeLibrary.GetExport(cuda, "cuDevicePrimaryCtxRetain");
        CuDevicePrimaryCtxRelease = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(cuda, "cuDevicePrimaryCtxRelease_v2");
        CuCtxSetCurrent = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(cuda, "cuCtxSetCurrent");
        CuMemAlloc = (delegate* unmanaged<ulong*, nuint, int>)NativeLibrary.GetExport(cuda, "cuMemAlloc_v2");
        CuMemFree = (delegate* unmanaged<ulong, int>)NativeLibrary.GetExport(cuda, "cuMemFree_v2");
        CuMemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)NativeLibrary.GetExport(cuda, "cuMemcpyHtoD_v2");
        CuMemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)NativeLibrary.GetExport(cuda, "cuMemcpyDtoH_v2");
        CuStreamSynchronize = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(cuda, "cuStreamSynchronize");
    }

    /// <summary>Loads NCCL and the CUDA driver and checks that there is a CUDA device, or throws
    /// InvalidOperationException saying which is missing (one line: the CLI prints it as is).</summary>
    public static NcclLibrary Load(string ncclName = NcclName, string cudaName = CudaName)
    {
        if (!NativeLibrary.TryLoad(ncclName, out var nccl))
            throw new InvalidOperationException(
                $"--distributed nccl needs NCCL, and {ncclName} was not found: install NCCL (e.g. the libnccl2 package " +
                "of NVIDIA's CUDA repository), or use --distributed mpi.");
        if (!NativeLibrary.TryLoad(cudaName, out var cuda))
            throw new InvalidOperationException(
                $"--distributed nccl needs a CUDA device, and the CUDA driver ({cudaName}) was not found: run it on a " +
                "machine with NVIDIA GPUs, or use --distributed mpi.");
        NcclLibrary library;
        try
        {
            library = new NcclLibrary(nccl, cuda);
        }
        catch (EntryPointNotFoundException error)
        {
            throw new InvalidOperationException($"{ncclName} or {cudaName} lacks a function NCCL 2 and CUDA 11+ have " +
                                                $"({error.Message}).", error);
        }
        int count = 0;
        if (library.CuInit(0) != 0 || library.CuDeviceGetCount(&count) != 0 || count == 0)
            throw new InvalidOperationException(
                "--distributed nccl needs a CUDA device, and the CUDA driver reports none: run it on a machine with " +
                "NVIDIA GPUs, or use --distributed mpi.");
        library.DeviceCount = count;
        return library;
    }

    /// <summary>CUDA devices on this host.</summary>
    public int DeviceCount { get; private set; }

    /// <summary>Throws InvalidOperationException naming the NCCL call and NCCL's message unless
    /// <paramref name="code"/> is ncclSuccess.</summary>
    public void Check(int code, string call)
    {
        if (code != 0)
            throw new InvalidOperationException(
                $"{call} failed with NCCL error {code}: {Marshal.PtrToStringUTF8((nint)_errorString(code))}.");
    }

    /// <summary>Throws InvalidOperationException naming the CUDA driver call unless <paramref name="code"/> is
    /// CUDA_SUCCESS.</summary>
    public static void CheckCuda(int code, string call)
    {
        if (code != 0) throw new InvalidOperationException($"{call} failed with CUDA error {code}.");
    }
}
