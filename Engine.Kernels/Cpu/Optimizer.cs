// SGD and Adam/AdamW with PyTorch's semantics (torch.optim.SGD, Adam, AdamW), in place; tasks are fixed chunks of
// ChunkLength elements (Elementwise.cs), each element updated independently. SGD takes a list of tensors as one
// parallel run over the chunks of them all.
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void SgdStepsCore<T>(SgdParameters p, IReadOnlyList<SgdTensor<T>> tensors)
    {
        // The tensor table, set up by the calling thread in its partials slot before the run: tensor k's chunks
        // are tasks FirstTask[k] … FirstTask[k + 1] − 1.
        var table = (SgdChunks<T>*)WorkerScratch(0, PartialsSlot, tensors.Count * sizeof(SgdChunks<T>));
        int tasks = 0;
        for (int k = 0; k < tensors.Count; k++)
        {
            var t = tensors[k];
            table[k] = new SgdChunks<T>
            {
                Param = Data(t.Parameter), Grad = Data(t.Grad),
                Buffer = t.MomentumBuffer is null ? null : Data(t.MomentumBuffer), Length = t.Parameter.Length,
                FirstTask = tasks, FirstStep = t.FirstStep,
            };
            tasks += ChunkCount(t.Parameter.Length);
        }
        var job = new SgdJob<T>
        {
            Tensors = table, TensorCount = tensors.Count, LearningRate = T.CreateTruncating(p.LearningRate),
            Momentum = T.CreateTruncating(p.Momentum), GradientWeight = T.CreateTruncating(1 - p.Dampening),
            WeightDecay = T.CreateTruncating(p.WeightDecay), Nesterov = p.Nesterov,
        };
        Parallel(tasks, ref job);
    }

    /// <summary>One tensor of an SGD run: its buffers, its length, its first task and its first-step flag.</summary>
    private struct SgdChunks<T> where T : unmanaged
    {
        public T* Param, Grad, Buffer;
        public long Length;
        public int FirstTask;
        public bool FirstStep;
    }

    /// <summary>Task <c>task</c>: one chunk of ChunkLength elements of one tensor (found by bisection over the
    /// table). g = grad + wd·param; buf = g (first step) or momentum·buf + (1 − dampening)·g; g = buf, or
    /// g + momentum·buf with Nesterov; param −= lr·g. Without momentum (Buffer null), g is used as is. Vector256
    /// then a scalar tail with the same operations in the same order (no fused multiply-add), so an element's
    /// result does not depend on where it lies, nor on which other tensors share the run.</summary>
    private struct SgdJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public SgdChunks<T>* Tensors;
        public int TensorCount;
        public T LearningRate, Momentum, GradientWeight, WeightDecay;
        public bool Nesterov;

        public void Execute(int task, int worker)
        {
            int low = 0, high = TensorCount - 1;
            while (low < high)
            {
                int middle = (low + high + 1) / 2;
                if (Tensors[middle].FirstTask <= task) low = middle;
                else high = middle - 1;
            }
            var t = Tensors[low];
            T* param = t.Param, grad = t.Grad, buffer = t.Buffer;
            bool firstStep = t.FirstStep, decay = WeightDecay != T.Zero, momentum = buffer != null;
            long i = (long)(task - t.FirstTask) * ChunkLength, end = Math.Min(t.Length, i + ChunkLength);
            var weightDecay = Vector256.Create(WeightDecay);
            var momentumFactor = Vector256.Create(Momentum);
            var gradientWeight = Vector256.Create(GradientWeight);
            var learningRate = Vector256.Create(LearningRate);
            for (; i + Vector256<T>.Count <= end; i += Vector256<T>.Count)
            {
                var p = Vector256.Load(param + i);
                var g = Vector256.Load(grad + i);
                if (decay) g += weightDecay * p;
                if (momentum)
                {
                    var buf = firstStep ? g : momentumFactor * Vector256.Load(buffer + i) + gradientWeight * g;
                    buf.Store(buffer + i);
                    g = Nesterov ? g + momentumFactor * buf : buf;
                }
                (p - learningRate * g).Store(param + i);
            }
            for (; i < end; i++)
            {
                T g = decay ? grad[i] + WeightDecay * param[i] : grad[i];
                if (momentum)
                {
                    T buf = firstStep ? g : Momentum * buffer[i] + GradientWeight * g;
                    buffer[i] = buf;
                    g = Nesterov ? g + Momentum * buf : buf;
                }
                param[i] -= LearningRate * g;
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
