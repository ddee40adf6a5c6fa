// The tiled GEMM's speed properties, asserted on its PTX (compiled offline as `kernels --ptx` does: sm_90, O2, the
// fused multiply-add intrinsic; no GPU needed) for every float32 instantiation IlgpuBackend launches: the K-tile
// loop holds the 8 × 64 fused multiply-adds of an 8 × 8 thread tile and nothing but fma for float math, reads its
// fragments from shared memory as 16-byte vectors (at most one shared load per 8 FMAs), synchronises once per
// K tile, divides in 64 bits nowhere, and the kernel uses no local memory. What PTX cannot show — physical
// registers, spills by ptxas, achieved throughput — needs a GPU (docs/kernels.md).
using System.Reflection;
using Engine.Bench.Commands;
using Engine.Kernels.Ilgpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class GemmPtxTests
{
    public static IEnumerable<TestCaseData> TiledKernels() =>
        PtxReport.TiledKernels().Select(k => new TestCaseData(k.Method).SetArgDisplayNames(k.Name));

    [TestCaseSource(nameof(TiledKernels))]
    public void KTileLoopMeetsTheGoals(MethodInfo kernel)
    {
        string ptx = PtxReport.Compile(kernel); // a fresh context per kernel
        var loop = PtxReport.AnalyzeHotLoop(ptx);
        Assert.Multiple(() =>
        {
            Assert.That(loop.Fma, Is.EqualTo(GemmTile<float>.Depth * GemmTile<float>.Size * GemmTile<float>.Size),
                "fma.rn.f32 per K tile: 8 depths × 8 × 8 outputs");
            Assert.That(loop.MulAdd, Is.Zero, "float math other than fma in the K-tile loop");
            Assert.That(loop.SharedLoads, Is.EqualTo(loop.SharedVectorLoads), "every shared load is ld.shared.v4");
            Assert.That(loop.SharedLoads * 8, Is.LessThanOrEqualTo(loop.Fma), "shared loads per FMA ≤ 1/8");
            Assert.That(loop.Barriers, Is.EqualTo(1), "barriers per K tile");
            Assert.That(loop.DivRem64, Is.Zero, "64-bit div/rem in the K-tile loop");
            Assert.That(loop.KernelLocal, Is.False, "local memory");
            Assert.That(ptx, Does.Not.Match(@"\b(div|rem)\.[su]64\b"), "64-bit div/rem anywhere in the kernel");
        });
    }

    [Test]
    public void OperandsWithAContiguousAxisLoadVectors()
    {
        // Row-major matrices (gemm's A and B, the forward weights) and dyᵀ (weight gradient) load 16-byte quads when
        // the host has found them aligned; the gathers (im2col, the backward-data gather and weights) do not.
        foreach (var (name, kernel) in PtxReport.TiledKernels())
        {
            string ptx = PtxReport.Compile(kernel);
            bool vectorOperand = !name.StartsWith("conv-backward-data", StringComparison.Ordinal);
            Assert.That(ptx, vectorOperand ? Does.Match(@"ld\.global\S*\.v4\.f32") : Does.Not.Match(@"ld\.global\S*\.v4\.f32"),
                name);
        }
    }

    [Test]
    public void AnalysisCountsOnlyTheLoopAroundTheFma()
    {
        // Hand-written PTX laid out as ILGPU does it: the loop body's second half (a barrier) placed after the back
        // edge's block and reached by a jump; one fma in the prologue's place after the loop.
        const string loopPtx = """
            .visible .entry k() {
            mov.f32 %f1, 0f00000000;
            $L1:
            @%p2 bra $L3;
            ld.shared.v4.f32 {%f2, %f3, %f4, %f5}, [%rd1];
            fma.rn.f32 %f1, %f2, %f3, %f1;
            fma.rn.f32 %f1, %f4, %f5, %f1;
            bra.uni $L2;
            $L4:
            fma.rn.f32 %f1, %f2, %f3, %f1;
            ret;
            $L2:
            bar.sync 0;
            @%p1 bra $L1;
            bra.uni $L4;
            $L3:
            ret;
            }
            """;
        var loop = PtxReport.AnalyzeHotLoop(loopPtx);
        Assert.That((loop.Fma, loop.SharedLoads, loop.SharedVectorLoads, loop.Barriers), Is.EqualTo((2, 1, 1, 1)));
        Assert.Throws<InvalidOperationException>(() => PtxReport.AnalyzeHotLoop(
            loopPtx.Replace("@%p1 bra $L1;", "")), "no back edge: no loop");
    }
}
