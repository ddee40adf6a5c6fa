// Microbenchmarks of the backend's kernels, one BenchmarkDotNet method per op, called through Backend on the
// device that `kernels --device` / ENGINE_DEVICE picks. Every call ends with Synchronize, so a measurement is the
// op's whole time on the device (launch + run), not the time to queue it.
//
// Throughput comes from the measurements: ThroughputColumn divides the work of one call (FLOPs for the dense ops,
// bytes for the memory-bound ones, formulas in KernelWork) by the median time BenchmarkDotNet measured.
//
// Shapes (KernelShapes): `small` finishes in minutes on ILGPU's CPU accelerator (a correctness backend, whose
// barrier kernels crawl); `large` is ResNet-scale, for a GPU.
//   conv  x [N, C, H, W], w [K, C, 3, 3], stride 1, pad 1, y [N, K, H, W]   (forward, backward data, backward weight)
//   gemm  C [M×N] = A [M×K] · B [K×N], row-major, no transposes
//   activation-shaped ops  x [N, C, H, W]: add, relu, batch-norm, max-pool 3x3/2 pad 1, shortcut A (stride 2,
//   C → 2C), SGD step (momentum 0.9, weight decay 5e-4) and sum over the same element count
//   copy  y = x over 2^26 floats (256 MB each way) at `large`, the activation count at `small`: the copy bandwidth
//   that the memory-bound rows are a fraction of
//   max-pool backward at the stem  ResNet-50's stem pool at batch 8, x [8, 64, 112, 112] → [8, 64, 56, 56], 3x3/2
//   pad 1, at every size (a fixed shape: the pool of a real network, whose overlapping windows the scatter sums)
//   SGD over ResNet-50  one step (momentum 0.9, weight decay 5e-4) over the 161 parameter tensors of ResNet-50
//   (25.6 M floats), as Engine.Core's Sgd takes it: one SgdSteps op
//   Adam over ResNet-50  one Adam step (lr 1e-3, weight decay 5e-4, step 10) over the same 161 tensors, as
//   Engine.Core's Adam takes it: one AdamSteps op
using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Engine.Core;
using Engine.Kernels;

namespace Engine.Bench.Benchmarks;

/// <summary>The problem sizes of one suite run.</summary>
public sealed record KernelShapes(
    string Name,
    int ConvBatch, int ConvChannels, int ConvSize,
    int GemmSize,
    int Batch, int Channels, int Size)
{
    /// <summary>About a minute on ILGPU's CPU accelerator (2 cores): conv 2×16×8×8, gemm 64³, activations
    /// 8×16×32×32.</summary>
    public static KernelShapes Small { get; } = new("small", 2, 16, 8, 64, 8, 16, 32);

    /// <summary>ResNet scale for a GPU: conv 32×64×32×32, gemm 2048³, activations 128×64×32×32.</summary>
    public static KernelShapes Large { get; } = new("large", 32, 64, 32, 2048, 128, 64, 32);

    public static KernelShapes Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "small" => Small,
        "large" => Large,
        _ => throw new ArgumentException($"Unknown size '{name}'; expected small or large."),
    };

    public ConvGeometry Conv => ConvGeometry.Square(ConvBatch, ConvChannels, ConvSize, ConvSize, ConvChannels,
        kernel: 3, stride: 1, padding: 1);

    public PoolGeometry Pool => PoolGeometry.Square(Batch, Channels, Size, Size, kernel: 3, stride: 2, padding: 1)
        .Validated();

    public ShortcutGeometry Shortcut => ShortcutGeometry.Centered(Batch, Channels, Size, Size, 2 * Channels, stride: 2);

    /// <summary>Elements of an activation tensor [N, C, H, W].</summary>
    public long Elements => (long)Batch * Channels * Size * Size;

    /// <summary>Elements of the copy benchmark: 2^26 (256 MB, far beyond the caches) at ResNet scale, the
    /// activation count otherwise.</summary>
    public long CopyElements => Name == "large" ? 1L << 26 : Elements;
}

