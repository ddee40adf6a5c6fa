// The trainer with Adam and AdamW on the fast CPU backend, on small synthetic images: a resumed run reaches
// bit-identical weights (moments, AMSGrad maxima and step counts checkpointed), a checkpoint of another optimizer
// is refused naming both, and options that do not apply (optimizer options, zero-init on a plain network) are
// rejected.
using Engine.Core;
using Engine.Core.Data;
using Engine.Core.Serialization;
using Engine.Models.Training;
using NUnit.Framework;

namespace Engine.Tests.Models;

[NonParallelizable]
public sealed class OptimizerTrainingTests
{
    private static Device? _device;

    [OneTimeSetUp]
    public void CreateDevice() => _device = Device.Create("cpu");

    [OneTimeTearDown]
    public void DisposeDevice() => _device?.Dispose();

    /// <summary>Random 1×10×10 images in 10 classes (seeded).</summary>
    private static ImageDataset Synthetic(int count, int seed)
    {
        var random = new Random(seed);
        var pixels = new byte[count * 100];
        random.NextBytes(pixels);
        var labels = Enumerable.Range(0, count).Select(_ => random.Next(10)).ToArray();
        return new ImageDataset(pixels, labels, 1, 10, 10, 10, $"synthetic-{seed}");
    }

    [TestCase("adam", false)]
    [TestCase("adamw", true)]
    public void ResumedRunReachesBitIdenticalWeights(string optimizer, bool amsgrad)
    {
        var (train, test) = (Synthetic(64, 1), Synthetic(16, 2));
        var options = new TrainOptions
        {
            Model = "resnet20-a", Epochs = 2, BatchSize = 16, Optimizer = optimizer, LearningRate = 1e-3,
            WeightDecay = 0.01, Amsgrad = amsgrad, Schedule = "cosine", Seed = 5,
        };
        ResumeCheck.StraightAndResumedAgree(_device!, options, train, test, checkpoint =>
        {
            var names = SafeTensors.ReadHeader(checkpoint).Tensors.Select(t => t.Name).ToList();
            Assert.That(names, Does.Contain("exp_avg.conv1.weight").And.Contain("exp_avg_sq.fc.bias")
                .And.Contain("step.fc.weight"));
            Assert.That(names.Contains("max_exp_avg_sq.conv1.weight"), Is.EqualTo(amsgrad));

            string other = optimizer == "adam" ? "adamw" : "adam";
            using var otherOptimizer = new Trainer(_device!, options with { Optimizer = other }, train, test);
            var error = Assert.Throws<InvalidDataException>(() => otherOptimizer.Resume(checkpoint))!;
            Assert.That(error.Message, Does.Contain($"Optimizer \"{optimizer}\" → \"{other}\""));
            using var sgd = new Trainer(_device!, options with { Optimizer = "sgd", Amsgrad = false }, train, test);
            error = Assert.Throws<InvalidDataException>(() => sgd.Resume(checkpoint))!;
            Assert.That(error.Message, Does.Contain($"Optimizer \"{optimizer}\" → \"sgd\""));
        });
    }

    [Test]
    public void OptionsThatDoNotApplyAreRejected()
    {
        var (train, test) = (Synthetic(32, 3), Synthetic(8, 4));
        var options = new TrainOptions { Model = "resnet20-a", Epochs = 1, BatchSize = 16 };
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(_device!, options with { Optimizer = "rmsprop" },
            train, test))!.Message, Does.Contain("rmsprop").And.Contain("sgd, adam, adamw"));
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(_device!, options with { Amsgrad = true },
            train, test))!.Message, Does.Contain("AMSGrad"));
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(_device!,
            options with { Optimizer = "adamw", Nesterov = true }, train, test))!.Message, Does.Contain("Nesterov"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(_device!,
            options with { Optimizer = "adam", Beta2 = 1 }, train, test))!.Message, Does.Contain("beta2"));
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(_device!,
            options with { Model = "plain20", ZeroInitResidual = true }, train, test))!.Message,
            Does.Contain("Zero-init-residual").And.Contain("plain20"));
        Assert.That(TrainOptions.DefaultsFor("adamw"), Is.EqualTo((1e-3, 0.01)));
    }
}
