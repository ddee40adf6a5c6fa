// `degradation` as a user runs it, in a child process on the shipped Fashion-MNIST subset (`cpu`): one run per
// model, the figure-6 plot with a panel per kind (plain left, residual right) and the table of final errors, and
// zero-init (on by default here) applied to the residual networks only.
using System.Buffers.Binary;
using System.Text.Json;
using Engine.Core.Serialization;
using Engine.Models.Training;
using Engine.Tests.TestData;
using NUnit.Framework;

namespace Engine.Tests.Cli;

[NonParallelizable]
public sealed class DegradationCommandTests
{
    [Test]
    public void TrainsEachModelPlotsPlainAndResidualSideBySideAndZeroInitsOnlyTheResidualNetworkByDefault()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"engine-degradation-{Guid.NewGuid():N}");
        try
        {
            using (var run = BenchCli.Run("degradation", "--models", "resnet20-a", "plain20", "--data", "fashion-mnist",
                       "--data-path", FashionMnistData.Folder, "--train-subset", "32", "--test-subset", "16",
                       "--batch", "16", "--epochs", "1", "--device", "cpu", "--out", folder))
                Assert.That(run.ExitCode, Is.Zero, run.Transcript);

            string table = File.ReadAllText(Path.Combine(folder, "degradation.md"));
            Assert.That(table, Does.Contain("| resnet20-a |").And.Contain("| plain20 |"), table);
            byte[] png = File.ReadAllBytes(Path.Combine(folder, "degradation.png"));
            Assert.That(png.AsSpan(1, 3).ToArray(), Is.EqualTo("PNG"u8.ToArray()));
            Assert.That(BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), Is.EqualTo(2000), "two 1000-pixel panels");

            bool ZeroInitResidual(string model)
            {
                var header = SafeTensors.ReadHeader(Path.Combine(folder, model, Trainer.CheckpointFile));
                using var options = JsonDocument.Parse(header.Metadata["options"]);
                return options.RootElement.GetProperty(nameof(TrainOptions.ZeroInitResidual)).GetBoolean();
            }
            Assert.That(ZeroInitResidual("resnet20-a"), Is.True);
            Assert.That(ZeroInitResidual("plain20"), Is.False, "a plain network has no residual branch to zero");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
