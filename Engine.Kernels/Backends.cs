// Backends: the one place that turns a device kind's name into a concrete backend. cuda, opencl and ilgpu-cpu are
// the ILGPU backend on that accelerator; cpu is the managed-SIMD backend. Everything above this layer knows only
// Backend and the kind names.
using Engine.Kernels.Cpu;
using Engine.Kernels.Ilgpu;

namespace Engine.Kernels;

/// <summary>Creates backends by device kind: <c>cuda</c> and <c>opencl</c> (ILGPU kernels on a GPU), <c>cpu</c>
/// (the managed-SIMD backend) and <c>ilgpu-cpu</c> (the ILGPU kernels on ILGPU's CPU accelerator). Kind names are
/// matched without regard to case or surrounding spaces.</summary>
public static class Backends
{
    /// <summary>Every device kind, in the order they are listed to users.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["cuda", "opencl", "cpu", "ilgpu-cpu"];

    /// <summary>True when a backend of <paramref name="kind"/> can be created on this machine (cpu and ilgpu-cpu
    /// always; cuda and opencl when ILGPU finds such a device).</summary>
    /// <exception cref="ArgumentException">Unknown kind.</exception>
    public static bool IsAvailable(string kind) =>
        IlgpuKindOf(kind) is not { } ilgpu || IlgpuBackend.IsAvailable(ilgpu);

    /// <summary>Creates a backend of <paramref name="kind"/>; the caller owns (disposes) it.</summary>
    /// <exception cref="ArgumentException">Unknown kind.</exception>
    /// <exception cref="InvalidOperationException">The kind is not present on this machine.</exception>
    public static Backend Create(string kind) =>
        IlgpuKindOf(kind) is { } ilgpu ? IlgpuBackend.Create(ilgpu) : new CpuBackend();

    /// <summary>The ILGPU accelerator of a kind, or null for the managed-SIMD cpu backend.</summary>
    private static IlgpuKind? IlgpuKindOf(string kind) => kind.Trim().ToLowerInvariant() switch
    {
        "cuda" => IlgpuKind.Cuda,
        "opencl" => IlgpuKind.OpenCL,
        "ilgpu-cpu" => IlgpuKind.Cpu,
        "cpu" => null,
        _ => throw new ArgumentException(
            $"Unknown device '{kind}'. Known devices: {string.Join(", ", Kinds)}.", nameof(kind)),
    };
}
