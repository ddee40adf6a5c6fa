// FashionMnistClassifier: Engine used from its NuGet packages, end to end. Trains ResNet-20 (option A shortcuts) for
// 1×28×28 Fashion-MNIST images and 10 classes for a few SGD steps, saves it as safetensors, reloads the file into a
// freshly built model (other random weights) and checks that both give bit-identical logits on the test images,
// then checks that the test accuracy is clearly above chance.
//
//     dotnet run -c Release -- <folder with the Fashion-MNIST idx files> [iterations, default 60]
//
// Exit code 0 when every check passes, 1 when one fails (or the data cannot be read), 2 for bad arguments.
using System.Diagnostics;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Data;
using Engine.Core.Optim;
using Engine.Core.Serialization;
using Engine.Models;

const string ModelName = "resnet20-a";
const int BatchSize = 32;
const int EvaluationBatchSize = 250;
// Enough test images for a tight accuracy estimate (one standard error ≤ 1.6 points), few enough for a quick run.
const int MaxTestImages = 1000;

int iterations = 60;
if (args.Length is < 1 or > 2 || (args.Length == 2 && (!int.TryParse(args[1], out iterations) || iterations < 1)))
{
    Console.Error.WriteLine("usage: FashionMnistClassifier <fashion-mnist-folder> [iterations, a positive integer]");
    return 2;
}

var clock = Stopwatch.StartNew();
string checkpoint = Path.Combine(Path.GetTempPath(), $"fashion-mnist-{ModelName}-{Guid.NewGuid():N}.safetensors");
try
{
    using var device = Device.Select(null);                  // CUDA → OpenCL → cpu, or $ENGINE_DEVICE
    Console.WriteLine($"device: {device} ({device.SelectionReason})");
    ImageDataset train = FashionMnist.ReadTrain(args[0]);
    ImageDataset test = FashionMnist.ReadTest(args[0]).Take(MaxTestImages);
    Console.WriteLine($"train: {train}");
    Console.WriteLine($"test:  {test}");
    var normalization = Normalization.PerChannel(train);

    using var model = ModelRegistry.Create<float>(ModelName, device, seed: 1, classes: train.Classes,
        inputChannels: train.Channels);
    Train(model, train, normalization, iterations);
    var (logits, predictions) = Predict(model, test, normalization);
    double accuracy = Accuracy(predictions, test.Labels);

    SafeTensors.Save(model, checkpoint);
    using var reloaded = ModelRegistry.Create<float>(ModelName, device, seed: 2, classes: train.Classes,
        inputChannels: train.Channels);
    SafeTensors.Load(reloaded, checkpoint);
    var (reloadedLogits, reloadedPredictions) = Predict(reloaded, test, normalization);
    double reloadedAccuracy = Accuracy(reloadedPredictions, test.Labels);

    // Chance: a classifier that ignores the image is right at most as often as the most frequent test class; with
    // n test images its accuracy scatters around that share p with standard deviation √(p(1−p)/n), and exceeds
    // p + 5 standard deviations with probability below 3·10⁻⁷. A trained network clears this bar by far.
    double chance = (double)test.ClassCounts().Max() / test.Count;
    double required = chance + 5 * Math.Sqrt(chance * (1 - chance) / test.Count);
    Console.WriteLine($"test accuracy: {accuracy:P1} on {test.Count} images (chance {chance:P1}, " +
                      $"required above {required:P1}); reloaded from safetensors: {reloadedAccuracy:P1}");

    int failures = 0;
    if (!logits.AsSpan().SequenceEqual(reloadedLogits))
    {
        int differing = predictions.Zip(reloadedPredictions).Count(pair => pair.First != pair.Second);
        Console.Error.WriteLine($"FAILED: the reloaded model's logits differ from the trained model's " +
                                $"({differing} of {test.Count} predictions differ).");
        failures++;
    }
    if (!(accuracy > required))
    {
        Console.Error.WriteLine($"FAILED: test accuracy {accuracy:P1} is not above {required:P1} (chance + 5σ).");
        failures++;
    }
    Console.WriteLine(failures == 0
        ? $"passed: trained, saved, reloaded with identical predictions, in {clock.Elapsed.TotalSeconds:0.0} s"
        : $"failed: {failures} check(s) failed");
    return failures == 0 ? 0 : 1;
}
catch (Exception error) when (error is IOException or InvalidDataException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"error: {error.Message}");
    return 1;
}
finally
{
    File.Delete(checkpoint);
}

// SGD with momentum on shuffled mini-batches, the learning rate following a cosine schedule after a short warm-up.
static void Train(ResNet<float> model, ImageDataset train, Normalization normalization, int iterations)
{
    var device = model.Conv1.Weight.Device;
    var schedule = new CosineSchedule(BaseRate: 0.05, TotalIterations: iterations, WarmupIterations: 5,
        WarmupRate: 0.01);
    using var sgd = new Sgd<float>(model.Parameters(), schedule.RateAt(0), momentum: 0.9, weightDecay: 1e-4);
    // dropLast: every step sees a full batch (a last batch of one image would leave batch norm one value).
    using var loader = new BatchLoader(train, Math.Min(BatchSize, train.Count), shuffle: true, seed: 1,
        normalization, Augmentation.None, dropLast: true);
    model.Train();
    int iteration = 0;
    for (int epoch = 0; iteration < iterations; epoch++)
        foreach (var batch in loader.Epoch(epoch))
        {
            if (iteration == iterations) break;
            sgd.LearningRate = schedule.RateAt(iteration);
            using (TensorScope.Begin())                     // frees this step's tensors at the end of the block
            {
                var x = Tensor.FromArray(batch.Images, [batch.Count, train.Channels, train.Height, train.Width],
                    device);
                var loss = model.Forward(x).CrossEntropy(batch.Labels);
                loss.Backward();
                sgd.Step();
                sgd.ZeroGrad();
                iteration++;
                if (iteration % 10 == 0 || iteration == iterations)
                    Console.WriteLine($"iteration {iteration,4}/{iterations}: loss {loss.Item():0.000}, " +
                                      $"learning rate {sgd.LearningRate:0.####}");
            }
        }
}

// The model's logits (N × classes, row-major) on every image in eval mode, and the predicted class of each.
static (float[] Logits, int[] Predictions) Predict(ResNet<float> model, ImageDataset data,
    Normalization normalization)
{
    var device = model.Conv1.Weight.Device;
    var logits = new float[data.Count * model.Classes];
    using var loader = new BatchLoader(data, Math.Min(EvaluationBatchSize, data.Count), shuffle: false, seed: 0,
        normalization, Augmentation.None);
    model.Eval();
    int done = 0;
    using (GradMode.NoGrad())
        foreach (var batch in loader.Epoch(0))
            using (TensorScope.Begin())
            {
                var x = Tensor.FromArray(batch.Images, [batch.Count, data.Channels, data.Height, data.Width], device);
                model.Forward(x).ToArray().CopyTo(logits, done * model.Classes);
                done += batch.Count;
            }
    var predictions = new int[data.Count];
    for (int i = 0; i < data.Count; i++)
    {
        var row = logits.AsSpan(i * model.Classes, model.Classes);
        for (int c = 1; c < row.Length; c++)
            if (row[c] > row[predictions[i]]) predictions[i] = c;
    }
    return (logits, predictions);
}

static double Accuracy(int[] predictions, int[] labels) =>
    (double)predictions.Zip(labels).Count(pair => pair.First == pair.Second) / labels.Length;