/// <summary>The work of one call of each benchmark: floating-point operations or bytes moved.</summary>
public readonly record struct KernelWork(string Shape, double Flops, double Bytes)
{
    private const int F = sizeof(float);

    /// <summary>Work of the benchmark method <paramref name="method"/> at <paramref name="s"/>.</summary>
    /// <remarks>Bytes count each tensor element read or written once per pass (batch-norm forward counts x three
    /// times — the statistics pass reads each block twice, the second time from the cache, and the normalisation
    /// once — and backward reads x and dy twice); per-channel vectors are ignored.</remarks>
    public static KernelWork Of(string method, KernelShapes s)
    {
        long n = s.Elements;
        string act = $"{s.Batch}×{s.Channels}×{s.Size}×{s.Size}";
        var conv = s.Conv;
        string convShape = $"N{conv.Batch} C{conv.InChannels} K{conv.OutChannels} {conv.InHeight}×{conv.InWidth} 3×3";
        double convFlops = 2.0 * conv.Macs;
        var pool = s.Pool;
        var cut = s.Shortcut;
        long kept = (long)cut.Batch * cut.InChannels * cut.OutHeight * cut.OutWidth;
        return method switch
        {
            nameof(KernelBenchmarks.ConvForward) or nameof(KernelBenchmarks.ConvBackwardData)
                or nameof(KernelBenchmarks.ConvBackwardWeight) =>
                new(convShape, convFlops, F * (double)(conv.InputLength + conv.WeightLength + conv.OutputLength)),
            nameof(KernelBenchmarks.Gemm) =>
                new($"{s.GemmSize}³", 2.0 * s.GemmSize * s.GemmSize * s.GemmSize, F * 3.0 * s.GemmSize * s.GemmSize),
            nameof(KernelBenchmarks.Add) => new(act, n, F * 3.0 * n),
            nameof(KernelBenchmarks.Relu) => new(act, n, F * 2.0 * n),
            nameof(KernelBenchmarks.Copy) => new($"{s.CopyElements}", 0, F * 2.0 * s.CopyElements),
            nameof(KernelBenchmarks.BatchNormForward) => new(act, 0, F * 4.0 * n),
            nameof(KernelBenchmarks.BatchNormBackward) => new(act, 0, F * 7.0 * n), // x, dy and the ReLU mask, two passes
            nameof(KernelBenchmarks.MaxPoolForward) =>
                new(act + " 3×3/2", 0, F * (double)(pool.InputLength + 2 * pool.OutputLength)),
            nameof(KernelBenchmarks.MaxPoolBackward) =>
                new(act + " 3×3/2", 0, F * (double)(pool.InputLength + 2 * pool.OutputLength)),
            nameof(KernelBenchmarks.MaxPoolBackwardStem) =>
                new("8×64×112×112 3×3/2", 0,
                    F * (double)(KernelBenchmarks.StemPool.InputLength + 2 * KernelBenchmarks.StemPool.OutputLength)),
            nameof(KernelBenchmarks.ShortcutForward) =>
                new(act + $" → K{cut.OutChannels} /2", 0, F * (double)(kept + cut.OutputLength)),
            nameof(KernelBenchmarks.ShortcutBackward) =>
                new(act + $" ← K{cut.OutChannels} /2", 0, F * (double)(kept + cut.InputLength)),
            nameof(KernelBenchmarks.SgdStep) => new($"{n} params", 0, F * 5.0 * n),
            nameof(KernelBenchmarks.SgdResNet50) =>
                new($"{KernelBenchmarks.ResNet50Parameters.Count} tensors, {KernelBenchmarks.ResNet50Elements} params",
                    0, F * 5.0 * KernelBenchmarks.ResNet50Elements),
            nameof(KernelBenchmarks.AdamResNet50) =>
                new($"{KernelBenchmarks.ResNet50Parameters.Count} tensors, {KernelBenchmarks.ResNet50Elements} params",
                    0, F * 7.0 * KernelBenchmarks.ResNet50Elements), // param, grad, m, v read; param, m, v written
            nameof(KernelBenchmarks.Sum) => new($"{n}", n, F * (double)n),
            _ => throw new ArgumentException($"No work formula for benchmark '{method}'."),
        };
    }

    /// <summary>True for the dense ops, reported in GFLOP/s; the others are reported in GB/s.</summary>
    public static bool IsComputeBound(string method) =>
        method is nameof(KernelBenchmarks.ConvForward) or nameof(KernelBenchmarks.ConvBackwardData)
            or nameof(KernelBenchmarks.ConvBackwardWeight) or nameof(KernelBenchmarks.Gemm);
}

/// <summary>
/// One benchmark per kernel family. Public and unsealed for BenchmarkDotNet. The command sets
/// <see cref="SharedDevice"/> and <see cref="Shapes"/> before the run (the in-process toolchain shares statics);
/// without them a run opens the ENGINE_DEVICE default and uses <see cref="KernelShapes.Small"/>.
/// </summary>
public class KernelBenchmarks
{
    /// <summary>The device every benchmark runs on, owned by the caller; null: each case opens its own.</summary>
    public static Device? SharedDevice { get; set; }

    /// <summary>Problem sizes of this run.</summary>
    public static KernelShapes Shapes { get; set; } = KernelShapes.Small;

