// Training end to end on the fast CPU backend: a residual network learns real Fashion-MNIST far above chance in a
// few hundred steps; a resumed run reaches bit-identical weights; schedules follow the paper's rules. The images are
// the first records of the set, so the full Debian set and the shipped subset give the same runs.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Data;
using Engine.Core.Optim;
using Engine.Models.Training;
using Engine.Tests.TestData;
using NUnit.Framework;

namespace Engine.Tests.Models;

[NonParallelizable]
public sealed class TrainingTests
{
    private static Device? _device;

    [OneTimeSetUp]
    public void CreateDevice() => _device = Device.Create("cpu");

    [OneTimeTearDown]
    public void DisposeDevice() => _device?.Dispose();

    /// <summary>The first images of Fashion-MNIST: the same records from the full set or the shipped subset.</summary>
    private static (ImageDataset Train, ImageDataset Test) FashionMnistSubset(int train, int test)
    {
        string folder = FashionMnistData.Folder;
        var first = (Train: FashionMnist.ReadTrain(folder).Take(train), Test: FashionMnist.ReadTest(folder).Take(test));
        Assert.That((first.Train.Count, first.Test.Count), Is.EqualTo((train, test)), $"images in {folder}");
        return first;
    }

    [Test]
    public void ResidualNetworkLearnsFashionMnistFarAboveChance()
    {
        var (train, test) = FashionMnistSubset(4000, 1000); // 125 batches per epoch: two epochs
        var options = new TrainOptions
        {
            Model = "resnet20-a", Iterations = 250, BatchSize = 32, LearningRate = 0.05, Schedule = "cosine",
            Seed = 1, Augment = false,
        };
        using var trainer = new Trainer(_device!, options, train, test);
        while (!trainer.Finished) trainer.RunEpoch();
        var last = trainer.History[^1];
        TestContext.Out.WriteLine($"after {trainer.Iteration} iterations: train error {last.TrainError:P1}, " +
                                  $"test error {last.TestError:P1}");
        Assert.That(last.TestError, Is.LessThan(0.30), "chance is 90% error");
        Assert.That(trainer.History[0].TrainError, Is.GreaterThan(last.TrainError), "training error falls");
    }

    [Test]
    public void ResumedRunReachesBitIdenticalWeights()
    {
        var (train, test) = FashionMnistSubset(192, 64);
        var options = new TrainOptions { Model = "resnet20-b", Epochs = 2, BatchSize = 64, Seed = 3 };
        ResumeCheck.StraightAndResumedAgree(_device!, options, train, test, checkpoint =>
        {
            using var other = new Trainer(_device!, options with { LearningRate = 0.2 }, train, test);
            var error = Assert.Throws<InvalidDataException>(() => other.Resume(checkpoint))!;
            Assert.That(error.Message, Does.Contain("another run").And.Contain("LearningRate 0.1 → 0.2"));

            using var longer = new Trainer(_device!, options with { Epochs = 3 }, train, test);
            error = Assert.Throws<InvalidDataException>(() => longer.Resume(checkpoint))!;
            Assert.That(error.Message, Does.Contain("Epochs 2 → 3").And.Contain("total_iterations 6 → 9"),
                "a longer run has another schedule");

            var inverted = new ImageDataset(train.Pixels.Select(p => (byte)(255 - p)).ToArray(), train.Labels,
                train.Channels, train.Height, train.Width, train.Classes, train.Source);
            using var otherData = new Trainer(_device!, options, inverted, test);
            error = Assert.Throws<InvalidDataException>(() => otherData.Resume(checkpoint))!;
            Assert.That(error.Message, Does.Contain("data"), "same sizes, other pixels");
        });
    }

