// Files written so that a reader never sees half of one: written under a temporary name in the same folder, flushed
// to disk, then renamed over the target. On failure the temporary file is removed and an existing target is left as
// it was. The one helper for every file the engine and its tools write (checkpoints, reports, charts).
namespace Engine.Core.Serialization;

/// <summary>Writes files atomically: complete or not at all.</summary>
public static class AtomicFile
{
    /// <summary>Marks a temporary name: "{target}.{32 lowercase hex digits}.tmp{target's extension}".</summary>
    private const string TemporaryMarker = ".tmp";

    /// <summary>Whether <paramref name="candidate"/> is named as a temporary file that writing
    /// <paramref name="path"/> creates before renaming it ("{path}.{32 lowercase hex digits}.tmp{extension}"): a file
    /// that only a write stopped between the two (a killed process) leaves behind.</summary>
    public static bool IsTemporaryFileOf(string path, string candidate)
    {
        string fullPath = Path.GetFullPath(path), name = Path.GetFullPath(candidate);
        string prefix = fullPath + ".", suffix = TemporaryMarker + Path.GetExtension(fullPath);
        if (name.Length != prefix.Length + 32 + suffix.Length ||
            !name.StartsWith(prefix, StringComparison.Ordinal) || !name.EndsWith(suffix, StringComparison.Ordinal))
            return false;
        return name.AsSpan(prefix.Length, 32).ToString().All(char.IsAsciiHexDigitLower);
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 to <paramref name="path"/>.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, temporary =>
        {
            using var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
            stream.Flush(flushToDisk: true);
        });

    /// <summary>Lets <paramref name="write"/> create the file under a unique temporary name in the same folder (ending
    /// in the same extension, for writers that infer the format from it), then renames it over
    /// <paramref name="path"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder of <paramref name="path"/> does not exist.</exception>
    public static void Write(string path, Action<string> write)
    {
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath)!;
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Cannot write '{path}': directory '{directory}' does not exist.");
        string temporary = $"{fullPath}.{Guid.NewGuid():N}{TemporaryMarker}{Path.GetExtension(fullPath)}";
        try
        {
            write(temporary);
            File.Move(temporary, fullPath, overwrite: true);
        }
        catch
        {
            // Best effort: the error worth reporting is the one that stopped the write.
            try { File.Delete(temporary); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