    private readonly List<IDisposable> _owned = [];
    private Device? _ownDevice;
    private Backend _backend = null!;
    private KernelShapes _s = KernelShapes.Small;

    // conv / gemm
    private ConvGeometry _conv;
    private DeviceBuffer<float> _x = null!, _w = null!, _y = null!, _dy = null!, _dx = null!, _dw = null!;
    private DeviceBuffer<float> _a = null!, _b = null!, _c = null!;
    // activation-shaped ops
    private DeviceBuffer<float> _gamma = null!, _beta = null!, _runningMean = null!, _runningVar = null!;
    private DeviceBuffer<float> _mean = null!, _invStd = null!, _dgamma = null!, _dbeta = null!;
    private DeviceBuffer<float> _pooled = null!, _pooledGrad = null!, _shortcutOut = null!, _result = null!;
    private DeviceBuffer<float> _param = null!, _momentum = null!, _copySource = null!, _copyTarget = null!;
    private DeviceBuffer<float>[] _params = [], _grads = [], _momenta = [], _secondMoments = [];
    private bool[] _notFirstSteps = [];
    private DeviceBuffer<int> _argmax = null!;
    private PoolGeometry _pool;
    private ShortcutGeometry _shortcut;
    private readonly SgdParameters _sgd = new SgdParameters(0.01, Momentum: 0.9, WeightDecay: 5e-4).Validated();
    private readonly AdamParameters _adam = new AdamParameters(1e-3, WeightDecay: 5e-4).Validated();
    private int[] _adamSteps = [];

    private void Open()
    {
        _s = Shapes;
        if (SharedDevice is null) _ownDevice = Device.Select(null);
        _backend = (SharedDevice ?? _ownDevice!).Backend;
    }

    private DeviceBuffer<T> Buffer<T>(long length) where T : unmanaged
    {
        var buffer = _backend.Allocate<T>(length);
        _owned.Add(buffer);
        return buffer;
    }

    /// <summary>A buffer of uniform values in [low, high), the same on every run.</summary>
    private DeviceBuffer<float> Random(long length, int seed, float low = -1, float high = 1)
    {
        var host = new float[length];
        var random = new Random(seed);
        for (long i = 0; i < length; i++) host[i] = low + (high - low) * random.NextSingle();
        var buffer = Buffer<float>(length);
        buffer.CopyFromHost(host);
        return buffer;
    }

    [GlobalSetup(Targets = [nameof(ConvForward), nameof(ConvBackwardData), nameof(ConvBackwardWeight)])]
    public void SetupConv()
    {
        Open();
        _conv = _s.Conv;
        _x = Random(_conv.InputLength, 1);
        _w = Random(_conv.WeightLength, 2);
        _dy = Random(_conv.OutputLength, 3);
        _y = Buffer<float>(_conv.OutputLength);
        _dx = Buffer<float>(_conv.InputLength);
        _dw = Buffer<float>(_conv.WeightLength);
    }

    [GlobalSetup(Target = nameof(Gemm))]
    public void SetupGemm()
    {
        Open();
        long size = (long)_s.GemmSize * _s.GemmSize;
        _a = Random(size, 4);
        _b = Random(size, 5);
        _c = Buffer<float>(size);
    }

    /// <summary>The element counts of ResNet-50's parameter tensors (ImageNet, 1000 classes), in module order.</summary>
    public static IReadOnlyList<long> ResNet50Parameters => s_resNet50Parameters.Value;

    /// <summary>The parameters of ResNet-50 in all.</summary>
    public static long ResNet50Elements => ResNet50Parameters.Sum();

    private static readonly Lazy<long[]> s_resNet50Parameters = new(() =>
    {
        using var device = Device.Select("cpu");
        using var model = Engine.Models.ModelRegistry.Create<float>("resnet50", device);
        return model.Parameters().Select(p => p.Shape.Length).ToArray();
    });

    /// <summary>ResNet-50's stem max-pool at batch 8: 64×112×112 → 56×56, 3x3/2 pad 1.</summary>
    public static PoolGeometry StemPool { get; } =
        PoolGeometry.Square(8, 64, 112, 112, kernel: 3, stride: 2, padding: 1).Validated();

    [GlobalSetup(Target = nameof(MaxPoolBackwardStem))]
    public void SetupStemPool()
    {
        Open();
        _pool = StemPool;
        _x = Random(_pool.InputLength, 18);
        _dx = Buffer<float>(_pool.InputLength);
        _pooled = Buffer<float>(_pool.OutputLength);
        _argmax = Buffer<int>(_pool.OutputLength);
        _pooledGrad = Random(_pool.OutputLength, 19);
        _backend.MaxPoolForward(_pool, _x, _pooled, _argmax); // a valid argmax
        _backend.Synchronize();
    }

