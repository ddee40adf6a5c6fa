// A backend that forwards every op to another and records the time each op family takes (synchronising after
// each call, so the times are the ops' own). Used by `step --profile` to show where a step's time goes. It does
// not own the wrapped backend.
using System.Diagnostics;
using System.Numerics;
using Engine.Kernels;

namespace Engine.Bench.Measurement;

internal sealed class ProfilingBackend(IBackend inner) : IBackend
{
    private readonly IBackend _inner = inner;
    private readonly Dictionary<string, (double Milliseconds, int Calls)> _times = new();

    public string Kind => _inner.Kind;
    public string Description => _inner.Description + " (profiled)";
    public int LoadedKernelCount => _inner.LoadedKernelCount;

    public IReadOnlyDictionary<string, (double Milliseconds, int Calls)> Times => _times;

    public void Reset() => _times.Clear();

    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => _inner.Allocate<T>(length);

    public void Synchronize() => _inner.Synchronize();

    private void Time(string op, Action call)
    {
        var clock = Stopwatch.StartNew();
        call();
        _inner.Synchronize();
        var (milliseconds, calls) = _times.GetValueOrDefault(op);
        _times[op] = (milliseconds + clock.Elapsed.TotalMilliseconds, calls + 1);
    }

    public void Fill<T>(DeviceBuffer<T> y, T value) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Fill", () => _inner.Fill(y, value));

    public void Copy<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Copy", () => _inner.Copy(x, y));

    public void Add<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Add", () => _inner.Add(a, b, y));

