// The output folder of a training run, checked and held before any training: it and the paths of the run's files
// can be written, no other run uses it (an exclusive lock on ".lock" for the run's lifetime, which the operating
// system releases when the process ends, however it ends, so a killed run never leaves a stale lock; the holder is
// described in ".lock.owner"), and the temporary files of writes that a killed run stopped half-way are removed.
using System.Diagnostics;
using System.Globalization;
using Engine.Bench.Commands;
using Engine.Core.Serialization;
using Engine.Models.Training;

namespace Engine.Bench.Training;

internal sealed class OutputFolder : IDisposable
{
    private const string LockFile = ".lock", OwnerFile = ".lock.owner";

    private readonly FileStream _lock;

    private OutputFolder(string path, FileStream heldLock, IReadOnlyList<string> removedTemporaryFiles)
    {
        Folder = path;
        _lock = heldLock;
        RemovedTemporaryFiles = removedTemporaryFiles;
    }

    /// <summary>The folder, as given.</summary>
    public string Folder { get; }

    /// <summary>The run's checkpoint.</summary>
    public string Checkpoint => Path.Combine(Folder, Trainer.CheckpointFile);

    /// <summary>One row per finished epoch.</summary>
    public string HistoryCsv => Path.Combine(Folder, "history.csv");

    /// <summary>The error curves.</summary>
    public string ErrorCurves => Path.Combine(Folder, "errors.png");

    /// <summary>The temporary files of interrupted writes that <see cref="Open"/> removed (file names).</summary>
    public IReadOnlyList<string> RemovedTemporaryFiles { get; }

    /// <summary>Checks <paramref name="path"/> for a run (a folder, or a path where one can be created, whose
    /// output paths are not folders; a checkpoint there exactly when resuming), creates it and proves it writable
    /// (<see cref="CommonOptions.RequireWritableFolder"/>), takes its lock and removes stale temporary files of the
    /// run's own files.</summary>
    /// <exception cref="IOException">The folder is a file, an output path is a folder, the folder cannot be
    /// created or written, or another process holds its lock (named).</exception>
    /// <exception cref="FileNotFoundException">Resuming without a checkpoint.</exception>
    /// <exception cref="InvalidOperationException">Not resuming, and a checkpoint is there.</exception>
    public static OutputFolder Open(string path, bool resume)
    {
        if (File.Exists(path)) throw new IOException($"--out '{path}' is a file, not a folder.");
        var outputs = new[] { Trainer.CheckpointFile, "history.csv", "errors.png" }
            .Select(name => Path.Combine(path, name)).ToArray();
        if (outputs.FirstOrDefault(Directory.Exists) is { } blocked)
            throw new IOException($"'{blocked}' is a folder, so the run cannot write its file there.");
        string checkpoint = outputs[0];
        if (resume && !File.Exists(checkpoint))
            throw new FileNotFoundException($"--resume: no checkpoint at '{checkpoint}'.", checkpoint);
        CommonOptions.RequireWritableFolder(path, "--out");
        var heldLock = TakeLock(path);
        try
        {
            if (!resume && File.Exists(checkpoint))
                throw new InvalidOperationException(
                    $"'{path}' already holds a checkpoint; pass --resume to continue it or choose another --out.");
            var removed = RemoveTemporaryFiles(path, outputs);
            AtomicFile.WriteAllText(Path.Combine(path, OwnerFile),
                $"process {Environment.ProcessId} on {Environment.MachineName}, started " +
                $"{Process.GetCurrentProcess().StartTime.ToUniversalTime().ToString("u", CultureInfo.InvariantCulture)}");
            return new OutputFolder(path, heldLock, removed);
        }
        catch
        {
            heldLock.Dispose();
            throw;
        }
    }

    /// <summary>Opens the lock file exclusively; another holder is named from its owner file.</summary>
    private static FileStream TakeLock(string folder)
    {
        string path = Path.Combine(folder, LockFile);
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (Exception e) when (e is UnauthorizedAccessException || (e is IOException && !File.Exists(path)))
        {
            throw new IOException($"The output folder '{folder}' cannot be written: {e.Message}", e);
        }
        catch (IOException e)
        {
            string owner;
            try
            {
                owner = File.ReadAllText(Path.Combine(folder, OwnerFile)).Trim();
            }
            catch (Exception readError) when (readError is IOException or UnauthorizedAccessException)
            {
                owner = "a process that has not described itself yet";
            }
            throw new IOException($"'{folder}' is in use by another run, {owner} (it holds '{path}'); wait for " +
                                  "that run to end or choose another --out.", e);
        }
    }

    /// <summary>Deletes the temporary files that writing <paramref name="outputs"/> or the owner file leaves when
    /// stopped half-way (nothing else), and returns their names.</summary>
    private static List<string> RemoveTemporaryFiles(string folder, string[] outputs)
    {
        string[] written = [.. outputs, Path.Combine(folder, OwnerFile)];
        var removed = new List<string>();
        foreach (string file in Directory.EnumerateFiles(folder))
        {
            if (!written.Any(output => AtomicFile.IsTemporaryFileOf(output, file))) continue;
            File.Delete(file);
            removed.Add(Path.GetFileName(file));
        }
        removed.Sort(StringComparer.Ordinal);
        return removed;
    }

    /// <summary>Removes the owner file and releases the lock (the lock file stays: deleting it could let two runs
    /// lock two different files of the same name).</summary>
    public void Dispose()
    {
        File.Delete(Path.Combine(Folder, OwnerFile));
        _lock.Dispose();
    }
}
