// SafeTensors: saves and loads a module's state dict in the safetensors format (huggingface/safetensors):
//   [8 bytes]  N, the header length, unsigned little-endian
//   [N bytes]  UTF-8 JSON: {"__metadata__": {string: string} (optional),
//                           "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
//   [rest]     the data section: raw little-endian tensor data; offsets count from its first byte and the
//              tensors tile it exactly, without gaps or overlaps.
// Saving writes parameters then buffers (state-dict order), F32 for float models and F64 for double, to a temp file
// that is renamed over the target only once complete. Loading checks the whole file, then the file against the
// model, and reports every problem at once; only a file that passes every check is copied into the model. Tensors
// holding NaN or ±∞ (in the file, or after an F64 value beyond float32's range is converted) are refused unless the
// caller opts in, so broken weights never load silently.
// Tensor data is copied to and from host memory as is, so this assumes a little-endian host (x64, arm64).
using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;
using Engine.Core.Autograd;
using Engine.Core.Modules;

namespace Engine.Core.Serialization;

/// <summary>One tensor in a safetensors header. <see cref="Begin"/> and <see cref="End"/> are byte offsets into
/// the data section (end exclusive).</summary>
/// <param name="Name">The tensor's state-dict name, e.g. <c>layer1.0.bn1.running_mean</c>.</param>
/// <param name="DType">The safetensors dtype code, e.g. <c>F32</c>, <c>F64</c>, <c>I64</c>.</param>
/// <param name="Shape">The tensor's dimensions.</param>
/// <param name="Begin">First byte of the data, counted from the start of the data section.</param>
/// <param name="End">One past the last byte of the data.</param>
public sealed record SafeTensorsEntry(string Name, string DType, Shape Shape, long Begin, long End);

/// <summary>A validated safetensors header: the tensors in header order, the metadata, and where the data section
/// starts in the file and how long it is.</summary>
/// <param name="Tensors">Every tensor entry, in the order the header lists them.</param>
/// <param name="Metadata">The free-form <c>__metadata__</c> strings (empty when absent).</param>
/// <param name="DataStart">File offset of the data section: 8 + the header length.</param>
/// <param name="DataLength">Bytes in the data section, which the tensors tile exactly.</param>
public sealed record SafeTensorsHeader(
    IReadOnlyList<SafeTensorsEntry> Tensors,
    IReadOnlyDictionary<string, string> Metadata,
    long DataStart,
    long DataLength);

/// <summary>Saves and loads a module's state dict in the safetensors format (huggingface/safetensors), so
/// checkpoints exchange with PyTorch (safetensors.torch.save_file / load_file) under the same parameter names.
/// Saving is atomic; loading validates the whole file against the model before copying anything in.</summary>
public static class SafeTensors
{
    /// <summary>How many tensors with non-finite values a refusal names before summarising the rest.</summary>
    private const int NamedNonFiniteTensors = 5;

    /// <summary>The same bound as the reference implementation: larger headers are treated as corrupt.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    /// <summary>Bytes per element of every dtype the format defines. All of them are accepted in a file's layout
    /// (so e.g. torchvision's I64 num_batches_tracked parses); only F32 and F64 can be loaded into a model.</summary>
    private static readonly Dictionary<string, int> ElementSizes = new()
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E5M2"] = 1, ["F8_E4M3"] = 1, ["F8_E8M0"] = 1,
        ["I16"] = 2, ["U16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["I32"] = 4, ["U32"] = 4, ["F32"] = 4,
        ["I64"] = 8, ["U64"] = 8, ["F64"] = 8, ["C64"] = 8,
    };

    /// <summary>Ends the name of the temporary file a save writes first: "{target}.{32 hex digits}.tmp".</summary>
    private const string TemporarySuffix = ".tmp";

    /// <summary>Whether <paramref name="candidate"/> is named as the temporary file that saving to
    /// <paramref name="path"/> writes before renaming it ("{path}.{32 hex digits}.tmp"): a file that only a save
    /// stopped between the two (a killed process) leaves behind.</summary>
    public static bool IsTemporaryFileOf(string path, string candidate)
    {
        string prefix = Path.GetFullPath(path) + ".", name = Path.GetFullPath(candidate);
        if (!name.StartsWith(prefix, StringComparison.Ordinal) || !name.EndsWith(TemporarySuffix, StringComparison.Ordinal))
            return false;
        string guid = name[prefix.Length..^TemporarySuffix.Length];
        return guid.Length == 32 && guid.All(char.IsAsciiHexDigitLower);
    }

