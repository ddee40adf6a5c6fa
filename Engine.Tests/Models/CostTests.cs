// Parameter and MAC counts against libtorch's counts for the same architectures, and the registry's names.
using Engine.Core;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Models;

[NonParallelizable]
public sealed class CostTests
{
    private static Device? _device;

    [OneTimeSetUp]
    public void CreateDevice() => _device = Device.Create("ilgpu-cpu");

    [OneTimeTearDown]
    public void DisposeDevice() => _device?.Dispose();

    [TestCase("resnet20-a", 269_722, 40_551_040L)]
    [TestCase("resnet20-b", 272_474, 40_813_184L)]
    [TestCase("resnet20-c", 283_962, 42_648_192L)]
    [TestCase("resnet56-a", 853_018, 125_485_696L)]
    [TestCase("resnet18", 11_689_512, 1_814_073_344L)]
    [TestCase("resnet50", 25_557_032, 4_089_184_256L)]
    [TestCase("resnet50-c", 40_128_552, 6_555_435_008L)]
    public void CountsMatchLibtorch(string name, long parameters, long macs)
    {
        using var model = ModelRegistry.Create<float>(name, _device!);
        var report = CostCounter.Count(model);
        Assert.That(report.Total.Parameters, Is.EqualTo(parameters), "parameters");
        Assert.That(report.Total.Macs, Is.EqualTo(macs), "MACs per image");
        Assert.That(model.Parameters().Sum(p => p.Length), Is.EqualTo(parameters), "parameters actually built");
        Assert.That(report.Groups.Sum(g => g.Macs), Is.EqualTo(macs), "blocks add up to the network");
    }

    [Test]
    public void ActivationMemoryCountsEveryForwardOutput()
    {
        using var model = ModelRegistry.Create<float>("resnet20-a", _device!);
        var report = CostCounter.Count(model);
        var stem = report.Groups.Single(g => g.Name == "stem");
        Assert.That(stem.ActivationElements, Is.EqualTo(3L * 16 * 32 * 32), "conv1, bn1, relu outputs");
        Assert.That(report.Total.ActivationBytes(128), Is.EqualTo(report.Total.ActivationElements * 128 * 4));
    }

    [TestCase("resnet20", ResNetFamily.Cifar, 20, ShortcutOption.A)]
    [TestCase("resnet56-b", ResNetFamily.Cifar, 56, ShortcutOption.B)]
    [TestCase("plain20", ResNetFamily.Cifar, 20, ShortcutOption.None)]
    [TestCase("resnet50", ResNetFamily.ImageNet, 50, ShortcutOption.B)]
    [TestCase("ResNet152-C", ResNetFamily.ImageNet, 152, ShortcutOption.C)]
    [TestCase("plain34", ResNetFamily.ImageNet, 34, ShortcutOption.None)]
    public void NamesParse(string name, ResNetFamily family, int depth, ShortcutOption option) =>
        Assert.That(ModelRegistry.Parse(name), Is.EqualTo(new ResNetSpec(family, depth, option)));

    [TestCase("resnet21")]
    [TestCase("plain50")]
    [TestCase("plain20-a")]
    [TestCase("resnet18-d")]
    [TestCase("vgg16")]
    public void UnknownNamesAreRejectedWithTheValidOnes(string name)
    {
        var error = Assert.Throws<ArgumentException>(() => ModelRegistry.Parse(name))!;
        Assert.That(error.Message, Does.Contain(name).And.Contain("resnet<depth>"));
    }

    [Test]
    public void EveryListedNameParses()
    {
        Assert.That(ModelRegistry.Names, Has.Count.GreaterThan(40));
        foreach (string name in ModelRegistry.Names) Assert.DoesNotThrow(() => ModelRegistry.Parse(name), name);
    }

    [Test]
    public void TorchvisionParameterNames()
    {
        using var model = ModelRegistry.Create<float>("resnet18", _device!);
        var names = model.StateDict().Select(e => e.Name).ToHashSet();
        Assert.That(names, Does.Contain("conv1.weight").And.Contain("layer1.0.bn1.running_mean")
            .And.Contain("layer2.0.downsample.0.weight").And.Contain("layer2.0.downsample.1.running_var")
            .And.Contain("fc.bias").And.Contain("layer4.1.conv2.weight"));
        Assert.That(names, Has.Count.EqualTo(102), "torchvision's resnet18 state dict: 122 entries, 20 of them num_batches_tracked");
    }
}
