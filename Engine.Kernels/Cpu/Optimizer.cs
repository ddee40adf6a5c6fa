// SGD with PyTorch's semantics (torch.optim.SGD), in place on one parameter; tasks are fixed chunks of
// ChunkLength elements (Elementwise.cs), each element updated independently.
using System.Numerics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void SgdStep<T>(SgdParameters p, DeviceBuffer<T> param, DeviceBuffer<T> grad,
        DeviceBuffer<T>? momentumBuffer, bool firstStep) where T : unmanaged, IFloatingPointIeee754<T>
    {
        p = p.Validated();
        Validate.SameLength(this, "sgd step", param, nameof(param), grad, nameof(grad));
        bool useMomentum = p.Momentum != 0;
        if (useMomentum)
        {
            if (momentumBuffer is null)
                throw new ArgumentException("sgd step: momentum is set but no momentum buffer was given.",
                    nameof(momentumBuffer));
            Validate.Buffer(this, "sgd step", nameof(momentumBuffer), momentumBuffer, param.Length);
        }
        var job = new SgdJob<T>
        {
            Param = Data(param), Grad = Data(grad), Buffer = useMomentum ? Data(momentumBuffer!) : null,
            Length = param.Length, LearningRate = T.CreateTruncating(p.LearningRate),
            Momentum = T.CreateTruncating(p.Momentum), GradientWeight = T.CreateTruncating(1 - p.Dampening),
            WeightDecay = T.CreateTruncating(p.WeightDecay), Nesterov = p.Nesterov, FirstStep = firstStep,
        };
        Parallel(ChunkCount(param.Length), ref job);
    }

    /// <summary>g = grad + wd·param; buf = g (first step) or momentum·buf + (1 − dampening)·g; g = buf, or
    /// g + momentum·buf with Nesterov; param −= lr·g. Without momentum (Buffer null), g is used as is.</summary>
    private struct SgdJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Param, Grad, Buffer;
        public long Length;
        public T LearningRate, Momentum, GradientWeight, WeightDecay;
        public bool Nesterov, FirstStep;

        public void Execute(int task, int worker)
        {
            long start = (long)task * ChunkLength, end = Math.Min(Length, start + ChunkLength);
            bool decay = WeightDecay != T.Zero;
            for (long i = start; i < end; i++)
            {
                T g = decay ? Grad[i] + WeightDecay * Param[i] : Grad[i];
                if (Buffer != null)
                {
                    T buf = FirstStep ? g : Momentum * Buffer[i] + GradientWeight * g;
                    Buffer[i] = buf;
                    g = Nesterov ? g + Momentum * buf : buf;
                }
                Param[i] -= LearningRate * g;
            }
        }
    }
}
