// ImageClassifier on every device: a training checkpoint (untrained weights, optimizer state included) records the
// input, normalisation and class names, and its predictions equal the trainer's own model run in eval mode on the
// dataset's bytes plus a softmax computed here; a plain model file needs the model and input named; batching
// changes nothing; and each bad input (another model, a class-count mismatch, an old checkpoint, a corrupt image)
// is rejected with a message naming it, or skipped when asked.
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Data;
using Engine.Core.Serialization;
using Engine.Models;
using Engine.Models.Prediction;
using Engine.Models.Training;
using Engine.Tests.Data;
using NUnit.Framework;

namespace Engine.Tests.Prediction;

public sealed class ImageClassifierTests(string kind) : DeviceFixture(kind)
{
    private TemporaryFolder _folder = null!;

    [SetUp]
    public void CreateFolder() => _folder = new TemporaryFolder();

    [TearDown]
    public void DeleteFolder() => _folder.Dispose();

    /// <summary>Random 1×28×28 images in 10 classes, named like Fashion-MNIST's files.</summary>
    private static ImageDataset FashionLike(int count, int seed)
    {
        var random = TestImages.Random(count, 1, 28, 28, seed, classes: 10);
        return new ImageDataset(random.Pixels, random.Labels, 1, 28, 28, 10,
            "/data/fashion-mnist/train-images-idx3-ubyte.gz, /data/fashion-mnist/train-labels-idx1-ubyte.gz");
    }

    /// <summary>A trainer (nothing trained) whose checkpoint is saved in the temp folder.</summary>
    private Trainer SavedTrainer(ImageDataset train, string normalize, out string checkpoint)
    {
        var options = new TrainOptions { Model = "resnet20-a", Iterations = 1, BatchSize = 4, Normalize = normalize };
        var trainer = new Trainer(Device, options, train, train);
        checkpoint = _folder.File(Trainer.CheckpointFile);
        trainer.Save(checkpoint);
        return trainer;
    }

    /// <summary>The trainer's model in eval mode on the normalised bytes, softmax in double.</summary>
    private static double[][] DirectProbabilities(Trainer trainer, ImageDataset data, Normalization normalization)
    {
        var x = new float[data.Count * data.ImageSize];
        for (int i = 0; i < data.Count; i++) normalization.Apply(data.Image(i), x.AsSpan(i * data.ImageSize, data.ImageSize));
        trainer.Model.Eval();
        float[] logits;
        using (GradMode.NoGrad())
            logits = trainer.Model.Forward(Tensor.FromArray(x, [data.Count, data.Channels, data.Height, data.Width],
                trainer.Model.Conv1.Weight.Device)).ToArray();
        int classes = logits.Length / data.Count;
        return Enumerable.Range(0, data.Count).Select(i =>
        {
            var row = logits.Skip(i * classes).Take(classes).Select(v => (double)v).ToArray();
            var exp = row.Select(v => Math.Exp(v - row.Max())).ToArray();
            return exp.Select(v => v / exp.Sum()).ToArray();
        }).ToArray();
    }

    private List<string> WritePngs(ImageDataset data) =>
        Enumerable.Range(0, data.Count)
            .Select(i => TestImageFiles.Write(_folder.File($"image{i}.png"), data.Image(i).ToArray(), data.Channels,
                data.Height, data.Width))
            .ToList();

