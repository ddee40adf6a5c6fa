// Residual blocks and whole networks: output shapes for every shortcut option, end-to-end gradient checks in
// float64 (blocks, and ResNet-20 A/B/C and plain-20 on a tiny input, in fast mode), zero-init residual.
using Engine.Core;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Models;

public sealed class BlockTests(string kind) : DeviceFixture(kind)
{
    private static readonly ShortcutOption[] Options =
        [ShortcutOption.None, ShortcutOption.A, ShortcutOption.B, ShortcutOption.C];

    [Test]
    public void BlockOutputShapesForEveryOption([ValueSource(nameof(Options))] ShortcutOption option)
    {
        var x = Normal<float>([2, 16, 9, 9], 1);
        var seeds = new SeedSequence(1);
        using var same = new BasicBlock<float>(Device, 16, 16, 1, option, seeds);
        using var down = new BasicBlock<float>(Device, 16, 32, 2, option, seeds);
        using var bottleneck = new Bottleneck<float>(Device, 16, 8, 2, option, seeds);
        Assert.That(same.Forward(x).Shape, Is.EqualTo(new Shape(2, 16, 9, 9)));
        Assert.That(down.Forward(x).Shape, Is.EqualTo(new Shape(2, 32, 5, 5)));
        Assert.That(bottleneck.Forward(x).Shape, Is.EqualTo(new Shape(2, 32, 5, 5)));
        bool projects = option == ShortcutOption.C || option == ShortcutOption.B;
        Assert.That(down.Downsample is not null, Is.EqualTo(projects), "projection where dimensions change");
        Assert.That(same.Downsample is not null, Is.EqualTo(option == ShortcutOption.C), "projection everywhere");
    }

    [TestCase(ShortcutOption.A)]
    [TestCase(ShortcutOption.B)]
    public void BasicBlockPassesGradientCheck(ShortcutOption option)
    {
        using var block = new BasicBlock<double>(Device, 3, 4, 2, option, new SeedSequence(2));
        var x = Variable([2, 3, 5, 5], 3);
        GradCheck.Run(() => block.Forward(x), [x, .. block.Parameters()],
            new GradCheckOptions { InputNames = ["x", .. block.NamedParameters().Select(p => p.Name)] })
            .EnsurePassed();
    }

    [Test]
    public void BottleneckBlockPassesGradientCheck()
    {
        using var block = new Bottleneck<double>(Device, 4, 2, 2, ShortcutOption.B, new SeedSequence(4));
        var x = Variable([2, 4, 5, 5], 5);
        GradCheck.Run(() => block.Forward(x), [x, .. block.Parameters()],
            new GradCheckOptions { Mode = GradCheckMode.Fast, Directions = 12 }).EnsurePassed();
    }

    [TestCase("resnet20-a")]
    [TestCase("resnet20-b")]
    [TestCase("resnet20-c")]
    [TestCase("plain20")]
    public void CifarNetworkPassesFastGradientCheck(string name)
    {
        using var model = ModelRegistry.Create<double>(name, Device, seed: 6);
        var x = Variable([2, 3, 8, 8], 7);
        var result = GradCheck.Run(() => model.Forward(x), [x, .. model.Parameters()],
            new GradCheckOptions { Mode = GradCheckMode.Fast, Directions = 4 });
        Assert.That(result.Passed, Is.True, result.ToString());
    }

    [Test]
    public void ZeroInitResidualMakesEveryBlockStartAsIdentityPlusReLU()
    {
        using var model = ModelRegistry.Create<float>("resnet20-b", Device, seed: 8, zeroInitResidual: true);
        Assert.That(model.Blocks.All(b => b.LastBatchNorm.Weight.ToArray().All(v => v == 0)), Is.True);
        var block = model.Blocks.First();
        var x = Normal<float>([2, 16, 6, 6], 9).Relu();
        Assert.That(block.Forward(x).ToArray(), Is.EqualTo(x.ToArray()), "relu(0 + x) = x for x ≥ 0");
    }

    [Test]
    public void ZeroInitResidualRefusesAPlainNetwork() =>
        Assert.That(() => ModelRegistry.Create<float>("plain20", Device, zeroInitResidual: true),
            Throws.ArgumentException.With.Message.Contains("plain20 is a plain network"));

    [Test]
    public void ModelBuiltInsideAScopeKeepsItsParameters()
    {
        ResNet<float> model;
        using (TensorScope.Begin()) model = ModelRegistry.Create<float>("resnet20-a", Device, seed: 12);
        using (model)
            Assert.That(model.StateDict().All(e => !e.Tensor.IsDisposed), Is.True);
        Assert.That(model.StateDict().All(e => e.Tensor.IsDisposed), Is.True, "disposed with the model");
    }

    [Test]
    public void ImageNetNetworkRunsForwardOnASmallInput()
    {
        using var model = ModelRegistry.Create<float>("resnet18", Device, seed: 10, classes: 7);
        var y = model.Eval().Forward(Normal<float>([1, 3, 32, 32], 11));
        Assert.That(y.Shape, Is.EqualTo(new Shape(1, 7)));
        Assert.That(y.ToArray(), Has.All.Not.NaN);
    }
}
