// ResNet.FuseForInference against the eval-mode model it folds, for every family of the registry (CIFAR ResNets
// with shortcuts A, B and C, the plain CIFAR net, ImageNet basic-block nets with A, B and C and the plain one,
// bottleneck nets with A, B and C), with the batch-norms' γ, β, running mean and running variance randomised first
// (the folded weights then differ from the unfolded ones by per-channel scales far from 1).
//   float64: folded and unfolded logits agree to 1e-12 of the logits' scale: folding is exact algebra, only the
//     order of a few roundings changes.
//   float32: the folded model rounds w·scale and β − mean·scale once, then sums in float32, so it differs from
//     the unfolded float32 model by float32 rounding, not more. Bound: 2e-5 × max |logit| (about 170 float32
//     ulps of the scale: room for nets up to 50 layers deep, whose measured distances are near 1e-6), and no more
//     than 8 × the unfolded float32 model's own distance to the float64 model on the same input (plus 1e-6 of the
//     scale): folding adds rounding of the same order as float32 arithmetic already has (measured: 0.6–1.7×).
// Sizes are small: CIFAR nets on 16x16 images, ImageNet nets on 32x32 (half of each on ilgpu-cpu), batch 2.
using System.Numerics;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Models;
using NUnit.Framework;

namespace Engine.Tests.Models;

public sealed class FoldingTests(string kind) : DeviceFixture(kind)
{
    private static readonly string[] Models =
    [
        "resnet20-a", "resnet20-b", "resnet20-c", "plain20",
        "resnet18-a", "resnet18-b", "resnet18-c", "plain18",
        "resnet50-a", "resnet50-b", "resnet50-c",
    ];

    /// <summary>γ ∈ ±[0.5, 1.5], β and the running mean ~ N(0, 0.2²), the running variance ∈ [0.3, 3]: every
    /// batch-norm of the model, deterministically.</summary>
    private static void RandomiseBatchNorms(Module<float> model, int seed)
    {
        var random = new Random(seed);
        float Uniform(double low, double high) => (float)(low + (high - low) * random.NextDouble());
        float Normal(double std) =>
            (float)(std * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        using (GradMode.NoGrad())
            foreach (var bn in Descendants(model).OfType<BatchNorm2d<float>>())
            {
                int c = bn.Channels;
                bn.Weight.CopyFrom(Enumerable.Range(0, c)
                    .Select(_ => Uniform(0.5, 1.5) * (random.Next(4) == 0 ? -1 : 1)).ToArray());
                bn.Bias.CopyFrom(Enumerable.Range(0, c).Select(_ => Normal(0.2)).ToArray());
                bn.RunningMean.CopyFrom(Enumerable.Range(0, c).Select(_ => Normal(0.2)).ToArray());
                bn.RunningVar.CopyFrom(Enumerable.Range(0, c).Select(_ => Uniform(0.3, 3)).ToArray());
            }
    }

    private static IEnumerable<Module<float>> Descendants(Module<float> module) =>
        module.NamedChildren().SelectMany(c => Descendants(c.Module)).Prepend(module);

    private static ResNet<double> InDouble(ResNet<float> model, Device device)
    {
        var copy = new ResNet<double>(model.Spec, device, classes: model.Classes);
        using (GradMode.NoGrad())
            foreach (var ((name, source), (copyName, target)) in model.StateDict().Zip(copy.StateDict()))
            {
                Assert.That(copyName, Is.EqualTo(name));
                target.CopyFrom(source.ToArray().Select(v => (double)v).ToArray());
            }
        copy.Eval();
        return copy;
    }

    private static double[] Logits<T>(Module<T> model, Tensor<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        using (GradMode.NoGrad())
            return [.. model.Forward(x).ToArray().Select(double.CreateTruncating)];
    }

    private static double MaxDistance(double[] a, double[] b) => a.Zip(b, (p, q) => Math.Abs(p - q)).Max();

    [TestCaseSource(nameof(Models))]
    public void FoldedModelMatchesTheEvalModel(string name)
    {
        var spec = ModelRegistry.Parse(name);
        int size = (spec.Family == ResNetFamily.ImageNet ? 32 : 16) / (Kind == "ilgpu-cpu" ? 2 : 1);
        using var model = ModelRegistry.Create<float>(name, Device, seed: 3, classes: 10);
        RandomiseBatchNorms(model, 5);
        model.Eval();
        using var model64 = InDouble(model, Device);
        var x = Normal<float>([2, 3, size, size], 7);
        var x64 = Tensor.FromArray(x.ToArray().Select(v => (double)v).ToArray(), x.Shape, Device);
        var stateBefore = model.StateDict().Select(e => e.Tensor.ToArray()).ToArray();

        using var folded = model.FuseForInference();
        using var folded64 = model64.FuseForInference();
        Assert.That(Descendants(folded).OfType<BatchNorm2d<float>>(), Is.Empty, "no batch-norm left");

        double[] reference = Logits(model64, x64), unfolded = Logits(model, x), fused = Logits(folded, x);
        double scale = reference.Max(Math.Abs);
        Assert.That(scale, Is.GreaterThan(1e-3), "logits of a useful size");

        double doubleDistance = MaxDistance(Logits(folded64, x64), reference);
        Assert.That(doubleDistance, Is.LessThanOrEqualTo(1e-12 * scale), "float64: folded vs unfolded");

        double foldingDistance = MaxDistance(fused, unfolded), float32Distance = MaxDistance(unfolded, reference);
        TestContext.Out.WriteLine($"{name} on {Kind}: max |logit| {scale:G4}; float64 folded vs unfolded " +
                                  $"{doubleDistance / scale:E2}; float32 folded vs unfolded {foldingDistance / scale:E2}; " +
                                  $"float32 unfolded vs float64 {float32Distance / scale:E2} (relative to max |logit|)");
        Assert.That(foldingDistance, Is.LessThanOrEqualTo(2e-5 * scale), "float32: folded vs unfolded");
        Assert.That(foldingDistance, Is.LessThanOrEqualTo(8 * float32Distance + 1e-6 * scale),
            "float32: folding adds rounding of float32's own order");

        var stateAfter = model.StateDict().Select(e => e.Tensor.ToArray()).ToArray();
        Assert.That(stateAfter, Is.EqualTo(stateBefore), "the original model is untouched");
    }

    [Test]
    public void FoldedModelKeepsTheUnfoldedNames()
    {
        using var model = ModelRegistry.Create<float>("resnet20-b", Device, seed: 1);
        using var folded = model.FuseForInference();
        var names = folded.StateDict().Select(e => e.Name).ToArray();
        Assert.That(names, Does.Contain("conv1.weight").And.Contain("conv1.bias").And.Contain("layer2.0.conv2.bias")
            .And.Contain("layer2.0.downsample.weight").And.Contain("fc.weight"));
        Assert.That(names, Has.None.Contains("bn").And.None.Contains("running"));
    }
}
