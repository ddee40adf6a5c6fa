// `kernels`: the kernel microbenchmarks (Benchmarks/KernelBenchmarks.cs) under BenchmarkDotNet on the chosen
// device, with GFLOP/s or GB/s computed from the measured medians; or, with --ptx DIR, the hot kernels compiled to
// PTX (sm_90, O2, float32) without a GPU, written to DIR with a table of what each contains.
//
//   dotnet run --project Engine.Bench -c Release -- kernels [--device D] [--size small|large] [--filter Conv*]
//   dotnet run --project Engine.Bench -c Release -- kernels --ptx /tmp/ptx
//   dotnet run --project Engine.Bench -c Release -- kernels --device cpu --conv-shapes resnet50 --batch 1
using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Engine.Bench.Benchmarks;
using Engine.Kernels;
using Engine.Kernels.Ilgpu;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Perfolizer.Horology;

namespace Engine.Bench.Commands;

internal static class KernelsCommand
{
    public static Command Create()
    {
        var device = CommonOptions.Device();
        var size = new Option<string>("--size")
        {
            Description = "Problem sizes: small (about a minute on ILGPU's CPU accelerator) or large (ResNet " +
                          "scale, for a GPU).",
            DefaultValueFactory = _ => "small",
        };
        size.AcceptOnlyFromAmong("small", "large");
        var filter = new Option<string[]>("--filter")
        {
            Description = "Benchmarks to run, by method name with * and ? wildcards (e.g. Conv* Gemm); default: all.",
            AllowMultipleArgumentsPerToken = true,
        };
        var ptx = new Option<string?>("--ptx")
        {
            Description = "Instead of benchmarking, compile the hot kernels to PTX (sm_90, O2, float32) into " +
                          "this folder and print what each contains.",
        };
        var convShapes = new Option<string?>("--conv-shapes")
        {
            Description = "Instead of the suite, time every distinct convolution of this model (e.g. resnet50): " +
                          "forward, backward data and backward weight, GFLOP/s per shape.",
        };
        var batch = new Option<int>("--batch")
        {
            Description = "Images per convolution call with --conv-shapes.", DefaultValueFactory = _ => 1,
        };
        var iterations = new Option<int>("--iters")
        {
            Description = "Timed calls per pass with --conv-shapes (the median is reported).",
            DefaultValueFactory = _ => 5,
        };
        var training = new Option<bool>("--training")
        {
            Description = "With --conv-shapes: write the weights before every timed call (untimed), as an optimizer " +
                          "step does in training, so that each pass packs or transforms them again.",
        };
        var command = new Command("kernels", "Kernel microbenchmarks (GFLOP/s, GB/s), per-shape convolution " +
                                             "timings of a model, or PTX inspection.")
        {
            device, size, filter, ptx, convShapes, batch, iterations, training,
        };
        command.SetAction(result =>
        {
            string? ptxFolder = result.GetValue(ptx);
            if (ptxFolder is not null) CommonOptions.RequireWritableFolder(ptxFolder, "--ptx");
            if (result.GetValue(training) && result.GetValue(convShapes) is null)
                throw new ArgumentException("--training applies to --conv-shapes only.");
            if (result.GetValue(convShapes) is { } model)
            {
                using var shapeDevice = CommonOptions.OpenDevice(result.GetValue(device));
                return ConvShapeBenchmarks.Run(shapeDevice, model, result.GetValue(batch), result.GetValue(iterations),
                    result.GetValue(training));
            }
            return ptxFolder is not null
                ? PtxReport.Run(ptxFolder)
                : RunBenchmarks(result.GetValue(device), KernelShapes.Parse(result.GetValue(size) ?? "small"),
                    result.GetValue(filter) ?? []);
        });
        return command;
    }