    public void Multiply<T>(DeviceBuffer<T> a, DeviceBuffer<T> b, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Multiply", () => _inner.Multiply(a, b, y));

    public void Scale<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Scale", () => _inner.Scale(x, alpha, y));

    public void Axpy<T>(T alpha, DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Axpy", () => _inner.Axpy(alpha, x, y));

    public void Relu<T>(DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Relu", () => _inner.Relu(x, y));

    public void ReluBackward<T>(DeviceBuffer<T> y, DeviceBuffer<T> dy, DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("ReluBackward", () => _inner.ReluBackward(y, dy, dx));

    public void BroadcastScalar<T>(DeviceBuffer<T> scalar, T alpha, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("BroadcastScalar", () => _inner.BroadcastScalar(scalar, alpha, y));

    public void Sum<T>(DeviceBuffer<T> x, T alpha, DeviceBuffer<T> result) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Sum", () => _inner.Sum(x, alpha, result));

    public void SumPerChannel<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> result) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("SumPerChannel", () => _inner.SumPerChannel(batch, channels, spatial, x, result));

    public void AddPerChannel<T>(int batch, int channels, int spatial, DeviceBuffer<T> bias, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("AddPerChannel", () => _inner.AddPerChannel(batch, channels, spatial, bias, y));

    public void Conv2dForward<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> w, DeviceBuffer<T>? bias, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Conv2dForward", () => _inner.Conv2dForward(g, x, w, bias, y));

    public void Conv2dBackwardData<T>(ConvGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> w, DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Conv2dBackwardData", () => _inner.Conv2dBackwardData(g, dy, w, dx));

    public void Conv2dBackwardWeight<T>(ConvGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> dy, DeviceBuffer<T> dw) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Conv2dBackwardWeight", () => _inner.Conv2dBackwardWeight(g, x, dy, dw));

    public void Gemm<T>(bool transposeA, bool transposeB, int m, int n, int k, T alpha, DeviceBuffer<T> a, DeviceBuffer<T> b, T beta, DeviceBuffer<T> c) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("Gemm", () => _inner.Gemm(transposeA, transposeB, m, n, k, alpha, a, b, beta, c));

    public void BatchNormForwardTraining<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar, double momentum, double epsilon, DeviceBuffer<T> y, DeviceBuffer<T> savedMean, DeviceBuffer<T> savedInvStd, bool relu) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("BatchNormForwardTraining", () => _inner.BatchNormForwardTraining(batch, channels, spatial, x, gamma, beta, runningMean, runningVar, momentum, epsilon, y, savedMean, savedInvStd, relu));

    public void BatchNormForwardInference<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> gamma, DeviceBuffer<T> beta, DeviceBuffer<T> runningMean, DeviceBuffer<T> runningVar, double epsilon, DeviceBuffer<T> y, bool relu) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("BatchNormForwardInference", () => _inner.BatchNormForwardInference(batch, channels, spatial, x, gamma, beta, runningMean, runningVar, epsilon, y, relu));

    public void BatchNormBackward<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> dy, DeviceBuffer<T> gamma, DeviceBuffer<T> mean, DeviceBuffer<T> invStd, bool batchStatistics, DeviceBuffer<T> dx, DeviceBuffer<T> dgamma, DeviceBuffer<T> dbeta, DeviceBuffer<T>? reluOutput) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("BatchNormBackward", () => _inner.BatchNormBackward(batch, channels, spatial, x, dy, gamma, mean, invStd, batchStatistics, dx, dgamma, dbeta, reluOutput));

    public void InverseStandardDeviation<T>(DeviceBuffer<T> variance, double epsilon, DeviceBuffer<T> invStd) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("InverseStandardDeviation", () => _inner.InverseStandardDeviation(variance, epsilon, invStd));

    public void MaxPoolForward<T>(PoolGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y, DeviceBuffer<int> argmax) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("MaxPoolForward", () => _inner.MaxPoolForward(g, x, y, argmax));

    public void MaxPoolBackward<T>(PoolGeometry g, DeviceBuffer<T> dy, DeviceBuffer<int> argmax, DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("MaxPoolBackward", () => _inner.MaxPoolBackward(g, dy, argmax, dx));

    public void GlobalAveragePoolForward<T>(int batch, int channels, int spatial, DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("GlobalAveragePoolForward", () => _inner.GlobalAveragePoolForward(batch, channels, spatial, x, y));

    public void GlobalAveragePoolBackward<T>(int batch, int channels, int spatial, DeviceBuffer<T> dy, DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("GlobalAveragePoolBackward", () => _inner.GlobalAveragePoolBackward(batch, channels, spatial, dy, dx));

    public void SoftmaxCrossEntropyForward<T>(int batch, int classes, DeviceBuffer<T> logits, DeviceBuffer<int> labels, DeviceBuffer<T> probabilities, DeviceBuffer<T> losses) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("SoftmaxCrossEntropyForward", () => _inner.SoftmaxCrossEntropyForward(batch, classes, logits, labels, probabilities, losses));

    public void SoftmaxCrossEntropyBackward<T>(int batch, int classes, DeviceBuffer<T> probabilities, DeviceBuffer<int> labels, DeviceBuffer<T> lossGrad, T alpha, DeviceBuffer<T> dlogits) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("SoftmaxCrossEntropyBackward", () => _inner.SoftmaxCrossEntropyBackward(batch, classes, probabilities, labels, lossGrad, alpha, dlogits));

    public void TopKCorrect<T>(int batch, int classes, int k, DeviceBuffer<T> logits, DeviceBuffer<int> labels, DeviceBuffer<int> correct) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("TopKCorrect", () => _inner.TopKCorrect(batch, classes, k, logits, labels, correct));

    public void ShortcutForward<T>(ShortcutGeometry g, DeviceBuffer<T> x, DeviceBuffer<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("ShortcutForward", () => _inner.ShortcutForward(g, x, y));

    public void ShortcutBackward<T>(ShortcutGeometry g, DeviceBuffer<T> dy, DeviceBuffer<T> dx) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("ShortcutBackward", () => _inner.ShortcutBackward(g, dy, dx));

    public void SgdStep<T>(SgdParameters p, DeviceBuffer<T> param, DeviceBuffer<T> grad, DeviceBuffer<T>? momentumBuffer, bool firstStep) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("SgdStep", () => _inner.SgdStep(p, param, grad, momentumBuffer, firstStep));

    public void AdamStep<T>(AdamParameters p, int step, DeviceBuffer<T> param, DeviceBuffer<T> grad, DeviceBuffer<T> expAvg, DeviceBuffer<T> expAvgSq, DeviceBuffer<T>? maxExpAvgSq) where T : unmanaged, IFloatingPointIeee754<T> =>
        Time("AdamStep", () => _inner.AdamStep(p, step, param, grad, expAvg, expAvgSq, maxExpAvgSq));

    /// <summary>The wrapped backend belongs to its own device; nothing to release here.</summary>
    public void Dispose()
    {
    }
}
