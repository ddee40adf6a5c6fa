// DataFile: reads a whole dataset file into memory, gunzipping it when it starts with the gzip magic bytes 1f 8b
// (whatever its name), and names the path in every error: FileNotFoundException for a missing file,
// InvalidDataException for a folder, an empty or non-regular file (a named pipe or device, which would block or
// never end: refused before it is opened), a corrupt gzip stream, or one that decompresses to more than the length
// the format's header implies (a gzip bomb stops at that limit instead of filling memory).
using System.IO.Compression;

namespace Engine.Core.Data;

/// <summary>How a format's header bounds the file: the header's length in bytes, and the whole file's length
/// computed from those bytes (which throws InvalidDataException for a header that makes no sense).</summary>
internal readonly record struct DataHeader(int Length, Func<byte[], long> FileLength);

internal static class DataFile
{
    /// <summary>The file's bytes, decompressed if it is gzip. <paramref name="missingHint"/> is appended to the
    /// message when the file does not exist (e.g. where to get it). With <paramref name="header"/>, gzip data stops
    /// at the length the decompressed header implies; without it, at <see cref="Array.MaxLength"/>.</summary>
    public static byte[] ReadAllBytes(string path, string? missingHint = null, DataHeader? header = null)
    {
        if (Directory.Exists(path))
            throw new InvalidDataException($"{path} is a folder, not a dataset file.");
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"Dataset file not found: {path}" + (missingHint is null ? "" : $". {missingHint}"), path);
        // Named pipes, sockets and devices report a length of 0 (as does an empty file, which holds no dataset
        // either); opening a pipe would block until a writer appears, so nothing of length 0 is opened.
        if (new FileInfo(path).Length == 0)
            throw new InvalidDataException(
                $"{path} is empty or not a regular file (a named pipe or device): dataset files must be regular " +
                "files holding data.");
        byte[] bytes = File.ReadAllBytes(path);
        return IsGzip(bytes) ? Gunzip(bytes, path, header) : bytes;
    }

    private static bool IsGzip(byte[] bytes) => bytes.Length >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;

    private static byte[] Gunzip(byte[] compressed, string path, DataHeader? header)
    {
        try
        {
            using var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress);
            long limit = Array.MaxLength;
            string why = "the most a dataset file can hold";
            var prefix = new byte[header?.Length ?? 0];
            int prefixLength = gzip.ReadAtLeast(prefix, prefix.Length, throwOnEndOfStream: false);
            if (header is { } h && prefixLength == prefix.Length)
            {
                limit = Math.Min(limit, h.FileLength(prefix));
                why = "the length its header implies";
            }
            using var output = new MemoryStream();
            output.Write(prefix, 0, prefixLength);
            var buffer = new byte[1 << 16];
            int read;
            while ((read = gzip.Read(buffer)) > 0)
            {
                if (output.Length + read > limit)
                    throw new InvalidDataException(
                        $"{path}: the gzip data decompresses to more than {limit:N0} bytes, {why}.");
                output.Write(buffer, 0, read);
            }
            return output.ToArray();
        }
        catch (InvalidDataException error) when (!error.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: corrupt gzip data ({error.Message}).", error);
        }
    }
}