    private static int RunBenchmarks(string? requestedDevice, KernelShapes shapes, string[] patterns)
    {
        var regexes = patterns.Select(Glob).ToArray();
        string[] benchmarks = typeof(KernelBenchmarks).GetMethods()
            .Where(m => m.GetCustomAttribute<BenchmarkDotNet.Attributes.BenchmarkAttribute>() is not null)
            .Select(m => m.Name).ToArray();
        if (patterns.Length > 0 && !benchmarks.Any(name => regexes.Any(r => r.IsMatch(name))))
            throw new ArgumentException($"--filter {string.Join(" ", patterns)} matches no benchmark; the benchmarks " +
                                        $"are {string.Join(", ", benchmarks)}.");
        using var device = CommonOptions.OpenDevice(requestedDevice);
        KernelBenchmarks.SharedDevice = device;
        KernelBenchmarks.Shapes = shapes;
        Console.WriteLine($"sizes: {shapes.Name}; float32; every call synchronises the device");

        var config = ManualConfig.CreateEmpty()
            .AddJob(BenchmarkJobs.Short())
            .AddLogger(ConsoleLogger.Default)
            .AddColumnProvider(DefaultColumnProviders.Descriptor, DefaultColumnProviders.Statistics)
            .AddColumn(StatisticColumn.Median)
            .AddColumn(new ThroughputColumn(ThroughputColumn.Kind.Shape),
                new ThroughputColumn(ThroughputColumn.Kind.Work),
                new ThroughputColumn(ThroughputColumn.Kind.Throughput))
            .WithOptions(ConfigOptions.JoinSummary);
        if (patterns.Length > 0)
        {
            config = config.AddFilter(new SimpleFilter(benchmarkCase =>
                regexes.Any(r => r.IsMatch(benchmarkCase.Descriptor.WorkloadMethod.Name))));
        }

        var summary = BenchmarkRunner.Run<KernelBenchmarks>(config);
        KernelBenchmarks.SharedDevice = null;
        if (summary.Reports.Length == 0)
        {
            Console.Error.WriteLine($"No benchmark matched --filter {string.Join(" ", patterns)}.");
            return 1;
        }

        // The table for docs/kernels.md, from the same medians.
        var table = new StringBuilder();
        table.AppendLine($"device: {device.Kind} — {device.Backend.Description}; sizes: {shapes.Name}; " +
                         $"{DateTime.UtcNow:yyyy-MM-dd}");
        table.AppendLine();
        table.AppendLine("| kernel | shape | work/call | median | throughput |");
        table.AppendLine("|---|---|---|---|---|");
        foreach (var report in summary.Reports)
        {
            string method = report.BenchmarkCase.Descriptor.WorkloadMethod.Name;
            double? median = report.ResultStatistics?.Median;
            table.AppendLine($"| {method} | {KernelWork.Of(method, shapes).Shape} | " +
                             $"{ThroughputColumn.Work(method, shapes)} | {FormatTime(median)} | " +
                             $"{ThroughputColumn.Throughput(method, shapes, median)} |");
        }
        Console.WriteLine();
        Console.WriteLine(table);
        string path = Path.Combine(summary.ResultsDirectoryPath, $"kernels-{device.Kind}-{shapes.Name}.md");
        File.WriteAllText(path, table.ToString());
        Console.WriteLine($"table written to {path}");
        return summary.Reports.All(r => r.Success) ? 0 : 1;
    }

    private static string FormatTime(double? ns) => ns switch
    {
        null => "NA",
        >= 1e6 => (ns.Value / 1e6).ToString("F3", CultureInfo.InvariantCulture) + " ms",
        >= 1e3 => (ns.Value / 1e3).ToString("F1", CultureInfo.InvariantCulture) + " µs",
        _ => ns.Value.ToString("F0", CultureInfo.InvariantCulture) + " ns",
    };

    private static Regex Glob(string pattern) =>
        new("^" + Regex.Escape(pattern).Replace(@"\*", ".*").Replace(@"\?", ".") + "$",
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
}

/// <summary>Compiles the hot kernels to PTX as the CUDA backend would (sm_90, O2, ILGPU.Algorithms, the fused
/// multiply-add intrinsic, float32) — no GPU needed — and counts what matters for speed in each; for the tiled GEMM
/// also what its K-tile loop holds (<see cref="HotLoop"/>).</summary>
public static class PtxReport
{
    private static MethodInfo Tiled(Type a, Type b, Type c) =>
        typeof(GemmKernels).GetMethod(nameof(GemmKernels.Tiled))!.MakeGenericMethod(typeof(float), a, b, c);

    private static MethodInfo Generic(Type owner, string name, params Type[] arguments) =>
        owner.GetMethod(name)!.MakeGenericMethod(arguments.Length == 0 ? [typeof(float)] : arguments);

