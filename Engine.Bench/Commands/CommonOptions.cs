// Options shared by the commands, and the checks of input files and output folders that every command makes
// before it opens a device or measures anything.
using System.CommandLine;
using Engine.Core;

namespace Engine.Bench.Commands;

internal static class CommonOptions
{
    public static Option<string?> Device() => new("--device")
    {
        Description = $"Device: {string.Join(", ", Engine.Core.Device.Kinds)} " +
                      $"(default: ${Engine.Core.Device.EnvironmentVariable}, else the first present in that order).",
    };

    /// <summary>Creates the device a command runs on and says which one it is and why.</summary>
    public static Device OpenDevice(string? requested)
    {
        var device = Engine.Core.Device.Select(requested);
        Console.WriteLine($"device: {device.Kind} — {device.Backend.Description} ({device.SelectionReason})");
        return device;
    }

    /// <summary>Throws unless <paramref name="path"/>, given by <paramref name="option"/>, is a regular file with
    /// data: a folder, a missing file, and an empty or non-regular one (a named pipe or device, which reports a
    /// length of 0 and would block a reader) are refused before anything opens it.</summary>
    public static void RequireInputFile(string path, string option)
    {
        if (Directory.Exists(path))
            throw new ArgumentException($"{option}: '{path}' is a folder, not a file.");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{option}: '{path}' does not exist.", path);
        if (new FileInfo(path).Length == 0)
            throw new InvalidDataException($"{option}: '{path}' is empty or not a regular file (a named pipe or device).");
    }

    /// <summary>Creates <paramref name="folder"/>, given by <paramref name="option"/>, and proves it writable by
    /// creating and deleting a probe file, so that a run fails before it measures, not after.</summary>
    public static void RequireWritableFolder(string folder, string option)
    {
        try
        {
            Directory.CreateDirectory(folder);
            string probe = Path.Combine(folder, $".write-test-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{option}: cannot write to the folder '{folder}' ({error.Message})", error);
        }
    }
}
