// `demo`: a residual block built from the engine's elementwise ops — forward, backward and a float64 gradient
// check — on the chosen device. Shows the whole path Tensor → backend kernel → autograd in a few seconds.
using System.CommandLine;
using System.Diagnostics;
using Engine.Core;

namespace Engine.Bench.Commands;

internal static class DemoCommand
{
    public static Command Create()
    {
        var device = CommonOptions.Device();
        var command = new Command("demo", "Residual block forward/backward with its gradient check.") { device };
        command.SetAction(result => Run(result.GetValue(device)));
        return command;
    }

    private static int Run(string? requestedDevice)
    {
        using var device = CommonOptions.OpenDevice(requestedDevice);
        using var scope = TensorScope.Begin();

        // y = relu(relu(x ⊙ w1) ⊙ w2 + x): the residual pattern F(x) + x, with ⊙ standing in for the convolutions.
        Shape shape = [8, 16, 32, 32];
        var x = Tensor.RandomNormal<float>(shape, seed: 1, device: device);
        var w1 = Tensor.RandomNormal<float>(shape, seed: 2, device: device);
        var w2 = Tensor.RandomNormal<float>(shape, seed: 3, device: device);
        w1.RequiresGrad = w2.RequiresGrad = true;

        var clock = Stopwatch.StartNew();
        var loss = (((x * w1).Relu() * w2 + x).Relu()).Mean();
        loss.Backward();
        device.Synchronize();
        Console.WriteLine($"residual block {shape} float32: loss {loss.Item():F6}, forward+backward " +
                          $"{clock.Elapsed.TotalMilliseconds:F1} ms (first call, kernels compiled)");
        clock.Restart();
        w1.ZeroGrad();
        w2.ZeroGrad();
        (((x * w1).Relu() * w2 + x).Relu()).Mean().Backward();
        device.Synchronize();
        Console.WriteLine($"forward+backward again: {clock.Elapsed.TotalMilliseconds:F1} ms; " +
                          $"|dL/dw1| sum {w1.Grad!.ToArray().Sum(Math.Abs):G6}");

        var xs = Tensor.RandomNormal<double>([2, 3, 4, 4], seed: 4, device: device);
        var v1 = Tensor.RandomNormal<double>([2, 3, 4, 4], seed: 5, device: device);
        var v2 = Tensor.RandomNormal<double>([2, 3, 4, 4], seed: 6, device: device);
        xs.RequiresGrad = v1.RequiresGrad = v2.RequiresGrad = true;
        var check = GradCheck.Run(() => ((xs * v1).Relu() * v2 + xs).Relu(), [xs, v1, v2],
            new GradCheckOptions { InputNames = ["x", "w1", "w2"] });
        Console.WriteLine(check);
        return check.Passed ? 0 : 1;
    }
}