    /// <summary>(file name, kernel) for every instantiation of the tiled GEMM that IlgpuBackend launches, float32:
    /// gemm and the three convolution passes, each with its real store and with split-K's partial store.</summary>
    public static IReadOnlyList<(string Name, MethodInfo Method)> TiledKernels()
    {
        Type im2Col = typeof(Im2ColLoader<float>), rowMajor = typeof(RowMajorLoader<float>),
            gather = typeof(OutputGradientGatherLoader<float>), weights = typeof(WeightByInputChannelLoader<float>),
            pixels = typeof(PixelMatrixLoader<float>), pixelStore = typeof(PixelMatrixStore<float>),
            phaseStore = typeof(PhasePixelStore<float>),
            scaled = typeof(ScaledRowMajorStore<float>), split = typeof(SplitPartialStore<float>);
        return
        [
            ("conv-forward", Tiled(im2Col, rowMajor, pixelStore)),
            ("conv-backward-data", Tiled(gather, weights, phaseStore)),
            ("conv-backward-weight", Tiled(pixels, im2Col, scaled)),
            ("gemm", Tiled(rowMajor, rowMajor, scaled)),
            ("conv-forward-split", Tiled(im2Col, rowMajor, split)),
            ("conv-backward-data-split", Tiled(gather, weights, split)),
            ("conv-backward-weight-split", Tiled(pixels, im2Col, split)),
            ("gemm-split", Tiled(rowMajor, rowMajor, split)),
        ];
    }

    /// <summary>(file name, kernel) for every kernel the benchmarks time, float32, and the split-K variants of the
    /// tiled GEMM.</summary>
    public static IReadOnlyList<(string Name, MethodInfo Method)> Kernels() =>
    [
        .. TiledKernels(),
        ("batchnorm-statistics", Generic(typeof(BatchNormKernels), nameof(BatchNormKernels.StatisticsPartials),
            typeof(float), typeof(WarpShuffleSum<float>))),
        ("batchnorm-normalize", Generic(typeof(BatchNormKernels), nameof(BatchNormKernels.Normalize))),
        ("batchnorm-parameter-gradients", Generic(typeof(BatchNormKernels),
            nameof(BatchNormKernels.GradientPartials), typeof(float), typeof(WarpShuffleSum<float>))),
        ("batchnorm-input-gradient", Generic(typeof(BatchNormKernels), nameof(BatchNormKernels.InputGradient))),
        ("add", Generic(typeof(ElementwiseKernels), nameof(ElementwiseKernels.Binary), typeof(float),
            typeof(AddOp<float>))),
        ("relu", Generic(typeof(ElementwiseKernels), nameof(ElementwiseKernels.Unary), typeof(float),
            typeof(ReluOp<float>))),
        ("maxpool-forward", Generic(typeof(PoolingKernels), nameof(PoolingKernels.MaxForward))),
        ("maxpool-backward", Generic(typeof(PoolingKernels), nameof(PoolingKernels.MaxBackward))),
        ("shortcut-forward", Generic(typeof(ShortcutKernels), nameof(ShortcutKernels.Forward))),
        ("shortcut-backward", Generic(typeof(ShortcutKernels), nameof(ShortcutKernels.Backward))),
        ("sgd-step", Generic(typeof(OptimizerKernels), nameof(OptimizerKernels.SgdStep))),
        ("sum", Generic(typeof(ReductionKernels), nameof(ReductionKernels.StridedSum))),
        ("sum-splits", Generic(typeof(GemmKernels), nameof(GemmKernels.SumSplits), typeof(float),
            typeof(ScaledRowMajorStore<float>))),
    ];

