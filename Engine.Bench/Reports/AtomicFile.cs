// Report files written so that a reader never sees half of one: to a temporary name, flushed to disk, renamed.
namespace Engine.Bench.Reports;

public static class AtomicFile
{
    public static void WriteAllText(string path, string text) =>
        Write(path, temporary =>
        {
            using var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write);
            stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
            stream.Flush(flushToDisk: true);
        });

    /// <summary>The temporary name <see cref="Write"/> gives <paramref name="path"/>'s new contents until they are
    /// complete ("{path}.tmp{extension}"): a file left there was stopped half-written.</summary>
    public static string TemporaryPath(string path) => path + ".tmp" + Path.GetExtension(path);

    /// <summary>Lets <paramref name="write"/> create the file under a temporary name (ending in the same
    /// extension, for writers that infer the format), then renames it over <paramref name="path"/>.</summary>
    public static void Write(string path, Action<string> write)
    {
        string temporary = TemporaryPath(path);
        try
        {
            write(temporary);
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }
}
