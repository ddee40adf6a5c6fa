// DataFile: reads a whole dataset file into memory, gunzipping it when it starts with the gzip magic bytes 1f 8b
// (whatever its name), and names the path in every error: FileNotFoundException for a missing file,
// InvalidDataException for a corrupt gzip stream.
using System.IO.Compression;

namespace Engine.Core.Data;

internal static class DataFile
{
    /// <summary>The file's bytes, decompressed if it is gzip. <paramref name="missingHint"/> is appended to the
    /// message when the file does not exist (e.g. where to get it).</summary>
    public static byte[] ReadAllBytes(string path, string? missingHint = null)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"Dataset file not found: {path}" + (missingHint is null ? "" : $". {missingHint}"), path);
        byte[] bytes = File.ReadAllBytes(path);
        return IsGzip(bytes) ? Gunzip(bytes, path) : bytes;
    }

    private static bool IsGzip(byte[] bytes) => bytes.Length >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;

    private static byte[] Gunzip(byte[] compressed, string path)
    {
        try
        {
            using var gzip = new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress);
            using var output = new MemoryStream();
            gzip.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException error)
        {
            throw new InvalidDataException($"{path}: corrupt gzip data ({error.Message}).", error);
        }
    }
}
