// BenchmarkDotNet suite for the shortcut comparison per block: basic (3x3, 3x3) and bottleneck (1x1, 3x3, 1x1)
// blocks whose input and output widths match, each with an identity shortcut (option B keeps identity where
// dimensions match) and with a projection (option C), timed for a forward pass and for a training step
// (forward, backward, SGD). Float32, batch 8, on the device the `blocks` command opens.
using BenchmarkDotNet.Attributes;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Optim;
using Engine.Models;

namespace Engine.Bench.Benchmarks;

public enum BlockKind
{
    /// <summary>Basic block, 64 → 64 channels at 32x32.</summary>
    Basic64,

    /// <summary>Bottleneck, 256 → 64 → 256 channels at 32x32.</summary>
    Bottleneck256,

    /// <summary>Bottleneck, 1024 → 256 → 1024 channels at 14x14 (ResNet-50's stage 4 width).</summary>
    Bottleneck1024,
}

public class BlockBenchmarks
{
    public static Device? SharedDevice { get; set; }

    private const int Batch = 8;

    [ParamsAllValues]
    public BlockKind Block { get; set; }

    [Params(ShortcutOption.B, ShortcutOption.C)]
    public ShortcutOption Shortcut { get; set; }

    private ResidualBlock<float>? _block;
    private Tensor<float>? _input;
    private Sgd<float>? _sgd;

    [GlobalSetup]
    public void Setup()
    {
        var device = SharedDevice ?? throw new InvalidOperationException("The blocks command sets the device.");
        var seeds = new SeedSequence(1);
        (_block, int size) = Block switch
        {
            BlockKind.Basic64 => ((ResidualBlock<float>)new BasicBlock<float>(device, 64, 64, 1, Shortcut, seeds), 32),
            BlockKind.Bottleneck256 => (new Bottleneck<float>(device, 256, 64, 1, Shortcut, seeds), 32),
            _ => (new Bottleneck<float>(device, 1024, 256, 1, Shortcut, seeds), 14),
        };
        _input = Tensor.RandomNormal<float>([Batch, _block.InChannels, size, size], seed: 2, device: device);
        _sgd = new Sgd<float>(_block.Parameters(), 0.01, momentum: 0.9);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _sgd?.Dispose();
        _block?.Dispose();
        _input?.Dispose();
    }

    [Benchmark]
    public void Forward()
    {
        using (TensorScope.Begin())
        using (GradMode.NoGrad())
            _block!.Forward(_input!);
        SharedDevice!.Synchronize();
    }

    [Benchmark]
    public void TrainStep()
    {
        using (TensorScope.Begin())
        {
            _block!.Forward(_input!).Mean().Backward();
            _sgd!.Step();
            _sgd.ZeroGrad();
        }
        SharedDevice!.Synchronize();
    }
}