    [GlobalSetup(Target = nameof(Copy))]
    public void SetupCopy()
    {
        Open();
        _copySource = Random(_s.CopyElements, 17);
        _copyTarget = Buffer<float>(_s.CopyElements);
        _backend.Synchronize();
    }

    [GlobalSetup(Target = nameof(SgdResNet50))]
    public void SetupResNet50()
    {
        Open();
        var lengths = ResNet50Parameters;
        _params = lengths.Select((length, i) => Random(length, 100 + i)).ToArray();
        _grads = lengths.Select((length, i) => Random(length, 400 + i)).ToArray();
        _momenta = lengths.Select((length, i) => Random(length, 700 + i)).ToArray();
        _notFirstSteps = new bool[lengths.Count];
        _backend.Synchronize();
    }

    [GlobalSetup(Target = nameof(AdamResNet50))]
    public void SetupAdamResNet50()
    {
        SetupResNet50();
        _secondMoments = ResNet50Parameters.Select((length, i) => Random(length, 1000 + i, 0, 1)).ToArray();
        _adamSteps = Enumerable.Repeat(10, ResNet50Parameters.Count).ToArray();
        _backend.Synchronize();
    }

    [GlobalSetup(Targets = [nameof(Add), nameof(Relu), nameof(BatchNormForward), nameof(BatchNormBackward),
        nameof(MaxPoolForward), nameof(MaxPoolBackward), nameof(ShortcutForward), nameof(ShortcutBackward),
        nameof(SgdStep), nameof(Sum)])]
    public void SetupActivations()
    {
        Open();
        long n = _s.Elements;
        int channels = _s.Channels;
        _x = Random(n, 6);
        _dy = Random(n, 7);
        _y = Buffer<float>(n);
        _dx = Buffer<float>(n);
        _gamma = Random(channels, 8, 0.5f, 1.5f);
        _beta = Random(channels, 9);
        _runningMean = Random(channels, 10);
        _runningVar = Random(channels, 11, 0.5f, 1.5f);
        _mean = Random(channels, 12);
        _invStd = Random(channels, 13, 0.5f, 1.5f);
        _dgamma = Buffer<float>(channels);
        _dbeta = Buffer<float>(channels);
        _result = Buffer<float>(1);

        _pool = _s.Pool;
        _pooled = Buffer<float>(_pool.OutputLength);
        _argmax = Buffer<int>(_pool.OutputLength);
        _pooledGrad = Random(_pool.OutputLength, 14);
        _backend.MaxPoolForward(_pool, _x, _pooled, _argmax); // a valid argmax for the backward benchmark

        _shortcut = _s.Shortcut;
        _shortcutOut = Buffer<float>(_shortcut.OutputLength);
        _param = Random(n, 15);
        _momentum = Random(n, 16);
        _backend.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _backend.Synchronize();
        foreach (var buffer in _owned) buffer.Dispose();
        _owned.Clear();
        _ownDevice?.Dispose();
        _ownDevice = null;
    }

    // ---- compute-bound: implicit GEMM (Gemm.cs, Convolution.cs) ----

    [Benchmark, BenchmarkCategory("compute")]
    public void ConvForward()
    {
        _backend.Conv2dForward(_conv, _x, _w, null, _y);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("compute")]
    public void ConvBackwardData()
    {
        _backend.Conv2dBackwardData(_conv, _dy, _w, _dx);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("compute")]
    public void ConvBackwardWeight()
    {
        _backend.Conv2dBackwardWeight(_conv, _x, _dy, _dw);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("compute")]
    public void Gemm()
    {
        _backend.Gemm(false, false, _s.GemmSize, _s.GemmSize, _s.GemmSize, 1f, _a, _b, 0f, _c);
        _backend.Synchronize();
    }

    // ---- memory-bound ----

