// A residual block's fused tail (BatchNorm2d.ForwardAddRelu: last BN + shortcut add + ReLU in one op) against the
// unfused composition of the same layers (F's layers one by one, then +, then ReLU): forward outputs and every
// gradient are bit-identical, in float32 on every backend. Both forms do the same float operations in the same
// order — x·scale + shift, + residual, then the clamp; backward masks dy by the output, and the residual's
// gradient is that masked dy — and the block input's two gradient contributions are added once either way
// (a + b = b + a exactly). On ILGPU the fused tail also saves the add and ReLU launches forward.
using Engine.Core;
using Engine.Core.Modules;
using Engine.Kernels.Ilgpu;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Models;

public sealed class BlockTailTests(string kind) : DeviceFixture(kind)
{
    /// <summary>The block's output computed without the fused tail: F's layers in order, +, ReLU.</summary>
    private static Tensor<float> Unfused(ResidualBlock<float> block, Tensor<float> x)
    {
        var f = x;
        foreach (var (name, layer) in block.NamedChildren())
            if (name is not ("shortcut" or "downsample")) f = layer.Forward(f);
        if (block.Option == ShortcutOption.None) return f.Relu();
        return (f + (block.Shortcut?.Forward(x) ?? x)).Relu();
    }

    private static IEnumerable<TestCaseData> Blocks()
    {
        foreach (var option in new[] { ShortcutOption.None, ShortcutOption.A, ShortcutOption.B })
        {
            yield return new TestCaseData("basic", option, 1).SetArgDisplayNames("basic", option.ToString(), "stride 1");
            yield return new TestCaseData("basic", option, 2).SetArgDisplayNames("basic", option.ToString(), "stride 2");
        }
        yield return new TestCaseData("bottleneck", ShortcutOption.B, 2).SetArgDisplayNames("bottleneck", "B", "stride 2");
        yield return new TestCaseData("bottleneck", ShortcutOption.B, 1).SetArgDisplayNames("bottleneck", "B", "stride 1");
    }

    private ResidualBlock<float> Create(string block, ShortcutOption option, int stride) => block == "basic"
        ? new BasicBlock<float>(Device, 4, 8, stride, option, new SeedSequence(5))
        : new Bottleneck<float>(Device, 8, 2, stride, option, new SeedSequence(5));

    [TestCaseSource(nameof(Blocks))]
    public void FusedTailIsBitIdenticalToTheUnfusedComposition(string kind, ShortcutOption option, int stride)
    {
        using var block = Create(kind, option, stride);
        int inChannels = block.InChannels;
        var input = Normal<float>([2, inChannels, 6, 6], 6);
        var weights = Normal<float>([2, block.OutChannels, 6 / stride, 6 / stride], 7);

        (float[] Y, float[] Dx, float[][] Grads) Run(Func<Tensor<float>, Tensor<float>> forward)
        {
            foreach (var p in block.Parameters()) p.ZeroGrad();
            var x = input.Clone();
            x.RequiresGrad = true;
            var y = forward(x);
            y.Backward(weights);
            return (y.ToArray(), x.Grad!.ToArray(), [.. block.Parameters().Select(p => p.Grad!.ToArray())]);
        }

        var fused = Run(block.Forward);
        var unfused = Run(x => Unfused(block, x));
        Assert.That(fused.Y, Is.EqualTo(unfused.Y), "output");
        Assert.That(fused.Y, Has.Some.EqualTo(0f).And.Some.GreaterThan(0f), "the ReLU clamps some and keeps others");
        Assert.That(fused.Dx, Is.EqualTo(unfused.Dx), "dx");
        var names = block.NamedParameters().Select(p => p.Name).ToArray();
        for (int i = 0; i < names.Length; i++)
            Assert.That(fused.Grads[i], Is.EqualTo(unfused.Grads[i]), names[i]);

        block.Eval();
        using (Engine.Core.Autograd.GradMode.NoGrad())
            Assert.That(block.Forward(input).ToArray(), Is.EqualTo(Unfused(block, input).ToArray()), "eval output");
    }

    [Test]
    public void OnIlgpuTheFusedTailSavesTheAddAndReluLaunches()
    {
        if (Device.Backend is not IlgpuBackend backend)
        {
            Assert.Ignore("Launches are counted by the ILGPU backends.");
            return;
        }
        using var block = new BasicBlock<float>(Device, 8, 8, 1, ShortcutOption.A, new SeedSequence(6));
        var input = Normal<float>([2, 8, 6, 6], 8);
        var weights = Normal<float>([2, 8, 6, 6], 9);

        (long Forward, long Backward) Count(Func<Tensor<float>, Tensor<float>> forward)
        {
            var x = input.Clone();
            x.RequiresGrad = true;
            long start = backend.LaunchCount;
            var y = forward(x);
            long afterForward = backend.LaunchCount;
            y.Backward(weights);
            return (afterForward - start, backend.LaunchCount - afterForward);
        }

        var fused = Count(block.Forward);
        var unfused = Count(x => Unfused(block, x));
        Assert.That(fused.Forward, Is.EqualTo(unfused.Forward - 2), $"forward: fused {fused.Forward}, unfused {unfused.Forward}");
        Assert.That(fused.Backward, Is.LessThan(unfused.Backward), $"backward: fused {fused.Backward}, unfused {unfused.Backward}");
    }
}