    [TestCase("channel")]
    [TestCase("pixel")]
    public void TrainingCheckpointPredictsAsItsModelDoesOnTheTrainingPipeline(string normalize)
    {
        var train = FashionLike(8, seed: 3);
        using var trainer = SavedTrainer(train, normalize, out string checkpoint);
        var normalization = normalize == "channel" ? Normalization.PerChannel(train) : Normalization.PerPixelMean(train);
        var files = WritePngs(train.Take(5));

        using var classifier = ImageClassifier.Load(Device, checkpoint);
        Assert.That(classifier.Model.Spec.Name, Is.EqualTo("resnet20-a"));
        Assert.That(classifier.ClassNames, Is.EqualTo(KnownClassNames.FashionMnist));
        Assert.That((classifier.Input.Channels, classifier.Input.Height, classifier.Input.Width), Is.EqualTo((1, 28, 28)));
        Assert.That(classifier.Input.Normalization.Mean, Is.EqualTo(normalization.Mean));
        Assert.That(classifier.Input.Normalization.Std, Is.EqualTo(normalization.Std));

        var predictions = classifier.Classify(files, top: 5);
        var expected = DirectProbabilities(trainer, train.Take(5), normalization);
        Assert.That(predictions.Select(p => p.Path), Is.EqualTo(files));
        for (int i = 0; i < files.Count; i++)
        {
            var top = predictions[i].Top;
            Assert.That(top, Has.Count.EqualTo(5));
            Assert.That(top.Sum(c => c.Probability), Is.LessThanOrEqualTo(1 + 1e-9));
            Assert.That(top.Select(c => c.Probability), Is.Ordered.Descending);
            var order = Enumerable.Range(0, 10).OrderByDescending(c => expected[i][c]).Take(5);
            Assert.That(top.Select(c => c.Class), Is.EqualTo(order));
            foreach (var c in top)
            {
                Assert.That(c.Probability, Is.EqualTo(expected[i][c.Class]).Within(1e-5));
                Assert.That(c.Name, Is.EqualTo(KnownClassNames.FashionMnist[c.Class]));
            }
        }
        var all = classifier.Classify(files, top: 10);
        Assert.That(all.Select(p => p.Top.Sum(c => c.Probability)), Is.All.EqualTo(1).Within(1e-9));
    }

    [Test]
    public void BatchingDoesNotChangePredictions()
    {
        var train = FashionLike(8, seed: 4);
        using var trainer = SavedTrainer(train, "channel", out string checkpoint);
        var files = WritePngs(train.Take(5));
        using var classifier = ImageClassifier.Load(Device, checkpoint);
        var progress = new List<int>();
        var inTwos = classifier.Classify(files, 3, batchSize: 2, new Recorder(progress));
        var inOne = classifier.Classify(files, 3, batchSize: 64);
        Assert.That(progress, Is.EqualTo(new[] { 2, 4, 5 }));
        for (int i = 0; i < files.Count; i++)
            Assert.That(inTwos[i].Top.Select(c => c.Probability),
                Is.EqualTo(inOne[i].Top.Select(c => c.Probability)).Within(1e-5));
    }