    [Benchmark, BenchmarkCategory("memory")]
    public void Copy()
    {
        _backend.Copy(_copySource, _copyTarget);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void Add()
    {
        _backend.Add(_x, _dy, _y);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void Relu()
    {
        _backend.Relu(_x, _y);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void BatchNormForward()
    {
        _backend.BatchNormForwardTraining(_s.Batch, _s.Channels, _s.Size * _s.Size, _x, _gamma, _beta, _runningMean,
            _runningVar, 0.1, 1e-5, _y, _mean, _invStd, relu: true);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void BatchNormBackward()
    {
        _backend.BatchNormBackward(_s.Batch, _s.Channels, _s.Size * _s.Size, _x, _dy, _gamma, _mean, _invStd,
            batchStatistics: true, _dx, _dgamma, _dbeta, reluOutput: _y);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void MaxPoolForward()
    {
        _backend.MaxPoolForward(_pool, _x, _pooled, _argmax);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void MaxPoolBackward()
    {
        _backend.MaxPoolBackward(_pool, _pooledGrad, _argmax, _dx);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void MaxPoolBackwardStem()
    {
        _backend.MaxPoolBackward(_pool, _pooledGrad, _argmax, _dx);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void ShortcutForward()
    {
        _backend.ShortcutForward(_shortcut, _x, _shortcutOut);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void ShortcutBackward()
    {
        _backend.ShortcutBackward(_shortcut, _shortcutOut, _dx);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void SgdStep()
    {
        _backend.SgdStep(_sgd, _param, _dy, _momentum, firstStep: false);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void SgdResNet50()
    {
        _backend.SgdSteps(_sgd, _params, _grads, _momenta, _notFirstSteps);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void AdamResNet50()
    {
        _backend.AdamSteps(_adam, _adamSteps, _params, _grads, _momenta, _secondMoments, null);
        _backend.Synchronize();
    }

    [Benchmark, BenchmarkCategory("memory")]
    public void Sum()
    {
        _backend.Sum(_x, 1f, _result);
        _backend.Synchronize();
    }
}

/// <summary>Columns computed from a benchmark's measured median: its shape, its throughput (GFLOP/s for the
/// dense ops, GB/s for the rest), and the work of one call.</summary>
public sealed class ThroughputColumn(ThroughputColumn.Kind kind) : IColumn
{
    public enum Kind
    {
        Shape,
        Work,
        Throughput,
    }

    /// <summary>The median of the measured iterations, in nanoseconds per call; null when the run failed.</summary>
    public static double? MedianNanoseconds(Summary summary, BenchmarkCase benchmarkCase) =>
        summary[benchmarkCase]?.ResultStatistics?.Median;

    /// <summary>"12.3 GFLOP/s" or "4.56 GB/s" from the work of one call and the median time.</summary>
    public static string Throughput(string method, KernelShapes shapes, double? medianNs)
    {
        if (medianNs is not > 0) return "NA";
        var work = KernelWork.Of(method, shapes);
        // work per nanosecond = giga-work per second
        return KernelWork.IsComputeBound(method)
            ? (work.Flops / medianNs.Value).ToString("G4", CultureInfo.InvariantCulture) + " GFLOP/s"
            : (work.Bytes / medianNs.Value).ToString("G4", CultureInfo.InvariantCulture) + " GB/s";
    }

    /// <summary>"0.59 MFLOP" or "1.57 MB" per call.</summary>
    public static string Work(string method, KernelShapes shapes)
    {
        var work = KernelWork.Of(method, shapes);
        bool flops = KernelWork.IsComputeBound(method);
        double value = flops ? work.Flops : work.Bytes;
        string unit = flops ? "FLOP" : "B";
        return value >= 1e9 ? $"{(value / 1e9).ToString("G4", CultureInfo.InvariantCulture)} G{unit}"
            : value >= 1e6 ? $"{(value / 1e6).ToString("G4", CultureInfo.InvariantCulture)} M{unit}"
            : $"{(value / 1e3).ToString("G4", CultureInfo.InvariantCulture)} k{unit}";
    }

    private static string Method(BenchmarkCase benchmarkCase) => benchmarkCase.Descriptor.WorkloadMethod.Name;

    public string Id => $"{nameof(ThroughputColumn)}.{kind}";

    public string ColumnName => kind switch
    {
        Kind.Shape => "Shape",
        Kind.Work => "Work/call",
        _ => "Throughput",
    };

    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => (int)kind;
    public bool IsNumeric => false;
    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => kind switch
    {
        Kind.Shape => "Problem shape of the benchmark",
        Kind.Work => "FLOPs (compute-bound ops) or bytes (memory-bound ops) of one call",
        _ => "Work per call divided by the median time: GFLOP/s or GB/s",
    };

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => kind switch
    {
        Kind.Shape => KernelWork.Of(Method(benchmarkCase), KernelBenchmarks.Shapes).Shape,
        Kind.Work => Work(Method(benchmarkCase), KernelBenchmarks.Shapes),
        _ => Throughput(Method(benchmarkCase), KernelBenchmarks.Shapes, MedianNanoseconds(summary, benchmarkCase)),
    };

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) =>
        GetValue(summary, benchmarkCase);

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;
}
