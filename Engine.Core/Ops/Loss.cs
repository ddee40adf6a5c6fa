// Classification: softmax cross-entropy over integer labels (fused and stable, mean over the batch) and top-k
// accuracy. logits are [N, classes]; labels are host integers in [0, classes), checked here, once, before upload
// (the backends then take the label buffer on trust and never read it back to the host).
using Engine.Core.Autograd;
using Engine.Kernels;

namespace Engine.Core;

public sealed partial class Tensor<T>
{
    /// <summary>Mean over the batch of −log softmax(logits)[label]. Backward: (softmax − onehot) / N.</summary>
    public Tensor<T> CrossEntropy(ReadOnlySpan<int> labels)
    {
        var logits = this;
        int batch = CheckClassification("cross-entropy", labels);
        int classes = logits.Shape[1];
        var backend = Device.Backend;
        var loss = new Tensor<T>(Device, Shape.Scalar);
        var labelBuffer = UploadLabels(loss, labels);
        var probabilities = Tensor.Unscoped<T>(logits.Shape, Device);
        loss.Attach(probabilities);
        using (var losses = Tensor.Unscoped<T>([batch], Device))
        {
            backend.SoftmaxCrossEntropyForward(batch, classes, logits.Buffer, labelBuffer, probabilities.Buffer,
                losses.Buffer);
            backend.Sum(losses.Buffer, T.One / T.CreateChecked(batch), loss.Buffer);
        }
        return Graph.Record(loss, "cross-entropy", [logits], dy =>
        {
            var dlogits = new Tensor<T>(dy.Device, logits.Shape);
            backend.SoftmaxCrossEntropyBackward(batch, classes, probabilities.Buffer, labelBuffer, dy.Buffer,
                T.One / T.CreateChecked(batch), dlogits.Buffer);
            return [dlogits];
        });
    }

    /// <summary>How many rows have their label among the k largest logits (ties go to the lower class index).</summary>
    public int TopKCorrect(ReadOnlySpan<int> labels, int k)
    {
        int batch = CheckClassification("top-k accuracy", labels);
        using var holder = Tensor.Unscoped<T>(Shape.Scalar, Device);
        var labelBuffer = UploadLabels(holder, labels);
        var correct = holder.AttachBuffer<int>(batch);
        Device.Backend.TopKCorrect(batch, Shape[1], k, Buffer, labelBuffer, correct);
        var flags = new int[batch];
        correct.CopyToHost(flags);
        return flags.Sum();
    }

    private int CheckClassification(string op, ReadOnlySpan<int> labels)
    {
        if (Rank != 2 || Shape[0] < 1 || Shape[1] < 1)
            throw new ArgumentException($"{op}: logits {Shape} must be [N, classes] with N, classes ≥ 1.");
        if (labels.Length != Shape[0])
            throw new ArgumentException($"{op}: {labels.Length} labels for logits {Shape}.");
        // The only check of the label values: the backends trust the uploaded buffer (see Validate.Labels).
        Validate.Labels($"{op} on logits {Shape}", labels, Shape[1]);
        return Shape[0];
    }

    private static DeviceBuffer<int> UploadLabels(Tensor<T> owner, ReadOnlySpan<int> labels)
    {
        var buffer = owner.AttachBuffer<int>(labels.Length);
        buffer.CopyFromHost(labels);
        return buffer;
    }
}
