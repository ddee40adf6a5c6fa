// What each loaded kernel holds on a CUDA device, read from the driver (cuFuncGetAttribute): registers and spilled
// local memory per thread, static shared memory, and how many groups of 256 threads fit on one multiprocessor by
// those alone (the occupancy API). ptxas decides these when the driver loads the PTX, so they exist only on a GPU;
// `kernels --conv-shapes` prints them after its table on CUDA.
using System.Runtime.InteropServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Engine.Kernels.Ilgpu;

/// <summary>One loaded kernel's resources on a CUDA device.</summary>
/// <param name="Kernel">The kernel's name and its element and loader types.</param>
/// <param name="Registers">32-bit registers per thread.</param>
/// <param name="LocalBytes">Local (spilled) memory per thread, in bytes.</param>
/// <param name="StaticSharedBytes">Statically declared shared memory per group, in bytes.</param>
/// <param name="GroupsOf256PerMultiprocessor">Groups of 256 threads that fit on one multiprocessor by registers
/// and static shared memory (dynamic shared memory not counted).</param>
public readonly record struct KernelResources(string Kernel, int Registers, int LocalBytes, int StaticSharedBytes,
    int GroupsOf256PerMultiprocessor);

public sealed partial class IlgpuBackend
{
    /// <summary>The resources of every kernel this backend has loaded, by name; CUDA only.</summary>
    /// <exception cref="NotSupportedException">The backend does not run on CUDA.</exception>
    public IReadOnlyList<KernelResources> LoadedKernelResources()
    {
        if (_accelerator is not CudaAccelerator)
            throw new NotSupportedException($"Kernel resources come from the CUDA driver; this backend is {Kind}.");
        var rows = new List<KernelResources>();
        foreach (var ((name, args), loaded) in _kernels)
        {
            var kernel = loaded.GetKernel();
            nint function = ((CudaKernel)kernel).FunctionPtr;
            rows.Add(new KernelResources($"{name}<{TypeNames(args)}>", Attribute(function, NumRegisters),
                Attribute(function, LocalSizeBytes), Attribute(function, SharedSizeBytes),
                _accelerator.EstimateMaxActiveGroupsPerMultiprocessor(kernel, 256, 0)));
        }
        return rows.OrderBy(r => r.Kernel, StringComparer.Ordinal).ToList();
    }

    /// <summary>A type's name without namespaces or generic arity marks; a tuple's as its elements'.</summary>
    private static string TypeNames(Type type)
    {
        string name = type.Name.Split('`')[0];
        if (!type.IsGenericType) return name;
        string arguments = string.Join(", ", type.GetGenericArguments().Select(TypeNames));
        return name.StartsWith("ValueTuple", StringComparison.Ordinal) ? arguments : $"{name}<{arguments}>";
    }

    private const int SharedSizeBytes = 1, LocalSizeBytes = 3, NumRegisters = 4; // CUfunction_attribute

    private static int Attribute(nint function, int attribute)
    {
        int status = CuFuncGetAttribute(out int value, attribute, function);
        if (status != 0)
            throw new InvalidOperationException($"cuFuncGetAttribute({attribute}) failed: CUDA error {status}.");
        return value;
    }

    [DllImport("libcuda.so.1", EntryPoint = "cuFuncGetAttribute")]
    private static extern int CuFuncGetAttribute(out int value, int attribute, nint function);
}
