// Every ILGPU kernel of Engine.Kernels, for float and double and every op struct it accepts, must compile with
// ILGPU's PTX backend (CUDA, sm_90) and its OpenCL C backend — without a GPU. A kernel that only the CPU
// accelerator accepts fails here, in CI, instead of on the first GPU.
using System.Reflection;
using System.Reflection.Emit;
using System.Text.RegularExpressions;
using Engine.Bench.Commands;
using Engine.Kernels;
using Engine.Kernels.Ilgpu;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class BackendCompileTests
{
    /// <summary>Every concrete kernel: each public static method of a *Kernels class in Engine.Kernels.Ilgpu,
    /// instantiated for float and double and, for op-generic kernels, every op struct its constraints allow; the
    /// tiled GEMM for each (loader, loader, store) combination the backend launches.</summary>
    public static IEnumerable<TestCaseData> Kernels()
    {
        var assembly = typeof(IlgpuBackend).Assembly;
        var kernelClasses = assembly.GetTypes()
            .Where(t => t.Namespace == typeof(IlgpuBackend).Namespace && t.Name.EndsWith("Kernels") && t.IsAbstract && t.IsSealed);
        // Op structs: the shared elementwise ops (Engine.Kernels, ElementwiseOps.cs) and the ILGPU-only ones.
        var opDefinitions = assembly.GetTypes()
            .Where(t => (t.Namespace == typeof(IUnaryOp<>).Namespace || t.Namespace == typeof(IlgpuBackend).Namespace) &&
                        t.IsValueType && t.IsGenericTypeDefinition && t.GetGenericArguments().Length == 1)
            .ToArray();
        foreach (var kernel in kernelClasses.SelectMany(c => c.GetMethods(BindingFlags.Public | BindingFlags.Static)))
            foreach (var element in new[] { typeof(float), typeof(double) })
                foreach (var method in Instantiate(kernel, element, opDefinitions))
                    yield return new TestCaseData(method).SetArgDisplayNames(Describe(method));
    }

    /// <summary>The operand combinations IlgpuBackend launches the tiled GEMM with (Gemm.cs, Convolution.cs), each
    /// with its real store and with split-K's partial store (then GemmKernels.SumSplits with the real store).</summary>
    private static readonly Type[][] GemmOperands =
    [
        [typeof(RowMajorLoader<>), typeof(RowMajorLoader<>), typeof(ScaledRowMajorStore<>)],
        [typeof(Im2ColLoader<>), typeof(RowMajorLoader<>), typeof(PixelMatrixStore<>)],
        [typeof(OutputGradientGatherLoader<>), typeof(WeightByInputChannelLoader<>), typeof(PhasePixelStore<>)],
        [typeof(PixelMatrixLoader<>), typeof(Im2ColLoader<>), typeof(ScaledRowMajorStore<>)],
        [typeof(RowMajorLoader<>), typeof(RowMajorLoader<>), typeof(SplitPartialStore<>)],
        [typeof(Im2ColLoader<>), typeof(RowMajorLoader<>), typeof(SplitPartialStore<>)],
        [typeof(OutputGradientGatherLoader<>), typeof(WeightByInputChannelLoader<>), typeof(SplitPartialStore<>)],
        [typeof(PixelMatrixLoader<>), typeof(Im2ColLoader<>), typeof(SplitPartialStore<>)],
    ];

    private static IEnumerable<MethodInfo> Instantiate(MethodInfo kernel, Type element, Type[] opDefinitions)
    {
        int arity = kernel.GetGenericArguments().Length;
        var candidates = arity switch
        {
            0 => [],
            1 => [[element]],
            2 => opDefinitions.Select(op => new[] { element, op.MakeGenericType(element) }).ToArray(),
            4 => GemmOperands.Select(ops => ops.Select(op => op.MakeGenericType(element)).Prepend(element).ToArray())
                .ToArray(),
            _ => throw new InvalidOperationException($"No instantiation rule for {kernel.Name} with {arity} type parameters."),
        };
        if (arity == 0) yield return kernel;
        foreach (var arguments in candidates)
        {
            MethodInfo? method = null;
            try { method = kernel.MakeGenericMethod(arguments); }
            catch (ArgumentException) { } // constraints not met: this op does not fit this kernel
            if (method is not null) yield return method;
        }
    }

    private static string Describe(MethodInfo method) =>
        $"{method.DeclaringType!.Name}.{method.Name}<{string.Join(", ", method.GetGenericArguments().Select(Describe))}>";

    /// <summary>A type argument without its element type: <c>RowMajorLoader</c>, <c>Single</c>.</summary>
    private static string Describe(Type type) => type.IsGenericType ? type.Name.Split('`')[0] : type.Name;

    private static EntryPointDescription EntryPoint(MethodInfo method) =>
        method.GetParameters()[0].ParameterType == typeof(Index1D)
            ? EntryPointDescription.FromImplicitlyGroupedKernel(method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(method);

    [TestCaseSource(nameof(Kernels))]
    public void CompilesToPtx(MethodInfo method)
    {
        // A fresh context per kernel: after one failed compile ILGPU's backends may fail later ones.
        using var context = Context.Create(b =>
        {
            b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2);
            FusedMultiplyAdd.Register(b);
        });
        using var backend = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPoint(method), KernelSpecialization.Empty);
        Assert.That(compiled.PTXAssembly, Does.Contain(".entry"));
        Assert.That(UniformBranchesOnCarriedFlags(compiled.PTXAssembly), Is.Empty,
            "bra.uni on a flag carried through a loop (mov.pred): threads may set it at different iterations");
        // float32 kernels keep everything in registers; in float64, ILGPU.Algorithms' software exp/log use
        // local temporaries, which is acceptable off the fast path.
        if (method.GetGenericArguments().FirstOrDefault() == typeof(float))
            Assert.That(compiled.PTXAssembly, Does.Not.Contain(".local"), "spilled to local memory");
    }

    /// <summary>The predicates that the PTX branches on with <c>bra.uni</c> (a promise that all active threads of
    /// the warp agree) although a <c>mov.pred</c> assigns them: a flag carried through a loop, which ILGPU 1.5.3 at
    /// O2 took for uniform when every value it was set to was a constant. In max-pool's forward, a window's "first
    /// tap found" flag, set later by threads whose windows start in the padding, was branched on so.</summary>
    private static IEnumerable<string> UniformBranchesOnCarriedFlags(string ptx)
    {
        var carried = Regex.Matches(ptx, @"mov\.pred\s+(%p\d+),").Select(m => m.Groups[1].Value).ToHashSet();
        return Regex.Matches(ptx, @"@!?(%p\d+)\s+bra\.uni\s").Select(m => m.Groups[1].Value).Where(carried.Contains)
            .Distinct();
    }

    /// <summary>The kernels the backend launches on OpenCL: all but the warp-shuffle group sums (OpenCL devices need
    /// not offer sub-group shuffles, so the backend uses SharedTreeSum there).</summary>
    public static IEnumerable<TestCaseData> OpenCLKernels() => Kernels().Where(c =>
        !((MethodInfo)c.Arguments[0]!).GetGenericArguments()
            .Any(t => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(WarpShuffleSum<>)));

    [TestCaseSource(nameof(OpenCLKernels))]
    public void CompilesToOpenCL(MethodInfo method)
    {
        using var context = Context.Create(b =>
        {
            b.OpenCL().EnableAlgorithms().Optimize(OptimizationLevel.O2);
            FusedMultiplyAdd.Register(b);
        });
        var capabilities = new CLCapabilityContext(float16: false, float64: true, genericAddressSpace: true,
            int64_Atomics: true, subGroups: false);
        using var backend = new CLBackend(context, capabilities, CLDeviceVendor.Nvidia, CLCVersion.CL20);
        var compiled = (CLCompiledKernel)backend.Compile(EntryPoint(method), KernelSpecialization.Empty);
        Assert.That(compiled.Source, Does.Contain("kernel"));
    }

    /// <summary>Grid-stride kernels whose every branch depends on the thread (a strided sum's partial, elementwise
    /// quads and tails): at O2 each conditional branch must be a plain <c>bra</c>. A <c>bra.uni</c> there (ILGPU's
    /// reading of an implicitly grouped kernel's index parameter, KernelIndex.cs) lets a warp leave a loop together
    /// although its threads' trip counts differ.</summary>
    [TestCase("sum")]
    [TestCase("add")]
    [TestCase("relu")]
    public void ThreadDependentBranchesAreNotMarkedUniform(string kernel)
    {
        string ptx = PtxReport.Compile(PtxReport.Kernels().Single(k => k.Name == kernel).Method);
        var branches = Regex.Matches(ptx, @"@!?%p\d+\s+bra(\.uni)?\s");
        Assert.That(branches, Is.Not.Empty, "conditional branches");
        Assert.That(branches.Where(b => b.Groups[1].Success).Select(b => b.Value.Trim()), Is.Empty,
            $"{kernel}: conditional branches marked uniform");
    }

    /// <summary>Every implicitly grouped kernel (Index1D first) leaves that parameter unread and takes its index from
    /// KernelIndex (KernelIndex.cs): read from the IL, so a kernel added later cannot bring the uniform-branch bug
    /// back unnoticed.</summary>
    [Test]
    public void ImplicitlyGroupedKernelsNeverReadTheirIndexParameter()
    {
        var kernels = typeof(IlgpuBackend).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(IlgpuBackend).Namespace && t.Name.EndsWith("Kernels"))
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
            .Where(m => m.GetParameters() is [{ ParameterType: var first }, ..] && first == typeof(Index1D))
            .ToList();
        Assert.That(kernels, Has.Count.GreaterThan(15), "implicitly grouped kernels found");
        Assert.That(kernels.Where(ReadsArgumentZero).Select(m => $"{m.DeclaringType!.Name}.{m.Name}"), Is.Empty);
    }

    /// <summary>Whether <paramref name="method"/>'s IL loads argument 0 (or its address), decoded opcode by opcode
    /// so that operand bytes are never taken for instructions.</summary>
    private static bool ReadsArgumentZero(MethodInfo method)
    {
        byte[] il = method.GetMethodBody()!.GetILAsByteArray()!;
        for (int at = 0; at < il.Length;)
        {
            var op = il[at] == 0xFE ? TwoByteOpCodes[il[at + 1]] : OneByteOpCodes[il[at]];
            at += op.Size;
            if (op == OpCodes.Ldarg_0) return true;
            if ((op == OpCodes.Ldarg_S || op == OpCodes.Ldarga_S) && il[at] == 0) return true;
            if ((op == OpCodes.Ldarg || op == OpCodes.Ldarga) && BitConverter.ToUInt16(il, at) == 0) return true;
            at += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
                _ => 4,
            };
        }
        return false;
    }

    private static readonly Dictionary<byte, OpCode> OneByteOpCodes = AllOpCodes().Where(o => o.Size == 1)
        .ToDictionary(o => (byte)o.Value);

    private static readonly Dictionary<byte, OpCode> TwoByteOpCodes = AllOpCodes().Where(o => o.Size == 2)
        .ToDictionary(o => (byte)(o.Value & 0xFF));

    private static IEnumerable<OpCode> AllOpCodes() =>
        typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!);

    [Test]
    public void EveryKernelClassIsCovered()
    {
        var names = Kernels().Select(c => c.TestName ?? c.Arguments[0]!.ToString()!).ToList();
        Assert.That(Kernels().Count(c => ((MethodInfo)c.Arguments[0]!).Name == nameof(GemmKernels.Tiled)),
            Is.EqualTo(2 * GemmOperands.Length), "tiled GEMM per operand combination and element type");
        Assert.That(Kernels().Count(), Is.GreaterThanOrEqualTo(50), string.Join(", ", names));
    }
}