    [Test]
    public void MeaninglessOptionsAreRejectedBeforeTraining()
    {
        var (train, test) = FashionMnistSubset(64, 16);
        var options = new TrainOptions { Model = "resnet20-a", Epochs = 1, BatchSize = 32 };
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(_device!, options with { BatchSize = 0 },
            train, test))!.Message, Does.Contain("training 0"));
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(_device!,
            options with { EvaluationBatchSize = -1 }, train, test))!.Message, Does.Contain("evaluation -1"));
        Assert.That(Assert.Throws<ArgumentException>(() => new Trainer(_device!,
            options with { Milestones = [3, -5] }, train, test))!.Message, Does.Contain("-5"));
    }

    [Test]
    public void DivergenceStopsWithAClearMessage()
    {
        var (train, test) = FashionMnistSubset(256, 32);
        var options = new TrainOptions
            { Model = "resnet20-a", Epochs = 3, BatchSize = 32, LearningRate = 1e30, Schedule = "constant" };
        using var trainer = new Trainer(_device!, options, train, test);
        var error = Assert.Throws<InvalidOperationException>(() =>
        {
            while (!trainer.Finished) trainer.RunEpoch();
        })!;
        Assert.That(error.Message, Does.Contain("diverged"));
    }

    [TestCase("bn1.running_var", float.PositiveInfinity)]
    [TestCase("layer2.0.conv1.weight", float.NaN)]
    public void NonFiniteStateStopsTrainingAndIsNeverSaved(string tensorName, float value)
    {
        // A non-finite buffer leaves the training loss finite (train mode normalises with batch statistics), so the
        // loss alone cannot see it: the whole training state is checked every step.
        var (train, test) = FashionMnistSubset(64, 16);
        var options = new TrainOptions { Model = "resnet20-a", Epochs = 2, BatchSize = 32, Schedule = "constant" };
        using var trainer = new Trainer(_device!, options, train, test);
        trainer.RunEpoch();
        var broken = trainer.Model.StateDict().Single(entry => entry.Name == tensorName).Tensor;
        var values = broken.ToArray();
        values[1] = value;
        using (GradMode.NoGrad()) broken.CopyFrom(values);

        string checkpoint = Path.Combine(Path.GetTempPath(), $"engine-nonfinite-{Guid.NewGuid():N}.safetensors");
        var refused = Assert.Throws<InvalidOperationException>(() => trainer.Save(checkpoint))!;
        Assert.That(refused.Message, Does.Contain("diverged").And.Contain($"{tensorName} (1)"));
        Assert.That(File.Exists(checkpoint), Is.False, "nothing written");

        int iteration = trainer.Iteration;
        var stopped = Assert.Throws<InvalidOperationException>(() => trainer.RunEpoch())!;
        Assert.That(stopped.Message, Does.Contain("diverged").And.Contain($"iteration {iteration}")
            .And.Contain(tensorName));
        Assert.That(trainer.Iteration, Is.EqualTo(iteration), "the step that found it did not update anything");
    }

    [Test]
    public void SchedulesFollowThePaper()
    {
        var paper = LearningRateSchedule.Create("multistep", 0.1, 64000, [32000, 48000], warmupIterations: 400,
            warmupRate: 0.01);
        Assert.That(paper.RateAt(0), Is.EqualTo(0.01));
        Assert.That(paper.RateAt(400), Is.EqualTo(0.1));
        Assert.That(paper.RateAt(31999), Is.EqualTo(0.1));
        Assert.That(paper.RateAt(32000), Is.EqualTo(0.01).Within(1e-15));
        Assert.That(paper.RateAt(48000), Is.EqualTo(0.001).Within(1e-15));
        var cosine = LearningRateSchedule.Create("cosine", 0.1, 100);
        Assert.That(cosine.RateAt(0), Is.EqualTo(0.1));
        Assert.That(cosine.RateAt(50), Is.EqualTo(0.05).Within(1e-12));
        Assert.That(cosine.RateAt(100), Is.EqualTo(0).Within(1e-12));
        Assert.That(LearningRateSchedule.Create("constant", 0.3, 10).RateAt(9), Is.EqualTo(0.3));
        Assert.Throws<ArgumentException>(() => LearningRateSchedule.Create("step", 0.1, 10));
    }
}