    /// <summary>The PTX of <paramref name="method"/>, from a fresh context (a failed compile can poison one).</summary>
    public static string Compile(MethodInfo method)
    {
        using var context = Context.Create(b =>
        {
            b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2);
            FusedMultiplyAdd.Register(b);
        });
        using var backend = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        var entry = method.GetParameters()[0].ParameterType == typeof(Index1D)
            ? EntryPointDescription.FromImplicitlyGroupedKernel(method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(method);
        return ((PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
    }

    /// <summary>Compiles every kernel into <paramref name="folder"/> and prints the count tables; 0.</summary>
    public static int Run(string folder)
    {
        Directory.CreateDirectory(folder);
        Console.WriteLine("PTX: sm_90 (ILGPU emits .target sm_80), O2, EnableAlgorithms, float32; static instruction " +
                          "counts (an instruction inside a loop counts once); registers are PTX virtual registers");
        Console.WriteLine();
        Console.WriteLine("| kernel | instr | ld.global (v2/v4) | st.global | ld.shared (v4) | st.shared | fma.f32 | " +
                          "mul.f32 | add.f32 | div/rem s32 | div/rem s64 | bar.sync | .local | registers declared |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        var hot = new List<(string Name, HotLoop Loop)>();
        foreach (var (name, method) in Kernels())
        {
            string ptx = Compile(method);
            File.WriteAllText(Path.Combine(folder, name + ".ptx"), ptx);
            var c = Count(ptx);
            Console.WriteLine($"| {name} | {c.Instructions} | {c.GlobalLoads} ({c.GlobalVectorLoads}) | " +
                              $"{c.GlobalStores} | {c.SharedLoads} ({c.SharedVectorLoads}) | {c.SharedStores} | " +
                              $"{c.Fma} | {c.Mul} | {c.Add} | {c.DivRem32} | {c.DivRem64} | {c.Barriers} | " +
                              $"{(c.Local ? "yes" : "none")} | {c.Registers} |");
            if (method.Name == nameof(GemmKernels.Tiled)) hot.Add((name, AnalyzeHotLoop(ptx)));
        }
        Console.WriteLine();
        Console.WriteLine("Tiled GEMM, the K-tile loop (its basic blocks; the stage copy's own loops included, " +
                          "prologue and epilogue not). Goals: shared loads per FMA ≤ 1/8, 1 barrier per K tile, no .local, no " +
                          "64-bit division.");
        Console.WriteLine();
        Console.WriteLine("| kernel | fma.rn.f32 per K tile | mul/add.f32 | ld.shared (v4) | shared loads per FMA | " +
                          "st.shared (v4) | ld.global (v4) | bar.sync per K tile | div/rem s32 | div/rem 64-bit | " +
                          "loop instr | .local (kernel) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var (name, l) in hot)
        {
            Console.WriteLine($"| {name} | {l.Fma} | {l.MulAdd} | {l.SharedLoads} ({l.SharedVectorLoads}) | " +
                              $"1/{(l.SharedLoads == 0 ? "∞" : (l.Fma / (double)l.SharedLoads).ToString("0.#", CultureInfo.InvariantCulture))} | " +
                              $"{l.SharedStores} ({l.SharedVectorStores}) | {l.GlobalLoads} ({l.GlobalVectorLoads}) | " +
                              $"{l.Barriers} | {l.DivRem32} | {l.DivRem64} | {l.Instructions} | " +
                              $"{(l.KernelLocal ? "yes" : "none")} |");
        }
        Console.WriteLine();
        Console.WriteLine($"PTX written to {Path.GetFullPath(folder)}");
        return 0;
    }

    /// <summary>Static instruction counts of one kernel's PTX.</summary>
    public readonly record struct Counts(int Instructions, int GlobalLoads, int GlobalVectorLoads, int GlobalStores,
        int SharedLoads, int SharedVectorLoads, int SharedStores, int Fma, int Mul, int Add, int DivRem32, int DivRem64,
        int Barriers, bool Local, string Registers);

    /// <summary>What the tiled GEMM's K-tile loop holds: static counts over the loop's basic blocks — those that
    /// the block of the kernel's first <c>fma.rn.f32</c> reaches and that reach it back (so the stage copy's own loops
    /// count, the prologue and epilogue do not); <see cref="KernelLocal"/> is for the whole kernel.</summary>
    public readonly record struct HotLoop(int Instructions, int Fma, int MulAdd, int SharedLoads,
        int SharedVectorLoads, int SharedStores, int SharedVectorStores, int GlobalLoads, int GlobalVectorLoads,
        int Barriers, int DivRem32, int DivRem64, bool KernelLocal);

    /// <summary>The instructions of <paramref name="ptx"/> in order (predicates kept), with labels as
    /// <c>label:</c> lines.</summary>
    private static string[] Lines(string ptx) => ptx.Split('\n').Select(l => l.Trim())
        .Where(l => (l.EndsWith(';') && !l.StartsWith('.') && !l.StartsWith("//")) || Regex.IsMatch(l, @"^\$?\w+:$"))
        .ToArray();

    /// <summary>An instruction without its predicate (<c>@%p1 bra L;</c> → <c>bra L;</c>).</summary>
    private static string Unpredicated(string line) => line.StartsWith('@') ? line[(line.IndexOf(' ') + 1)..].Trim() : line;

    /// <summary>The control-flow graph of <paramref name="ptx"/>: its basic blocks (a label starts one, a branch
    /// or return ends one; predicates kept) and each block's successors.</summary>
    private static (List<List<string>> Blocks, List<int>[] Successors) ControlFlow(string ptx)
    {
        var blocks = new List<List<string>> { new() };
        var labelBlock = new Dictionary<string, int>();
        foreach (var line in Lines(ptx))
        {
            if (line.EndsWith(':'))
            {
                if (blocks[^1].Count > 0) blocks.Add([]);
                labelBlock[line.TrimEnd(':')] = blocks.Count - 1;
                continue;
            }
            blocks[^1].Add(line);
            if (Regex.IsMatch(Unpredicated(line), @"^(bra|ret|exit)\b")) blocks.Add([]);
        }
        var successors = blocks.Select((block, i) =>
        {
            var next = new List<int>();
            string last = block.Count > 0 ? block[^1] : "";
            var branch = Regex.Match(Unpredicated(last), @"^bra(\.uni)?\s+(\S+);");
            if (branch.Success && labelBlock.TryGetValue(branch.Groups[2].Value, out int target)) next.Add(target);
            bool ends = (branch.Success || Regex.IsMatch(last, @"^(ret|exit)\b")) && !last.StartsWith('@');
            if (!ends && i + 1 < blocks.Count) next.Add(i + 1);
            return next;
        }).ToArray();
        return (blocks, successors);
    }

    /// <summary>The blocks reachable from <paramref name="start"/> in one or more steps of
    /// <paramref name="next"/>.</summary>
    private static HashSet<int> Reachable(int start, Func<int, IEnumerable<int>> next)
    {
        var seen = new HashSet<int>();
        var stack = new Stack<int>(next(start));
        while (stack.Count > 0)
        {
            int i = stack.Pop();
            if (seen.Add(i)) foreach (int j in next(i)) stack.Push(j);
        }
        return seen;
    }

    /// <summary>The instructions of <paramref name="ptx"/> (without predicates) that lie in a basic block on a
    /// cycle of the control-flow graph, i.e. inside some loop.</summary>
    public static IEnumerable<string> InstructionsInLoops(string ptx)
    {
        var (blocks, successors) = ControlFlow(ptx);
        return Enumerable.Range(0, blocks.Count).Where(b => Reachable(b, i => successors[i]).Contains(b))
            .SelectMany(b => blocks[b]).Select(Unpredicated);
    }

    /// <summary>Counts what <see cref="HotLoop"/> lists; throws when the kernel has no <c>fma.rn.f32</c> inside a
    /// loop.</summary>
    public static HotLoop AnalyzeHotLoop(string ptx)
    {
        var (blocks, successors) = ControlFlow(ptx);
        int fmaBlock = blocks.FindIndex(b => b.Any(l => Unpredicated(l).StartsWith("fma.rn.f32")));
        if (fmaBlock < 0) throw new InvalidOperationException("no fma.rn.f32 in the kernel");
        var forward = Reachable(fmaBlock, i => successors[i]);
        var backward = Reachable(fmaBlock,
            i => Enumerable.Range(0, blocks.Count).Where(j => successors[j].Contains(i)));
        var loop = forward.Intersect(backward).ToHashSet();
        if (!successors.Where((_, i) => loop.Contains(i)).Any(next => next.Contains(fmaBlock)))
            throw new InvalidOperationException("the fma.rn.f32 instructions are not inside a loop");
        var body = loop.SelectMany(i => blocks[i]).Select(Unpredicated).ToArray();
        int Count(string pattern) => body.Count(l => Regex.IsMatch(l, pattern));
        return new HotLoop(body.Length, Count(@"^fma\.rn\.f32"), Count(@"^(mul|add|sub)\.\S*f32"),
            Count(@"^ld\.shared"), Count(@"^ld\.shared\S*\.v4\."), Count(@"^st\.shared"),
            Count(@"^st\.shared\S*\.v4\."), Count(@"^ld\.global"), Count(@"^ld\.global\S*\.v4\."),
            Count(@"^bar\.sync"), Count(@"^(div|rem)\.[su]32"), Count(@"^(div|rem)\.[su]64"),
            ptx.Contains(".local", StringComparison.Ordinal));
    }

    /// <summary>Static counts of <paramref name="ptx"/> (an instruction inside a loop counts once).</summary>
    public static Counts Count(string ptx)
    {
        var instructions = Lines(ptx).Where(l => !l.EndsWith(':')).Select(Unpredicated).ToArray();
        int Starting(string prefix) => instructions.Count(i => i.StartsWith(prefix, StringComparison.Ordinal));
        int Matching(string pattern) => instructions.Count(i => Regex.IsMatch(i, pattern));
        var registers = Regex.Matches(ptx, @"\.reg\s+\.(\w+)\s+%\w+<(\d+)>;")
            .GroupBy(m => m.Groups[1].Value)
            .Select(g => $"{g.Key} {g.Sum(m => int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))}");
        return new Counts(
            instructions.Length,
            Starting("ld.global"), Matching(@"^ld\.global\S*\.v[24]\."), Starting("st.global"),
            Starting("ld.shared"), Matching(@"^ld\.shared\S*\.v[24]\."), Starting("st.shared"),
            Matching(@"^fma\.\S*f32"), Matching(@"^mul\.\S*f32"), Matching(@"^add\.\S*f32"),
            Matching(@"^(div|rem)\.[su]32"), Matching(@"^(div|rem)\.[su]64"), Starting("bar.sync"),
            ptx.Contains(".local", StringComparison.Ordinal), string.Join(", ", registers));
    }
}
