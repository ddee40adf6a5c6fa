// `export --checkpoint` in a child process, its file run by ONNX Runtime: a checkpoint written by `train` (its model
// and 1x28x28 input recorded) and a plain model file named with --model both export the weights the engine loads
// from them, and ONNX Runtime's logits agree with the engine's within 1e-4.
using Engine.Core;
using Engine.Core.Serialization;
using Engine.Models.Prediction;
using Engine.Models.Training;
using Engine.Tests.Cli;
using Engine.Tests.TestData;
using NUnit.Framework;

namespace Engine.Tests.Onnx.Runtime;

[TestFixture]
public sealed class ExportCommandRuntimeTests : TempFolderFixture
{
    private Device _device = null!;

    [OneTimeSetUp]
    public void CreateDevice() => _device = Device.Create("cpu");

    [OneTimeTearDown]
    public void DisposeDevice() => _device.Dispose();

    [Test]
    public void ATrainedCheckpointExportsAtItsRecordedInput()
    {
        string training = Path.Combine(Folder, "train");
        using (var train = BenchCli.Run("train", "--model", "resnet20-a", "--data", "fashion-mnist", "--data-path",
                   FashionMnistData.Folder, "--train-subset", "32", "--test-subset", "16", "--batch", "16", "--epochs",
                   "1", "--device", "cpu", "--out", training))
            Assert.That(train.ExitCode, Is.Zero, train.Transcript);
        string checkpoint = Path.Combine(training, Trainer.CheckpointFile);
        string path = Path.Combine(Folder, "trained.onnx");

        using var export = BenchCli.Run("export", "--checkpoint", checkpoint, "--out", path);

        Assert.That(export.ExitCode, Is.Zero, export.Transcript);
        Assert.That(export.Stdout.Single(), Does.StartWith($"{path}: resnet20-a, input 1x28x28, "));
        using var model = ImageClassifier.LoadModel(_device, checkpoint);
        AssertRuntimeAgrees(model, path, [3, 1, 28, 28]);
    }

    [Test]
    public void APlainModelFileExportsWithItsName()
    {
        string weights = Path.Combine(Folder, "weights.safetensors");
        using (var trained = ExportedModels.Randomized<float>("resnet20-b", _device))
            SafeTensors.Save(trained, weights);
        string path = Path.Combine(Folder, "plain.onnx");

        using var export = BenchCli.Run("export", "--checkpoint", weights, "--model", "resnet20-b", "--out", path);

        Assert.That(export.ExitCode, Is.Zero, export.Transcript);
        using var model = ImageClassifier.LoadModel(_device, weights, "resnet20-b");
        AssertRuntimeAgrees(model, path, [2, 3, 32, 32]);
    }

    private void AssertRuntimeAgrees(Engine.Models.ResNet<float> model, string path, int[] shape)
    {
        float[] input = ExportedModels.RandomInput(shape.Aggregate(1, (a, d) => a * d), seed: 7);
        float[] actual = ExportedModels.RuntimeLogits(path, input, shape, out _);
        ExportedModels.AssertClose(actual, ExportedModels.EngineLogits(model, _device, input, shape));
    }
}
