// ONNX tensors (TensorProto) to host arrays and back: the one place that knows how ONNX stores numbers — typed
// repeated fields, little-endian raw_data, or raw bytes in an external file next to the model. Every read checks
// that the bytes present are exactly what the dims need, and an external file stays inside the model's folder.
using System.Buffers.Binary;
using System.Numerics;
using Engine.Core.Onnx.Proto;
using Google.Protobuf;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Core.Onnx;

/// <summary>An ONNX tensor read into host memory: its name, dims and elements, widened to double (float, double,
/// and the integer types the supported ops take: int64, int32, int8/uint8, bool) — a float32's value is exact in a
/// double, and so is every int64 under 2^53.</summary>
/// <param name="Name">The tensor's name in the graph (an initializer's, or an input's).</param>
/// <param name="ElementType">ONNX element type it was stored with.</param>
/// <param name="Dims">Extents; empty for a scalar.</param>
/// <param name="Values">Elements in row-major order.</param>
public sealed record OnnxArray(string Name, DataType ElementType, long[] Dims, double[] Values)
{
    /// <summary>Number of elements the dims give (1 for a scalar).</summary>
    public long Count => OnnxTensors.ElementCount(Dims);

    /// <summary>The elements as 64-bit integers (shapes, axes, pads, starts and ends).</summary>
    /// <exception cref="InvalidDataException">An element is not a whole number.</exception>
    public long[] ToInt64()
    {
        var result = new long[Values.Length];
        for (int i = 0; i < result.Length; i++)
        {
            double v = Values[i];
            if (v != Math.Floor(v) || double.IsInfinity(v))
                throw new InvalidDataException($"ONNX tensor '{Name}': element {i} is {v}, not a whole number.");
            result[i] = v >= 9.2233720368547758e18 ? long.MaxValue : v <= -9.2233720368547758e18 ? long.MinValue : (long)v;
        }
        return result;
    }

    /// <summary>The elements converted to <typeparamref name="T"/>.</summary>
    public T[] To<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
        Values.Select(T.CreateTruncating).ToArray();
}

/// <summary>Reads and writes ONNX <see cref="TensorProto"/>s.</summary>
public static class OnnxTensors
{
    /// <summary>Elements of a tensor with these dims, checked: none negative, the product under 2^31.</summary>
    /// <exception cref="InvalidDataException">A dim is negative or the tensor is too large.</exception>
    public static long ElementCount(IReadOnlyList<long> dims)
    {
        long count = 1;
        foreach (long d in dims)
        {
            if (d < 0) throw new InvalidDataException($"ONNX tensor dims [{string.Join(", ", dims)}] hold a negative extent.");
            count = d == 0 ? 0 : count > int.MaxValue / d ? long.MaxValue : count * d;
        }
        if (count > int.MaxValue)
            throw new InvalidDataException($"ONNX tensor dims [{string.Join(", ", dims)}] give over 2^31 elements.");
        return count;
    }

    /// <summary>Reads <paramref name="tensor"/>. Raw data is little-endian; data stored externally
    /// (<c>data_location = EXTERNAL</c>) is read from <c>location</c> (+ <c>offset</c>, <c>length</c>) relative to
    /// <paramref name="modelFolder"/>, which the path may not leave.</summary>
    /// <exception cref="InvalidDataException">The element type is not supported, the bytes present are not what the
    /// dims need, or an external file is missing, outside the model's folder or too short; the message names the
    /// tensor.</exception>
    public static OnnxArray Read(TensorProto tensor, string? modelFolder)
    {
        string name = tensor.Name;
        var type = (DataType)tensor.DataType;
        long[] dims = tensor.Dims.ToArray();
        long count = ElementCount(dims);
        int size = ElementSize(type, name);
        if (tensor.Segment is not null)
            throw new InvalidDataException($"ONNX tensor '{name}': segmented tensors are not supported.");

        ReadOnlySpan<byte> raw = default;
        byte[]? external = null;
        if (tensor.HasDataLocation && tensor.DataLocation == TensorProto.Types.DataLocation.External)
        {
            external = ReadExternal(tensor, modelFolder);
            raw = external;
        }
        else if (tensor.HasRawData)
        {
            raw = tensor.RawData.Span;
        }

        var values = new double[count];
        if (tensor.HasRawData || external is not null)
        {
            if (raw.Length != count * size)
                throw new InvalidDataException(
                    $"ONNX tensor '{name}': holds {raw.Length} bytes of {type}, dims [{string.Join(", ", dims)}] need " +
                    $"{count * size}.");
            for (int i = 0; i < values.Length; i++) values[i] = ReadRaw(type, raw.Slice(i * size, size));
            return new OnnxArray(name, type, dims, values);
        }

        int present = type switch
        {
            DataType.Float => tensor.FloatData.Count,
            DataType.Double => tensor.DoubleData.Count,
            DataType.Int64 => tensor.Int64Data.Count,
            _ => tensor.Int32Data.Count,   // int32, int8, uint8, bool are stored in int32_data
        };
        if (present != count)
            throw new InvalidDataException(
                $"ONNX tensor '{name}': holds {present} {type} values, dims [{string.Join(", ", dims)}] need {count}.");
        for (int i = 0; i < values.Length; i++)
            values[i] = type switch
            {
                DataType.Float => tensor.FloatData[i],
                DataType.Double => tensor.DoubleData[i],
                DataType.Int64 => tensor.Int64Data[i],
                _ => tensor.Int32Data[i],
            };
        return new OnnxArray(name, type, dims, values);
    }

