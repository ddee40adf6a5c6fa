// Batch normalisation over the channels of an NCHW (or [N, C]) tensor with its gradients, PyTorch's semantics:
// training mode normalises with batch statistics and updates the running mean and variance in place (momentum
// 0.1, unbiased variance; ONNX's biased variance on request); eval mode normalises with the running statistics.
// What follows batch-norm in a ResNet block can be fused into it: the ReLU (conv → BN → ReLU) and, at a block's
// tail, the shortcut's add before it, y = relu(bn(x) + residual) — one pass over the activations each way instead
// of three forward (BN, add, ReLU) and two backward (ReLU, BN).
using Engine.Core.Autograd;
using Engine.Core.Ops;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>Batch norm of x [N, C, …] with per-channel gamma, beta, runningMean, runningVar [C], plus
    /// <paramref name="residual"/> (x's shape) when given, followed by a ReLU when <paramref name="relu"/>: all in one
    /// pass. In training, the running variance averages in the batch variance that
    /// <paramref name="varianceUpdate"/> names (PyTorch's unbiased one by default, ONNX's biased one). Backward: dx,
    /// dgamma, dbeta and the residual's gradient (the running statistics get none).</summary>
    public Tensor<T> BatchNorm(Tensor<T> gamma, Tensor<T> beta, Tensor<T> runningMean, Tensor<T> runningVar,
        bool training, double momentum = 0.1, double epsilon = 1e-5, bool relu = false,
        RunningVarianceUpdate varianceUpdate = RunningVarianceUpdate.Unbiased, Tensor<T>? residual = null)
    {
        var x = this;
        if (x.Rank < 2)
            throw new ArgumentException($"batch-norm: input {x.Shape} must be at least [N, C].");
        int batch = x.Shape[0], channels = x.Shape[1];
        if (batch == 0 || channels == 0)
            throw new ArgumentException($"batch-norm: input {x.Shape} is empty; an empty batch is not supported.");
        int spatial = checked((int)(x.Length / Math.Max(1L, (long)batch * channels)));
        foreach (var (vector, name) in new[] { (gamma, "gamma"), (beta, "beta"), (runningMean, "running mean"),
                     (runningVar, "running variance") })
        {
            if (vector.Shape != new Shape(channels))
                throw new ArgumentException($"batch-norm: {name} {vector.Shape} must be [{channels}] for input {x.Shape}.");
            Check.SameDevice("batch-norm", x, vector);
        }
        if (residual is not null)
        {
            Check.SameShape("batch-norm", x, "input", residual, "residual");
            Check.SameDevice("batch-norm", x, residual);
        }
        if (training && (long)batch * spatial < 2)
            throw new ArgumentException(
                $"batch-norm: training needs more than one value per channel; input {x.Shape} has one.");

        var backend = Device.Backend;
        var y = new Tensor<T>(Device, x.Shape);
        var mean = Tensor.Unscoped<T>([channels], Device);
        var invStd = Tensor.Unscoped<T>([channels], Device);
        y.Attach(mean);
        y.Attach(invStd);
        if (training)
        {
            backend.BatchNormForwardTraining(batch, channels, spatial, x.Buffer, gamma.Buffer, beta.Buffer,
                runningMean.Buffer, runningVar.Buffer, momentum, epsilon, y.Buffer, mean.Buffer, invStd.Buffer, relu,
                varianceUpdate, residual?.Buffer);
        }
        else
        {
            backend.BatchNormForwardInference(batch, channels, spatial, x.Buffer, gamma.Buffer, beta.Buffer,
                runningMean.Buffer, runningVar.Buffer, epsilon, y.Buffer, relu, residual?.Buffer);
            if (GradMode.IsEnabled && (x.RequiresGrad || gamma.RequiresGrad || beta.RequiresGrad))
            {
                backend.Copy(runningMean.Buffer, mean.Buffer);
                backend.InverseStandardDeviation(runningVar.Buffer, epsilon, invStd.Buffer);
            }
        }
        string op = (training ? "batch-norm (train)" : "batch-norm (eval)") + (residual is null ? "" : " + add") +
                    (relu ? " + relu" : "");
        Tensor<T>[] inputs = residual is null ? [x, gamma, beta] : [x, gamma, beta, residual];
        return Graph.Record(y, op, inputs, dy =>
        {
            var dx = new Tensor<T>(dy.Device, x.Shape);
            var dgamma = new Tensor<T>(dy.Device, gamma.Shape);
            var dbeta = new Tensor<T>(dy.Device, beta.Shape);
            var dresidual = residual is { RequiresGrad: true } ? new Tensor<T>(dy.Device, x.Shape) : null;
            backend.BatchNormBackward(batch, channels, spatial, x.Buffer, dy.Buffer, gamma.Buffer, mean.Buffer,
                invStd.Buffer, training, dx.Buffer, dgamma.Buffer, dbeta.Buffer, relu ? y.Buffer : null,
                dresidual?.Buffer);
            Tensor<T>?[] grads = [x.RequiresGrad ? dx : null, gamma.RequiresGrad ? dgamma : null,
                beta.RequiresGrad ? dbeta : null];
            return residual is null ? grads : [.. grads, dresidual];
        });
    }
}