    /// <summary>Writes the module's parameters and buffers to <paramref name="path"/>.</summary>
    public static void Save<T>(Module<T> module, string path, IReadOnlyDictionary<string, string>? metadata = null)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Save(module.StateDict(), path, metadata);

    /// <summary>Writes the named tensors, in the order given, to <paramref name="path"/>. The file appears complete
    /// or not at all: it is written to a temp file in the same directory and renamed over the target; on failure the
    /// temp file is deleted and an existing target is left as it was.</summary>
    public static void Save<T>(IEnumerable<(string Name, Tensor<T> Tensor)> tensors, string path,
        IReadOnlyDictionary<string, string>? metadata = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var entries = tensors.ToList();
        var names = new HashSet<string>();
        foreach (var (name, _) in entries)
        {
            if (string.IsNullOrEmpty(name) || name == MetadataKey)
                throw new ArgumentException($"Cannot save a tensor named '{name}'.", nameof(tensors));
            if (!names.Add(name))
                throw new ArgumentException($"Tensor name '{name}' appears more than once.", nameof(tensors));
        }
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException(
                $"Cannot save safetensors file '{path}': directory '{directory}' does not exist.");

        byte[] header = EncodeHeader(entries, metadata);
        string temp = $"{fullPath}.{Guid.NewGuid():N}{TemporarySuffix}";
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                Span<byte> headerLength = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(headerLength, (ulong)header.Length);
                file.Write(headerLength);
                file.Write(header);
                foreach (var (_, tensor) in entries)
                    file.Write(MemoryMarshal.AsBytes(tensor.ToArray().AsSpan()));
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            // Best effort: the error worth reporting is the one that stopped the save.
            try { File.Delete(temp); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Overwrites the module's parameters and buffers with the file's tensors. Throws
    /// <see cref="InvalidDataException"/> listing every problem (corrupt file, missing, unexpected or mis-shaped
    /// tensors, tensors holding NaN or ±∞) and leaves the module untouched unless everything checks out.
    /// torchvision's <c>num_batches_tracked</c> counters, which this engine does not keep, are ignored.</summary>
    /// <param name="module">The module whose state dict receives the file's tensors.</param>
    /// <param name="path">The safetensors file.</param>
    /// <param name="allowNonFinite">False (the default) refuses a file in which any loaded tensor holds NaN or ±∞,
    /// counting F64 values beyond float32's range that a float32 model would receive as ±∞; true loads them as
    /// they are (out-of-range values become ±∞).</param>
    public static void Load<T>(Module<T> module, string path, bool allowNonFinite = false)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Load(module.StateDict(), path, allowNonFinite);

    /// <summary>As <see cref="Load{T}(Module{T}, string, bool)"/>, for an explicit list of named target
    /// tensors.</summary>
    /// <param name="targets">The named tensors that receive the file's tensors of the same names.</param>
    /// <param name="path">The safetensors file.</param>
    /// <param name="allowNonFinite">As for <see cref="Load{T}(Module{T}, string, bool)"/>.</param>
    public static void Load<T>(IEnumerable<(string Name, Tensor<T> Tensor)> targets, string path,
        bool allowNonFinite = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var model = targets.ToList();
        using var file = OpenForReading(path);
        var header = ReadHeader(file, path);
        var inFile = header.Tensors.ToDictionary(e => e.Name);
        var problems = new List<string>();
        foreach (var (name, tensor) in model)
        {
            if (!inFile.TryGetValue(name, out var entry))
            {
                problems.Add($"missing: '{name}' {tensor.Shape} is in the model but not in the file");
                continue;
            }
            if (entry.Shape != tensor.Shape)
                problems.Add($"wrong shape: '{name}' is {entry.Shape} in the file but {tensor.Shape} in the model");
            if (entry.DType is not ("F32" or "F64"))
                problems.Add($"unsupported dtype: '{name}' is {entry.DType} in the file; only F32 and F64 can be loaded");
        }
        var modelNames = model.Select(t => t.Name).ToHashSet();
        foreach (var entry in header.Tensors)
            if (!modelNames.Contains(entry.Name) && !IsBatchCounter(entry.Name))
                problems.Add($"unexpected: '{entry.Name}' {entry.Shape} is in the file but not in the model");
        if (problems.Count > 0)
            throw new InvalidDataException(
                $"'{path}' does not match the model ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}); " +
                $"nothing was loaded:{Bullets(problems)}");

        // Read every tensor before writing any, so an I/O error part-way leaves the model as it was.
        var values = model.Select(t => ReadValues<T>(file, header.DataStart, inFile[t.Name])).ToList();
        if (!allowNonFinite) RefuseNonFinite(path, model.Select(t => t.Name).ToList(), values);
        using (GradMode.NoGrad())
            for (int i = 0; i < model.Count; i++)
                model[i].Tensor.CopyFrom(values[i].Values);
    }

    /// <summary>Reads and validates the header of <paramref name="path"/>: the JSON, every entry's dtype, shape and
    /// offsets, and that the tensors tile the data section exactly.</summary>
    public static SafeTensorsHeader ReadHeader(string path)
    {
        using var file = OpenForReading(path);
        return ReadHeader(file, path);
    }

    /// <summary>The JSON header, padded with spaces to a multiple of 8 bytes so the data section is 8-byte aligned
    /// (as the reference writer does).</summary>
    private static byte[] EncodeHeader<T>(List<(string Name, Tensor<T> Tensor)> entries,
        IReadOnlyDictionary<string, string>? metadata) where T : unmanaged, IFloatingPointIeee754<T>
    {
        string dtype = typeof(T) == typeof(float) ? "F32" : "F64";
        int elementSize = ElementSizes[dtype];
        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json))
        {
            writer.WriteStartObject();
            if (metadata is not null)
            {
                writer.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in entries)
            {
                long end = offset + tensor.Length * elementSize;
                writer.WriteStartObject(name);
                writer.WriteString("dtype", dtype);
                writer.WriteStartArray("shape");
                foreach (int dim in tensor.Shape) writer.WriteNumberValue(dim);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(end);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset = end;
            }
            writer.WriteEndObject();
        }
        var header = new byte[(json.WrittenCount + 7) / 8 * 8];
        json.WrittenSpan.CopyTo(header);
        header.AsSpan(json.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static FileStream OpenForReading(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    private static SafeTensorsHeader ReadHeader(FileStream file, string path)
    {
        long fileLength = file.Length;
        if (fileLength < 8)
            throw Invalid(path, $"the file is {fileLength} bytes, shorter than the 8-byte header length field");
        Span<byte> lengthField = stackalloc byte[8];
        file.ReadExactly(lengthField);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthField);
        if (headerLength > MaxHeaderBytes)
            throw Invalid(path, $"the header length field says {headerLength} bytes, over the {MaxHeaderBytes}-byte limit");
        if ((long)headerLength > fileLength - 8)
            throw Invalid(path,
                $"the header length field says {headerLength} bytes, past the end of the {fileLength}-byte file");

        var headerBytes = new byte[headerLength];
        file.ReadExactly(headerBytes);
        // System.Text.Json checks UTF-8 only when a string is decoded, so check it all here.
        if (!Utf8.IsValid(headerBytes)) throw Invalid(path, "the header is not valid UTF-8");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw Invalid(path, $"the header is not valid JSON ({e.Message})");
        }
        using (document)
            return ParseHeader(document.RootElement, path, 8 + (long)headerLength, fileLength - 8 - (long)headerLength);
    }

    private static SafeTensorsHeader ParseHeader(JsonElement root, string path, long dataStart, long dataLength)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw Invalid(path, $"the header is a JSON {root.ValueKind}, not a JSON object");
        var tensors = new List<SafeTensorsEntry>();
        var metadata = new Dictionary<string, string>();
        var problems = new List<string>();
        var seen = new HashSet<string>();
        foreach (var property in root.EnumerateObject())
        {
            if (!seen.Add(property.Name))
                problems.Add($"'{property.Name}' appears more than once in the header");
            else if (property.Name == MetadataKey)
                ParseMetadata(property.Value, metadata, problems);
            else if (ParseEntry(property.Name, property.Value, dataLength, problems) is { } entry)
                tensors.Add(entry);
        }
        if (problems.Count == 0) CheckTiling(tensors, dataLength, problems);
        if (problems.Count > 0) throw Invalid(path, problems.ToArray());
        return new SafeTensorsHeader(tensors, metadata, dataStart, dataLength);
    }

