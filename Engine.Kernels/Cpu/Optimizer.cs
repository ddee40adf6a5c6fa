// SGD and Adam/AdamW with PyTorch's semantics (torch.optim.SGD, Adam, AdamW), in place on one parameter; tasks
// are fixed chunks of ChunkLength elements (Elementwise.cs), each element updated independently.
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void SgdStepCore<T>(SgdParameters p, DeviceBuffer<T> param, DeviceBuffer<T> grad,
        DeviceBuffer<T>? momentumBuffer, bool firstStep)
    {
        var job = new SgdJob<T>
        {
            Param = Data(param), Grad = Data(grad), Buffer = momentumBuffer is null ? null : Data(momentumBuffer),
            Length = param.Length, LearningRate = T.CreateTruncating(p.LearningRate),
            Momentum = T.CreateTruncating(p.Momentum), GradientWeight = T.CreateTruncating(1 - p.Dampening),
            WeightDecay = T.CreateTruncating(p.WeightDecay), Nesterov = p.Nesterov, FirstStep = firstStep,
        };
        Parallel(ChunkCount(param.Length), ref job);
    }

    /// <summary>g = grad + wd·param; buf = g (first step) or momentum·buf + (1 − dampening)·g; g = buf, or
    /// g + momentum·buf with Nesterov; param −= lr·g. Without momentum (Buffer null), g is used as is. Vector256
    /// then a scalar tail with the same operations in the same order (no fused multiply-add), so an element's
    /// result does not depend on where it lies.</summary>
    private struct SgdJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Param, Grad, Buffer;
        public long Length;
        public T LearningRate, Momentum, GradientWeight, WeightDecay;
        public bool Nesterov, FirstStep;

        public void Execute(int task, int worker)
        {
            long i = (long)task * ChunkLength, end = Math.Min(Length, i + ChunkLength);
            bool decay = WeightDecay != T.Zero, momentum = Buffer != null;
            var weightDecay = Vector256.Create(WeightDecay);
            var momentumFactor = Vector256.Create(Momentum);
            var gradientWeight = Vector256.Create(GradientWeight);
            var learningRate = Vector256.Create(LearningRate);
            for (; i + Vector256<T>.Count <= end; i += Vector256<T>.Count)
            {
                var p = Vector256.Load(Param + i);
                var g = Vector256.Load(Grad + i);
                if (decay) g += weightDecay * p;
                if (momentum)
                {
                    var buf = FirstStep ? g : momentumFactor * Vector256.Load(Buffer + i) + gradientWeight * g;
                    buf.Store(Buffer + i);
                    g = Nesterov ? g + momentumFactor * buf : buf;
                }
                (p - learningRate * g).Store(Param + i);
            }
            for (; i < end; i++)
            {
                T g = decay ? Grad[i] + WeightDecay * Param[i] : Grad[i];
                if (momentum)
                {
                    T buf = FirstStep ? g : Momentum * Buffer[i] + GradientWeight * g;
                    Buffer[i] = buf;
                    g = Nesterov ? g + Momentum * buf : buf;
                }
                Param[i] -= LearningRate * g;
            }
        }
    }

    /// <inheritdoc/>
    protected override void AdamStepCore<T>(AdamCoefficients<T> coefficients, DeviceBuffer<T> param,
        DeviceBuffer<T> grad, DeviceBuffer<T> expAvg, DeviceBuffer<T> expAvgSq, DeviceBuffer<T>? maxExpAvgSq)
    {
        var job = new AdamJob<T>
        {
            Param = Data(param), Grad = Data(grad), ExpAvg = Data(expAvg), ExpAvgSq = Data(expAvgSq),
            MaxExpAvgSq = maxExpAvgSq is null ? null : Data(maxExpAvgSq), Length = param.Length,
            K = coefficients,
        };
        Parallel(ChunkCount(param.Length), ref job);
    }

    /// <summary>One Adam step over one chunk, Vector256 then a scalar tail with the same operations in the same
    /// order (no fused multiply-add), so an element's result does not depend on where it lies.</summary>
    private struct AdamJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Param, Grad, ExpAvg, ExpAvgSq, MaxExpAvgSq;
        public long Length;
        public AdamCoefficients<T> K;

        public void Execute(int task, int worker)
        {
            long i = (long)task * ChunkLength, end = Math.Min(Length, i + ChunkLength);
            var decay = Vector256.Create(K.GradientDecay);
            var scale = Vector256.Create(K.ParameterScale);
            var oneMinusBeta1 = Vector256.Create(K.OneMinusBeta1);
            var beta2 = Vector256.Create(K.Beta2);
            var oneMinusBeta2 = Vector256.Create(K.OneMinusBeta2);
            var correction2 = Vector256.Create(K.BiasCorrection2Sqrt);
            var epsilon = Vector256.Create(K.Epsilon);
            var stepSize = Vector256.Create(K.StepSize);
            for (; i + Vector256<T>.Count <= end; i += Vector256<T>.Count)
            {
                var p = Vector256.Load(Param + i);
                var g = Vector256.Load(Grad + i) + decay * p;
                p *= scale;
                var m = Vector256.Load(ExpAvg + i);
                m += oneMinusBeta1 * (g - m);
                var v = beta2 * Vector256.Load(ExpAvgSq + i) + oneMinusBeta2 * (g * g);
                m.Store(ExpAvg + i);
                v.Store(ExpAvgSq + i);
                if (MaxExpAvgSq != null)
                {
                    v = Vector256.Max(Vector256.Load(MaxExpAvgSq + i), v);
                    v.Store(MaxExpAvgSq + i);
                }
                (p - stepSize * (m / (Vector256.Sqrt(v) / correction2 + epsilon))).Store(Param + i);
            }
            for (; i < end; i++)
            {
                T p = Param[i];
                T g = Grad[i] + K.GradientDecay * p;
                p *= K.ParameterScale;
                T m = ExpAvg[i];
                m += K.OneMinusBeta1 * (g - m);
                T v = K.Beta2 * ExpAvgSq[i] + K.OneMinusBeta2 * (g * g);
                ExpAvg[i] = m;
                ExpAvgSq[i] = v;
                if (MaxExpAvgSq != null)
                {
                    v = T.Max(MaxExpAvgSq[i], v);
                    MaxExpAvgSq[i] = v;
                }
                Param[i] = p - K.StepSize * (m / (T.Sqrt(v) / K.BiasCorrection2Sqrt + K.Epsilon));
            }
        }
    }
}
