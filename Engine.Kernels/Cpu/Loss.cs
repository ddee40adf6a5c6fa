// Softmax cross-entropy (forward and backward) and top-k accuracy; logits [N, classes], labels [N]. As on every
// backend, the label values are taken on trust (Engine.Core checks them once before upload, Validate.Labels) and
// only the buffers' lengths are checked here; a label outside [0, classes) indexes nothing: its sample gets a NaN
// loss, a NaN gradient row and "not correct", as the ILGPU kernels do. The forward (exp and log per element) runs one task per
// block of rows; the backward and top-k are a few operations per element and run on the calling thread.
using System.Numerics;

namespace Engine.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void SoftmaxCrossEntropyForwardCore<T>(int batch, int classes, DeviceBuffer<T> logits,
        DeviceBuffer<int> labels,
        DeviceBuffer<T> probabilities, DeviceBuffer<T> losses)
    {
        var job = new SoftmaxCrossEntropyJob<T>
        {
            Logits = Data(logits), Labels = Data(labels), Probabilities = Data(probabilities), Losses = Data(losses),
            Batch = batch, Classes = classes,
        };
        Parallel(RowTasks(batch, classes), ref job);
    }

    /// <inheritdoc/>
    protected override void SoftmaxCrossEntropyBackwardCore<T>(int batch, int classes, DeviceBuffer<T> probabilities,
        DeviceBuffer<int> labels, DeviceBuffer<T> lossGrad, T alpha, DeviceBuffer<T> dlogits)
    {
        T scale = alpha * Data(lossGrad)[0];
        T* p = Data(probabilities), d = Data(dlogits);
        int* label = Data(labels);
        for (int i = 0; i < batch; i++)
        for (int j = 0; j < classes; j++)
        {
            long at = (long)i * classes + j;
            d[at] = (uint)label[i] < (uint)classes ? (j == label[i] ? p[at] - T.One : p[at]) * scale : T.NaN;
        }
    }

    /// <inheritdoc/>
    protected override void TopKCorrectCore<T>(int batch, int classes, int k, DeviceBuffer<T> logits,
        DeviceBuffer<int> labels,
        DeviceBuffer<int> correct)
    {
        T* x = Data(logits);
        int* label = Data(labels), result = Data(correct);
        for (int i = 0; i < batch; i++)
        {
            T* row = x + (long)i * classes;
            int target = label[i];
            if ((uint)target >= (uint)classes)
            {
                result[i] = 0;
                continue;
            }
            T value = row[target];
            int ahead = 0;
            bool hasNaN = false;
            for (int j = 0; j < classes; j++)
            {
                if (row[j] > value || (row[j] == value && j < target)) ahead++;
                hasNaN |= T.IsNaN(row[j]);
            }
            result[i] = ahead < k && !hasNaN ? 1 : 0;
        }
    }

    private static int RowsPerTask(int classes) => Math.Max(1, ChunkLength / 8 / classes);

    private static int RowTasks(int batch, int classes) =>
        (batch + RowsPerTask(classes) - 1) / RowsPerTask(classes);

    /// <summary>Rows of task <c>task</c>: p = exp(x − max) / Σ exp(x − max); loss = log Σ − (x[label] − max), NaN
    /// for a label outside [0, classes).</summary>
    private struct SoftmaxCrossEntropyJob<T> : IParallelJob where T : unmanaged, IFloatingPointIeee754<T>
    {
        public T* Logits, Probabilities, Losses;
        public int* Labels;
        public int Batch, Classes;

        public void Execute(int task, int worker)
        {
            int perTask = RowsPerTask(Classes);
            int end = Math.Min(Batch, (task + 1) * perTask);
            for (int i = task * perTask; i < end; i++)
            {
                T* x = Logits + (long)i * Classes, p = Probabilities + (long)i * Classes;
                T max = x[0];
                for (int j = 1; j < Classes; j++)
                    if (x[j] > max) max = x[j];
                T sum = T.Zero;
                for (int j = 0; j < Classes; j++)
                {
                    p[j] = T.Exp(x[j] - max);
                    sum += p[j];
                }
                for (int j = 0; j < Classes; j++) p[j] /= sum;
                int label = Labels[i];
                Losses[i] = (uint)label < (uint)Classes ? T.Log(sum) - (x[label] - max) : T.NaN;
            }
        }
    }
}
