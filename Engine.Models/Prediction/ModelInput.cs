// ModelInput: what a trained model expects of an image — its shape (C×H×W), the normalisation its training data
// went through, and optionally its class names — written into a training checkpoint's metadata and read back for
// prediction. An image is preprocessed exactly as the training data was: its bytes (ImageReader) scaled to 0–1 and
// normalised by the same Normalization.Apply the batch loader uses.
using System.Globalization;
using System.Text.Json;
using Engine.Core.Data;

namespace Engine.Models.Prediction;

/// <summary>The input a model was trained on: <paramref name="Channels"/>×<paramref name="Height"/>×
/// <paramref name="Width"/> images normalised by <paramref name="Normalization"/>; <paramref name="ClassNames"/>
/// names the labels, or is null when only indices are known.</summary>
public sealed record ModelInput(int Channels, int Height, int Width, Normalization Normalization,
    IReadOnlyList<string>? ClassNames = null)
{
    /// <summary>Metadata key of the input shape, "CxHxW".</summary>
    public const string InputKey = "input";

    /// <summary>Metadata key of the normalisation, JSON {"Mean": [..], "Std": [..]} on the 0–1 scale.</summary>
    public const string NormalizationKey = "normalization";

    /// <summary>Metadata key of the class names, a JSON array (absent when unknown).</summary>
    public const string ClassNamesKey = "class_names";

    /// <summary>The metadata entries that describe a model trained on <paramref name="train"/> normalised by
    /// <paramref name="normalization"/>.</summary>
    public static IEnumerable<(string Key, string Value)> Describe(ImageDataset train, Normalization normalization)
    {
        yield return (InputKey, $"{train.Channels}x{train.Height}x{train.Width}");
        yield return (NormalizationKey,
            JsonSerializer.Serialize(new StoredNormalization(normalization.Mean, normalization.Std)));
        if (KnownClassNames.Of(train) is { } names) yield return (ClassNamesKey, JsonSerializer.Serialize(names));
    }

    /// <summary>The model input recorded in <paramref name="metadata"/> (of the file <paramref name="source"/>),
    /// or null when the shape or normalisation is not recorded (a checkpoint from before they were). Throws
    /// <see cref="InvalidDataException"/> naming the entry when one is present but unreadable or inconsistent.</summary>
    public static ModelInput? FromMetadata(IReadOnlyDictionary<string, string> metadata, string source)
    {
        if (!metadata.TryGetValue(InputKey, out string? input) ||
            !metadata.TryGetValue(NormalizationKey, out string? normalization))
            return null;
        var dims = input.Split('x');
        if (dims.Length != 3 || !dims.All(d => int.TryParse(d, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0))
            throw new InvalidDataException($"'{source}': its input shape '{input}' is not CxHxW.");
        int channels = int.Parse(dims[0], CultureInfo.InvariantCulture);
        int height = int.Parse(dims[1], CultureInfo.InvariantCulture);
        int width = int.Parse(dims[2], CultureInfo.InvariantCulture);
        Normalization statistics;
        IReadOnlyList<string>? names = null;
        try
        {
            var stored = JsonSerializer.Deserialize<StoredNormalization>(normalization)
                         ?? throw new JsonException("null");
            statistics = new Normalization(stored.Mean, stored.Std);
            if (metadata.TryGetValue(ClassNamesKey, out string? classNames))
                names = JsonSerializer.Deserialize<string[]>(classNames) ?? throw new JsonException("null");
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new InvalidDataException($"'{source}': its normalisation or class names are unreadable: {e.Message}", e);
        }
        var result = new ModelInput(channels, height, width, statistics, names);
        result.Check(source);
        return result;
    }

    /// <summary>Throws <see cref="InvalidDataException"/> naming <paramref name="source"/> unless the normalisation
    /// fits the shape.</summary>
    public void Check(string source)
    {
        if (Channels is not (1 or 3))
            throw new InvalidDataException($"'{source}': images of {Channels} channels cannot be read (1 or 3).");
        if (Normalization.Channels != Channels ||
            (Normalization.IsPerPixel && Normalization.Mean.Length != Channels * Height * Width))
            throw new InvalidDataException(
                $"'{source}': the normalisation ({Normalization}) does not fit {Channels}x{Height}x{Width} images.");
    }

    /// <summary>The image file at <paramref name="path"/> as the model's normalised C×H×W floats, written to
    /// <paramref name="destination"/>.</summary>
    public void Preprocess(string path, Span<float> destination) =>
        Normalization.Apply(ImageReader.Read(path, Channels, Height, Width), destination);

    /// <summary>Values per image: C×H×W.</summary>
    public int ImageSize => Channels * Height * Width;

    /// <summary>The input as "CxHxW, normalisation".</summary>
    public override string ToString() => $"{Channels}x{Height}x{Width}, {Normalization}";

    private sealed record StoredNormalization(float[] Mean, float[] Std);
}
