// The thread index of an implicitly grouped kernel (one launched with an Index1D extent), read from the grid, and
// the row of a row-grouped kernel (several rows per group).
//
// ILGPU 1.5.3 at O2 takes such a kernel's Index1D parameter for a value that every thread of a warp shares: each
// branch that depends on it is emitted as `bra.uni` (PTX's promise that the warp's threads all go the same way).
// A grid-stride loop whose threads run different trip counts then leaves the warp together, and threads run past
// their bounds: on an H200, StridedSum's first pass over 33 elements (two partial sums of 17 and 16 elements) read
// past its input and failed with an illegal address. The same index read from Grid.GlobalIndex is known to differ
// per thread, so its branches are plain `bra`. Every implicitly grouped kernel takes its index from here and
// leaves its Index1D parameter (the launch's extent guard, which ILGPU checks before the body) unread, as
// BackendCompileTests.ImplicitlyGroupedKernelsNeverReadTheirIndexParameter checks in the IL.
using ILGPU;

namespace Engine.Kernels.Ilgpu;

/// <summary>This thread's index in an implicitly grouped launch (module header).</summary>
public static class KernelIndex
{
    /// <summary>The index ILGPU passes as the kernel's Index1D parameter: block index × block size + thread
    /// index.</summary>
    public static int Global => Grid.GlobalIndex.X;

    /// <summary>This thread's row in a row-grouped launch (<see cref="IlgpuBackend.RowConfig"/>): each group holds
    /// Group.DimY rows of Group.DimX lanes; the last group's rows may pass the tensor's (the kernel returns
    /// there).</summary>
    public static int Row => Grid.IdxX * Group.DimY + Group.IdxY;
}