    private static void ParseMetadata(JsonElement value, Dictionary<string, string> metadata, List<string> problems)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            problems.Add($"{MetadataKey} is a JSON {value.ValueKind}, not an object of strings");
            return;
        }
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                problems.Add($"{MetadataKey} '{item.Name}' is a JSON {item.Value.ValueKind}, not a string");
            else if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
                problems.Add($"{MetadataKey} '{item.Name}' appears more than once");
        }
    }

    /// <summary>The entry if its dtype, shape and offsets are well-formed and in range; otherwise null, with the
    /// reasons added to <paramref name="problems"/>.</summary>
    private static SafeTensorsEntry? ParseEntry(string name, JsonElement value, long dataLength, List<string> problems)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            problems.Add($"'{name}' is a JSON {value.ValueKind}, not an object with dtype, shape and data_offsets");
            return null;
        }
        int problemsBefore = problems.Count;
        string? dtype = value.TryGetProperty("dtype", out var dtypeElement) &&
                        dtypeElement.ValueKind == JsonValueKind.String ? dtypeElement.GetString() : null;
        if (dtype is null)
            problems.Add($"'{name}' has no dtype string");
        else if (!ElementSizes.ContainsKey(dtype))
            problems.Add($"'{name}' has unknown dtype '{dtype}'");
        long[]? dims = ReadNonNegativeIntegers(value, "shape");
        if (dims is null || dims.Any(d => d > int.MaxValue))
            problems.Add($"'{name}' has no shape that is a list of non-negative integers (each at most {int.MaxValue})");
        long[]? offsets = ReadNonNegativeIntegers(value, "data_offsets");
        if (offsets is not { Length: 2 })
            problems.Add($"'{name}' has no data_offsets that are a pair of non-negative integers [begin, end]");
        if (problems.Count > problemsBefore) return null;

        long begin = offsets![0], end = offsets[1];
        Shape shape;
        long byteCount;
        try
        {
            shape = new Shape(dims!.Select(d => (int)d).ToArray());
            byteCount = checked(shape.Length * ElementSizes[dtype!]);
        }
        catch (OverflowException)
        {
            problems.Add($"'{name}' shape [{string.Join(", ", dims!)}] has more elements than a file can hold");
            return null;
        }
        if (begin > end)
            problems.Add($"'{name}' data_offsets [{begin}, {end}] end before they begin");
        else if (end > dataLength)
            problems.Add($"'{name}' data_offsets [{begin}, {end}] run past the end of the {dataLength}-byte data " +
                         "section (is the file truncated?)");
        else if (end - begin != byteCount)
            problems.Add($"'{name}' data_offsets [{begin}, {end}] span {end - begin} bytes, but {dtype} {shape} " +
                         $"needs {byteCount}");
        return problems.Count > problemsBefore ? null : new SafeTensorsEntry(name, dtype!, shape, begin, end);
    }

    /// <summary>The field as an array of non-negative integers, or null if it is missing or anything else.</summary>
    private static long[]? ReadNonNegativeIntegers(JsonElement entry, string field)
    {
        if (!entry.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array) return null;
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out values[i]) || values[i] < 0)
                return null;
            i++;
        }
        return values;
    }

    /// <summary>Adds a problem for every overlap, gap or unclaimed tail: sorted by offset, each tensor must begin
    /// where the previous one ended, the first at 0 and the last ending at the data section's end.</summary>
    private static void CheckTiling(List<SafeTensorsEntry> tensors, long dataLength, List<string> problems)
    {
        long covered = 0;
        string? coveredBy = null;
        foreach (var entry in tensors.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (entry.Begin < covered)
                problems.Add($"'{entry.Name}' (bytes [{entry.Begin}, {entry.End})) overlaps '{coveredBy}', " +
                             $"which ends at byte {covered}");
            else if (entry.Begin > covered)
                problems.Add($"bytes [{covered}, {entry.Begin}) of the data section belong to no tensor " +
                             $"(a gap before '{entry.Name}')");
            if (entry.End >= covered)
            {
                covered = entry.End;
                coveredBy = entry.Name;
            }
        }
        if (covered < dataLength)
            problems.Add($"bytes [{covered}, {dataLength}) at the end of the data section belong to no tensor");
    }

    /// <summary>Throws, naming the first few tensors and what they hold, if any loaded value is NaN or ±∞;
    /// <paramref name="values"/> are as the model would receive them, so F64 values that overflowed float32 count.
    /// </summary>
    private static void RefuseNonFinite<T>(string path, List<string> names, List<(T[] Values, int OutOfRange)> values)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var problems = new List<string>();
        for (int i = 0; i < names.Count; i++)
        {
            var (tensor, outOfRange) = values[i];
            int nan = 0, positive = 0, negative = 0;
            foreach (var value in tensor)
            {
                if (T.IsNaN(value)) nan++;
                else if (T.IsPositiveInfinity(value)) positive++;
                else if (T.IsNegativeInfinity(value)) negative++;
            }
            if (nan + positive + negative == 0) continue;
            // Overflowed values are ±∞ after conversion; report them apart from the ±∞ stored in the file.
            var counts = new List<string>();
            if (nan > 0) counts.Add($"{nan} NaN");
            if (positive + negative > outOfRange) counts.Add($"{positive + negative - outOfRange} ±Inf");
            if (outOfRange > 0) counts.Add($"{outOfRange} F64 beyond float32's range");
            problems.Add($"'{names[i]}': {string.Join(", ", counts)} of {tensor.Length} values");
        }
        if (problems.Count == 0) return;
        var named = problems.Take(NamedNonFiniteTensors).ToList();
        if (problems.Count > named.Count) named.Add($"and {problems.Count - named.Count} more tensors");
        throw new InvalidDataException(
            $"'{path}' holds non-finite values in {problems.Count} tensor{(problems.Count == 1 ? "" : "s")}; " +
            $"nothing was loaded (pass allowNonFinite: true to SafeTensors.Load to load them anyway):{Bullets(named)}");
    }

    private static bool IsBatchCounter(string name) =>
        name == "num_batches_tracked" || name.EndsWith(".num_batches_tracked", StringComparison.Ordinal);

    /// <summary>Reads one F32 or F64 tensor as <typeparamref name="T"/>, with how many finite values conversion
    /// turned into ±∞. When the file's dtype differs from the model's, values are converted: F32 → float64 is
    /// exact; F64 → float32 rounds to nearest, and values beyond float's range become ±∞.</summary>
    private static (T[] Values, int OutOfRange) ReadValues<T>(FileStream file, long dataStart, SafeTensorsEntry entry)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        file.Position = dataStart + entry.Begin;
        int count = checked((int)entry.Shape.Length);
        if (entry.DType == "F32") return (ConvertAll<float, T>(ReadRaw<float>(file, count)), 0);
        var raw = ReadRaw<double>(file, count);
        var values = ConvertAll<double, T>(raw);
        int outOfRange = 0;
        for (int i = 0; i < raw.Length; i++)
            if (double.IsFinite(raw[i]) && !T.IsFinite(values[i])) outOfRange++;
        return (values, outOfRange);
    }

    private static TFile[] ReadRaw<TFile>(FileStream file, int count) where TFile : unmanaged
    {
        var values = new TFile[count];
        file.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    private static TTo[] ConvertAll<TFrom, TTo>(TFrom[] values)
        where TFrom : unmanaged, IFloatingPointIeee754<TFrom> where TTo : unmanaged, IFloatingPointIeee754<TTo> =>
        values is TTo[] same ? same : Array.ConvertAll(values, value => TTo.CreateChecked(value));

    private static InvalidDataException Invalid(string path, params string[] problems) =>
        new($"'{path}' is not a valid safetensors file:{Bullets(problems)}");

    private static string Bullets(IEnumerable<string> problems) =>
        string.Concat(problems.Select(p => Environment.NewLine + "  - " + p));
}
