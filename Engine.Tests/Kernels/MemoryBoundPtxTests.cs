// What the memory-bound ILGPU kernels promise about their compiled code, checked on the PTX that ILGPU emits for
// CUDA (sm_90, O2, float32 — as the backend compiles them; no GPU needed): no 64-bit integer division anywhere,
// no integer division or remainder inside any loop (the per-element path), 16-byte vector loads and stores where
// the kernels move float4 quads, and warp shuffles in the group reductions. Loops are found on the control-flow
// graph (PtxReport.InstructionsInLoops): a basic block is inside a loop when it lies on a cycle.
using System.Reflection;
using System.Text.RegularExpressions;
using Engine.Bench.Commands;
using Engine.Kernels;
using Engine.Kernels.Ilgpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed partial class MemoryBoundPtxTests
{
    /// <summary>What a kernel's PTX must show.</summary>
    [Flags]
    public enum Promise
    {
        /// <summary>No 64-bit division or remainder, and no integer division or remainder inside a loop.</summary>
        NoDivisionPerElement = 1,

        /// <summary>At least one <c>ld.global.v4.f32</c>.</summary>
        VectorLoads = 2,

        /// <summary>At least one <c>st.global.v4.f32</c>.</summary>
        VectorStores = 4,

        /// <summary><c>shfl.sync.down</c> in the group reduction.</summary>
        WarpShuffles = 8,
    }

    private static MethodInfo Method(Type owner, string name, params Type[] arguments) =>
        owner.GetMethod(name)!.MakeGenericMethod(arguments);

    private static readonly Type F = typeof(float);

    public static IEnumerable<TestCaseData> Kernels()
    {
        const Promise streaming = Promise.NoDivisionPerElement | Promise.VectorLoads | Promise.VectorStores;
        const Promise reduction = Promise.NoDivisionPerElement | Promise.VectorLoads | Promise.WarpShuffles;
        var shuffle = typeof(WarpShuffleSum<float>);
        (string, MethodInfo, Promise)[] cases =
        [
            ("batchnorm-statistics", Method(typeof(BatchNormKernels), nameof(BatchNormKernels.StatisticsPartials), F,
                shuffle), reduction),
            ("batchnorm-parameter-gradients", Method(typeof(BatchNormKernels),
                nameof(BatchNormKernels.GradientPartials), F, shuffle), reduction | Promise.VectorStores),
            ("maxpool-forward", Method(typeof(PoolingKernels), nameof(PoolingKernels.MaxForward), F),
                Promise.NoDivisionPerElement),
            ("maxpool-backward", Method(typeof(PoolingKernels), nameof(PoolingKernels.MaxBackward), F),
                Promise.NoDivisionPerElement),
            ("avgpool-forward", Method(typeof(PoolingKernels), nameof(PoolingKernels.AverageForward), F),
                Promise.NoDivisionPerElement),
            ("avgpool-backward", Method(typeof(PoolingKernels), nameof(PoolingKernels.AverageBackward), F),
                Promise.NoDivisionPerElement),
            ("batchnorm-normalize", Method(typeof(BatchNormKernels), nameof(BatchNormKernels.Normalize), F),
                streaming),
            ("batchnorm-input-gradient", Method(typeof(BatchNormKernels), nameof(BatchNormKernels.InputGradient), F),
                streaming),
            ("add", Method(typeof(ElementwiseKernels), nameof(ElementwiseKernels.Binary), F, typeof(AddOp<float>)),
                streaming),
            ("relu", Method(typeof(ElementwiseKernels), nameof(ElementwiseKernels.Unary), F, typeof(ReluOp<float>)),
                streaming),
            ("relu-backward", Method(typeof(ElementwiseKernels), nameof(ElementwiseKernels.Binary), F,
                typeof(ReluBackwardOp<float>)), streaming),
            ("shortcut-forward", Method(typeof(ShortcutKernels), nameof(ShortcutKernels.Forward), F),
                Promise.NoDivisionPerElement),
            ("shortcut-backward", Method(typeof(ShortcutKernels), nameof(ShortcutKernels.Backward), F),
                Promise.NoDivisionPerElement),
            ("sum-per-channel", Method(typeof(ReductionKernels), nameof(ReductionKernels.SumPerChannel), F, shuffle),
                Promise.WarpShuffles),
        ];
        foreach (var (name, method, promise) in cases)
            yield return new TestCaseData(method, promise).SetArgDisplayNames(name);
    }

    [TestCaseSource(nameof(Kernels))]
    public void PtxKeepsItsPromises(MethodInfo method, Promise promise)
    {
        string ptx = PtxReport.Compile(method);
        using var scope = Assert.EnterMultipleScope();
        if (promise.HasFlag(Promise.NoDivisionPerElement))
        {
            Assert.That(Wide().IsMatch(ptx), Is.False, "64-bit div/rem");
            Assert.That(DivisionsInLoops(ptx), Is.Empty, "integer div/rem inside a loop");
        }
        if (promise.HasFlag(Promise.VectorLoads)) Assert.That(ptx, Does.Contain("ld.global.v4.f32"), "vector loads");
        if (promise.HasFlag(Promise.VectorStores)) Assert.That(ptx, Does.Contain("st.global.v4.f32"), "vector stores");
        if (promise.HasFlag(Promise.WarpShuffles)) Assert.That(ptx, Does.Contain("shfl.sync.down"), "warp shuffles");
    }

    [Test]
    public void TheLoopFinderSeesTheDivisionsOfAFlatIndex()
    {
        // Global average pool's backward divides its 64-bit grid-stride index by the plane size per element: both
        // checks must flag it.
        var ptx = PtxReport.Compile(Method(typeof(PoolingKernels), nameof(PoolingKernels.GlobalAverageBackward), F));
        using var scope = Assert.EnterMultipleScope();
        Assert.That(DivisionsInLoops(ptx), Is.Not.Empty);
        Assert.That(Wide().IsMatch(ptx), Is.True);
    }

    [GeneratedRegex(@"\b(div|rem)\.[su]64\b")]
    private static partial Regex Wide();

    [GeneratedRegex(@"\b(div|rem)\.[su](32|64)\b")]
    private static partial Regex Division();

    /// <summary>The integer div/rem instructions inside loops (<see cref="PtxReport.InstructionsInLoops"/>).</summary>
    private static List<string> DivisionsInLoops(string ptx) =>
        [.. PtxReport.InstructionsInLoops(ptx).Where(line => Division().IsMatch(line))];
}