    [Test]
    public void PlainModelFileNeedsItsModelAndInputNamed()
    {
        using var model = ModelRegistry.Create<float>("resnet20-a", Device, seed: 7);
        string path = _folder.File("model.safetensors");
        SafeTensors.Save(model, path);
        Assert.That(() => ImageClassifier.Load(Device, path),
            Throws.ArgumentException.With.Message.Contain("does not record its model"));
        Assert.That(() => ImageClassifier.Load(Device, path, new CheckpointOverrides("resnet20-a")),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contain("--size, --mean, --std"));
        Assert.That(() => ImageClassifier.Load(Device, path, new CheckpointOverrides("resnet32-a",
                new ModelInput(3, 32, 32, new Normalization([0.5f, 0.5f, 0.5f], [0.25f, 0.25f, 0.25f])))),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contain("does not match the model"));

        // A gray file on this 3-channel model: the gray plane repeated, then normalised per channel.
        var gray = new byte[32 * 32];
        new Random(9).NextBytes(gray);
        string image = TestImageFiles.Write(_folder.File("gray.png"), gray, 1, 32, 32);
        var normalization = new Normalization([0.4f, 0.5f, 0.6f], [0.2f, 0.25f, 0.3f]);
        using var classifier = ImageClassifier.Load(Device, path,
            new CheckpointOverrides("resnet20", new ModelInput(3, 32, 32, normalization)));
        Assert.That(classifier.ClassNames, Is.EqualTo(Enumerable.Range(0, 10).Select(i => i.ToString())));
        var prediction = classifier.Classify([image], top: 10)[0];

        var x = new float[3 * 1024];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 1024; i++)
                x[c * 1024 + i] = (float)((gray[i] / 255.0 - normalization.Mean[c]) / normalization.Std[c]);
        model.Eval();
        float[] logits;
        using (GradMode.NoGrad()) logits = model.Forward(Tensor.FromArray(x, [1, 3, 32, 32], Device)).ToArray();
        var probabilities = ImageClassifier.Softmax(logits);
        foreach (var c in prediction.Top) Assert.That(c.Probability, Is.EqualTo(probabilities[c.Class]).Within(1e-5));
    }

    [Test]
    public void CheckpointOfAnotherModelIsRejected()
    {
        using var trainer = SavedTrainer(FashionLike(8, 5), "channel", out string checkpoint);
        Assert.That(() => ImageClassifier.Load(Device, checkpoint, new CheckpointOverrides("resnet32-a")),
            Throws.ArgumentException.With.Message.Contain("holds a resnet20-a checkpoint, not resnet32-a"));
        using var same = ImageClassifier.Load(Device, checkpoint, new CheckpointOverrides("RESNET20"));
        Assert.That(same.Model.Spec.Name, Is.EqualTo("resnet20-a"));
    }

    [Test]
    public void ClassNamesMustMatchTheClassCount()
    {
        using var trainer = SavedTrainer(FashionLike(8, 6), "channel", out string checkpoint);
        Assert.That(() => ImageClassifier.Load(Device, checkpoint, new CheckpointOverrides(ClassNames: ["a", "b", "c"])),
            Throws.ArgumentException.With.Message.Contain("3 class names").And.Message.Contain("10 classes"));
    }

    [Test]
    public void ExplicitInputForACheckpointThatRecordsOneIsRejected()
    {
        using var trainer = SavedTrainer(FashionLike(8, 7), "channel", out string checkpoint);
        var input = new ModelInput(1, 28, 28, new Normalization([0.5f], [0.5f]));
        Assert.That(() => ImageClassifier.Load(Device, checkpoint, new CheckpointOverrides(Input: input)),
            Throws.ArgumentException.With.Message.Contain("records the input"));
    }

    [Test]
    public void CheckpointWithoutTheInputNamesWhatToGive()
    {
        using var trainer = SavedTrainer(FashionLike(8, 8), "channel", out string checkpoint);
        // The same checkpoint as before the trainer recorded the input: its tensors and options only.
        var header = SafeTensors.ReadHeader(checkpoint);
        var metadata = header.Metadata.Where(entry => entry.Key is "options" or "iteration" or "history")
            .ToDictionary(entry => entry.Key, entry => entry.Value);
        string old = _folder.File("old.safetensors");
        var tensors = header.Tensors.Select(entry => (entry.Name, Tensor.Zeros<float>(entry.Shape, Device))).ToList();
        SafeTensors.Load(tensors, checkpoint);
        SafeTensors.Save(tensors, old, metadata);
        Assert.That(() => ImageClassifier.Load(Device, old),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contain("does not record the input size"));
        var input = new ModelInput(1, 28, 28, new Normalization([0.5f], [0.5f]));
        using var classifier = ImageClassifier.Load(Device, old, new CheckpointOverrides(Input: input));
        Assert.That(classifier.ClassNames[9], Is.EqualTo("9"));
    }

    [Test]
    public void MissingCheckpointIsRejectedByName()
    {
        string path = _folder.File("absent.safetensors");
        Assert.That(() => ImageClassifier.Load(Device, path),
            Throws.InstanceOf<FileNotFoundException>().With.Message.Contain(path));
    }

    [Test]
    public void CorruptImageStopsTheRunByNameUnlessSkipped()
    {
        var train = FashionLike(8, 9);
        using var trainer = SavedTrainer(train, "channel", out string checkpoint);
        var files = WritePngs(train.Take(3));
        string bad = _folder.File("bad.png");
        File.WriteAllText(bad, "not a png");
        files.Insert(1, bad);
        using var classifier = ImageClassifier.Load(Device, checkpoint);
        Assert.That(() => classifier.Classify(files),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contain(bad));
        var skipped = new List<string>();
        var predictions = classifier.Classify(files, batchSize: 2, skip: (file, _) => skipped.Add(file));
        Assert.That(skipped, Is.EqualTo(new[] { bad }));
        Assert.That(predictions.Select(p => p.Path), Is.EqualTo(files.Where(f => f != bad)));
    }

    private sealed class Recorder(List<int> values) : IProgress<int>
    {
        public void Report(int value) => values.Add(value);
    }
}