    /// <summary>An ONNX tensor named <paramref name="name"/> holding <paramref name="values"/> as little-endian raw
    /// data of <paramref name="type"/> (float, double or int64).</summary>
    /// <exception cref="ArgumentException">The dims do not give <paramref name="values"/>' length, or the type is
    /// not one of the three.</exception>
    public static TensorProto Create<T>(string name, DataType type, IReadOnlyList<long> dims, ReadOnlySpan<T> values)
        where T : unmanaged, INumberBase<T>
    {
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (count != values.Length)
            throw new ArgumentException(
                $"ONNX tensor '{name}': dims [{string.Join(", ", dims)}] give {count} elements, {values.Length} given.");
        int size = ElementSize(type, name);
        var bytes = new byte[values.Length * size];
        for (int i = 0; i < values.Length; i++)
        {
            var slot = bytes.AsSpan(i * size, size);
            switch (type)
            {
                case DataType.Float: BinaryPrimitives.WriteSingleLittleEndian(slot, float.CreateChecked(values[i])); break;
                case DataType.Double: BinaryPrimitives.WriteDoubleLittleEndian(slot, double.CreateChecked(values[i])); break;
                case DataType.Int64: BinaryPrimitives.WriteInt64LittleEndian(slot, long.CreateChecked(values[i])); break;
                default: throw new ArgumentException($"ONNX tensor '{name}': writing {type} is not supported.");
            }
        }
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    /// <summary>The ONNX element type of <typeparamref name="T"/> (float or double).</summary>
    public static DataType ElementTypeOf<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? DataType.Float
        : typeof(T) == typeof(double) ? DataType.Double
        : throw new ArgumentException($"{typeof(T).Name} has no ONNX element type here (float or double).");

    private static int ElementSize(DataType type, string name) => type switch
    {
        DataType.Float or DataType.Int32 => 4,
        DataType.Double or DataType.Int64 => 8,
        DataType.Int8 or DataType.Uint8 or DataType.Bool => 1,
        _ => throw new InvalidDataException(
            $"ONNX tensor '{name}': element type {type} is not supported (float, double, int64, int32, int8, uint8, bool)."),
    };

    private static double ReadRaw(DataType type, ReadOnlySpan<byte> slot) => type switch
    {
        DataType.Float => BinaryPrimitives.ReadSingleLittleEndian(slot),
        DataType.Double => BinaryPrimitives.ReadDoubleLittleEndian(slot),
        DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(slot),
        DataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(slot),
        DataType.Int8 => (sbyte)slot[0],
        _ => slot[0],   // uint8, bool
    };

    private static byte[] ReadExternal(TensorProto tensor, string? modelFolder)
    {
        string name = tensor.Name;
        var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value);
        if (!entries.TryGetValue("location", out string? location) || string.IsNullOrEmpty(location))
            throw new InvalidDataException($"ONNX tensor '{name}': external data without a location.");
        if (modelFolder is null)
            throw new InvalidDataException(
                $"ONNX tensor '{name}': its data is in external file '{location}', but the model was not read from a file.");
        string folder = Path.GetFullPath(modelFolder);
        string path = Path.GetFullPath(Path.Combine(folder, location));
        if (!path.StartsWith(folder.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new InvalidDataException($"ONNX tensor '{name}': external data location '{location}' leaves the model's folder.");
        if (!File.Exists(path))
            throw new InvalidDataException($"ONNX tensor '{name}': external data file '{path}' does not exist.");
        long offset = entries.TryGetValue("offset", out string? o) ? ParseNonNegative(o, "offset", name) : 0;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read);
        long length = entries.TryGetValue("length", out string? l) ? ParseNonNegative(l, "length", name) : stream.Length - offset;
        if (offset > stream.Length || length > stream.Length - offset || length > int.MaxValue)
            throw new InvalidDataException(
                $"ONNX tensor '{name}': external data file '{path}' holds {stream.Length} bytes; offset {offset} + " +
                $"length {length} goes past its end.");
        var bytes = new byte[length];
        stream.Position = offset;
        stream.ReadExactly(bytes);
        return bytes;
    }

    private static long ParseNonNegative(string text, string key, string name) =>
        long.TryParse(text, out long value) && value >= 0
            ? value
            : throw new InvalidDataException($"ONNX tensor '{name}': external data {key} '{text}' is not a non-negative integer.");
}
