// Which batch variance a training-mode batch-norm folds into its running variance. The two conventions differ
// by the factor M/(M − 1), M = N·HW values per channel: PyTorch keeps the unbiased estimate, ONNX's
// BatchNormalization (training_mode) the biased one that also normalised the batch.
namespace Engine.Kernels;

/// <summary>The batch variance a training-mode batch-norm averages into its running variance.</summary>
public enum RunningVarianceUpdate
{
    /// <summary>The unbiased variance Σ(x − mean)² / (M − 1), M = N·HW (torch.nn.BatchNorm2d; the
    /// default).</summary>
    Unbiased,

    /// <summary>The biased variance Σ(x − mean)² / M, the one that normalised the batch (ONNX
    /// BatchNormalization).</summary>
    Biased,
}
