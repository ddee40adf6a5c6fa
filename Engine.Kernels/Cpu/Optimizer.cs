// SGD and Adam/AdamW with PyTorch's semantics (torch.optim.SGD, Adam, AdamW), in place; tasks are fixed chunks of
// ChunkLength elements (Elementwise.cs), each element updated independently. Both take a list of tensors as one
// parallel run over the chunks of them all, through one ChunkTable (tensor k's chunks are a contiguous run of
// tasks; a task finds its tensor by bisection).
using System.Numerics;
using System.Runtime.Intrinsics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>The tensors of a multi-tensor run, in the calling thread's partials slot: tensor k (its
    /// <typeparamref name="TTensor"/> entry and its length) owns tasks FirstTask[k] … FirstTask[k + 1] − 1, one per
    /// chunk of ChunkLength elements. Filled by the calling thread before the run, read by every worker.</summary>
    private struct ChunkTable<TTensor> where TTensor : unmanaged
    {
        private struct Entry
        {
            public TTensor Tensor;
            public long Length;
            public int FirstTask;
        }

        private Entry* _entries;
        private int _count;

        /// <summary>The tasks of the tensors added so far: the run's task count.</summary>
        public int TaskCount { get; private set; }

        /// <summary>An empty table with room for <paramref name="capacity"/> tensors.</summary>
        public static ChunkTable<TTensor> Create(CpuBackend backend, int capacity) => new()
        {
            _entries = (Entry*)backend.WorkerScratch(0, PartialsSlot, (long)capacity * sizeof(Entry)),
        };

        /// <summary>Appends a non-empty tensor of <paramref name="length"/> elements; its chunks follow the previous
        /// tensor's.</summary>
        public void Add(in TTensor tensor, long length)
        {
            _entries[_count++] = new Entry { Tensor = tensor, Length = length, FirstTask = TaskCount };
            TaskCount += ChunkCount(length);
        }

        /// <summary>The tensor of task <paramref name="task"/> and the element range [start, end) of its chunk.</summary>
        public readonly ref readonly TTensor Find(int task, out long start, out long end)
        {
            int low = 0, high = _count - 1;
            while (low < high)
            {
                int middle = (low + high + 1) / 2;
                if (_entries[middle].FirstTask <= task) low = middle;
                else high = middle - 1;
            }
            ref readonly var entry = ref _entries[low];
            start = (long)(task - entry.FirstTask) * ChunkLength;
            end = Math.Min(entry.Length, start + ChunkLength);
            return ref entry.Tensor;
        }
    }

    /// <inheritdoc/>
    protected override void SgdStepsCore<T>(SgdParameters p, IReadOnlyList<SgdTensor<T>> tensors)
    {
        var table = ChunkTable<SgdChunk<T>>.Create(this, tensors.Count);
        foreach (var t in tensors)
            table.Add(new SgdChunk<T>
            {
                Param = Data(t.Parameter), Grad = Data(t.Grad),
                Buffer = t.MomentumBuffer is null ? null : Data(t.MomentumBuffer), FirstStep = t.FirstStep,
            }, t.Parameter.Length);
        var job = new SgdJob<T>
        {
            Tensors = table, LearningRate = T.CreateTruncating(p.LearningRate),
            Momentum = T.CreateTruncating(p.Momentum), GradientWeight = T.CreateTruncating(1 - p.Dampening),
            WeightDecay = T.CreateTruncating(p.WeightDecay), Nesterov = p.Nesterov,
        };
        Parallel(table.TaskCount, ref job);
    }

    /// <summary>One tensor of an SGD run: its buffers and its first-step flag.</summary>
    private struct SgdChunk<T> where T : unmanaged
    {
        public T* Param, Grad, Buffer;
        public bool FirstStep;
    }

    /// <summary>Task <c>task</c>: one chunk of ChunkLength elements of one tensor (found in the table).
    /// g = grad + wd·param; buf = g (first step) or momentum·buf + (1 − dampening)·g; g = buf, or
    /// g + momentum·buf with Nesterov; param −= lr·g. Without momentum (Buffer null), g is used as is. Vector256
    /// then a scalar tail with the same operations in the same order (no fused multiply-add), so an element's
    /// result does not depend on where it lies, nor on which other tensors share the run.</summary>
    private struct SgdJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public ChunkTable<SgdChunk<T>> Tensors;
        public T LearningRate, Momentum, GradientWeight, WeightDecay;
        public bool Nesterov;

        public void Execute(int task, int worker)
        {
            ref readonly var t = ref Tensors.Find(task, out long i, out long end);
            T* param = t.Param, grad = t.Grad, buffer = t.Buffer;
            bool firstStep = t.FirstStep, decay = WeightDecay != T.Zero, momentum = buffer != null;
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
    protected override void AdamStepsCore<T>(IReadOnlyList<AdamTensor<T>> tensors)
    {
        var table = ChunkTable<AdamChunk<T>>.Create(this, tensors.Count);
        foreach (var t in tensors)
            table.Add(new AdamChunk<T>
            {
                Param = Data(t.Parameter), Grad = Data(t.Grad), ExpAvg = Data(t.ExpAvg), ExpAvgSq = Data(t.ExpAvgSq),
                MaxExpAvgSq = t.MaxExpAvgSq is null ? null : Data(t.MaxExpAvgSq), K = t.Coefficients,
            }, t.Parameter.Length);
        var job = new AdamJob<T> { Tensors = table };
        Parallel(table.TaskCount, ref job);
    }

    /// <summary>One tensor of an Adam run: its buffers (MaxExpAvgSq null without AMSGrad) and the coefficients of
    /// its step.</summary>
    private struct AdamChunk<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Param, Grad, ExpAvg, ExpAvgSq, MaxExpAvgSq;
        public AdamCoefficients<T> K;
    }

    /// <summary>Task <c>task</c>: one Adam step over one chunk of one tensor (found in the table), with that tensor's
    /// coefficients. Vector256 then a scalar tail with the same operations in the same order (no fused
    /// multiply-add), so an element's result does not depend on where it lies, nor on which other tensors share the
    /// run.</summary>
    private struct AdamJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public ChunkTable<AdamChunk<T>> Tensors;

        public void Execute(int task, int worker)
        {
            ref readonly var t = ref Tensors.Find(task, out long i, out long end);
            T* param = t.Param, grad = t.Grad, expAvg = t.ExpAvg, expAvgSq = t.ExpAvgSq, maxExpAvgSq = t.MaxExpAvgSq;
            var k = t.K;
            var decay = Vector256.Create(k.GradientDecay);
            var scale = Vector256.Create(k.ParameterScale);
            var oneMinusBeta1 = Vector256.Create(k.OneMinusBeta1);
            var beta2 = Vector256.Create(k.Beta2);
            var oneMinusBeta2 = Vector256.Create(k.OneMinusBeta2);
            var correction2 = Vector256.Create(k.BiasCorrection2Sqrt);
            var epsilon = Vector256.Create(k.Epsilon);
            var stepSize = Vector256.Create(k.StepSize);
            for (; i + Vector256<T>.Count <= end; i += Vector256<T>.Count)
            {
                var p = Vector256.Load(param + i);
                var g = Vector256.Load(grad + i) + decay * p;
                p *= scale;
                var m = Vector256.Load(expAvg + i);
                m += oneMinusBeta1 * (g - m);
                var v = beta2 * Vector256.Load(expAvgSq + i) + oneMinusBeta2 * (g * g);
                m.Store(expAvg + i);
                v.Store(expAvgSq + i);
                if (maxExpAvgSq != null)
                {
                    v = Vector256.Max(Vector256.Load(maxExpAvgSq + i), v); // IEEE maximum: a NaN in either wins
                    v.Store(maxExpAvgSq + i);
                }
                (p - stepSize * (m / (Vector256.Sqrt(v) / correction2 + epsilon))).Store(param + i);
            }
            for (; i < end; i++)
            {
                T p = param[i];
                T g = grad[i] + k.GradientDecay * p;
                p *= k.ParameterScale;
                T m = expAvg[i];
                m += k.OneMinusBeta1 * (g - m);
                T v = k.Beta2 * expAvgSq[i] + k.OneMinusBeta2 * (g * g);
                expAvg[i] = m;
                expAvgSq[i] = v;
                if (maxExpAvgSq != null)
                {
                    v = T.Max(maxExpAvgSq[i], v); // as Vector256.Max: a NaN in either wins
                    maxExpAvgSq[i] = v;
                }
                param[i] = p - k.StepSize * (m / (T.Sqrt(v) / k.BiasCorrection2Sqrt + k.Epsilon));
            }
        }
    }
}
