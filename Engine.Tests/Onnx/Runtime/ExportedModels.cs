// What the ONNX export tests share: models whose batch norms are far from the identity, random inputs, the engine's
// and ONNX Runtime's logits for the same input, and their comparison within 1e-4.
using System.Numerics;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Core.Onnx;
using Engine.Models;
using Microsoft.ML.OnnxRuntime;
using NUnit.Framework;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace Engine.Tests.Onnx.Runtime;

internal static class ExportedModels
{
    /// <summary>Largest absolute difference allowed between the engine's and ONNX Runtime's logits.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>The named network with every batch norm's gamma, beta, running mean and running variance drawn at
    /// random (at their initial values batch norm is nearly the identity; scales stay near 1 so that activations
    /// keep their size through 50 layers).</summary>
    public static ResNet<T> Randomized<T>(string name, Device device) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var model = ModelRegistry.Create<T>(name, device, seed: 3);
        RandomizeBatchNorms(model, seed: 4);
        return model;
    }

    /// <summary>Draws every batch norm's gamma from U(0.5, 1.5), beta and running mean from U(−0.3, 0.3), running
    /// variance from U(0.5, 2).</summary>
    public static void RandomizeBatchNorms<T>(Module<T> model, int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        T[] Draw(int count, double low, double high) =>
            Enumerable.Range(0, count).Select(_ => T.CreateChecked(low + (high - low) * random.NextDouble())).ToArray();
        using var noGrad = GradMode.NoGrad();
        foreach (var norm in Descendants(model).OfType<BatchNorm2d<T>>())
        {
            norm.Weight.CopyFrom(Draw(norm.Channels, 0.5, 1.5));
            norm.Bias.CopyFrom(Draw(norm.Channels, -0.3, 0.3));
            norm.RunningMean.CopyFrom(Draw(norm.Channels, -0.3, 0.3));
            norm.RunningVar.CopyFrom(Draw(norm.Channels, 0.5, 2.0));
        }
    }

    private static IEnumerable<Module<T>> Descendants<T>(Module<T> module)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        module.NamedChildren().SelectMany(child => Descendants(child.Module).Prepend(child.Module));

    /// <summary><paramref name="count"/> values from U(−1, 1).</summary>
    public static float[] RandomInput(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(2 * random.NextDouble() - 1)).ToArray();
    }

    /// <summary>The engine's eval-mode output for <paramref name="input"/> of <paramref name="shape"/>; the model's
    /// mode is restored afterwards.</summary>
    public static float[] EngineLogits(Module<float> model, Device device, float[] input, int[] shape)
    {
        bool training = model.Training;
        model.Eval();
        try
        {
            using var scope = TensorScope.Begin();
            using var noGrad = GradMode.NoGrad();
            return model.Forward(Tensor.FromArray(input, shape, device)).ToArray();
        }
        finally
        {
            model.Train(training);
        }
    }

    /// <summary>ONNX Runtime's output "logits" of the file at <paramref name="path"/> for <paramref name="input"/>
    /// fed as "input" of <paramref name="shape"/>.</summary>
    public static float[] RuntimeLogits(string path, float[] input, int[] shape, out int[] outputShape)
    {
        using var session = new InferenceSession(path);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxExport.InputName, new DenseTensor(input, shape))]);
        var logits = results.Single(r => r.Name == OnnxExport.OutputName).AsTensor<float>();
        outputShape = logits.Dimensions.ToArray();
        return logits.ToArray();
    }

    /// <summary>Asserts that the two agree within <see cref="Tolerance"/> and are not all near zero.</summary>
    public static void AssertClose(float[] actual, float[] expected)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length));
        double worst = actual.Zip(expected, (a, e) => Math.Abs((double)a - e)).Max();
        string summary = $"largest difference {worst:G3}; logits span {expected.Min():G4} … {expected.Max():G4}";
        TestContext.Out.WriteLine(summary);
        Assert.That(worst, Is.LessThanOrEqualTo(Tolerance), summary);
        Assert.That(expected.Select(Math.Abs).Max(), Is.GreaterThan(1e-2), "the logits are not all near zero");
    }
}
