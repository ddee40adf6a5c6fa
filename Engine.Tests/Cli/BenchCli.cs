// The command-line program as a user runs it: the built Engine.Bench.dll (copied next to the test assembly by the
// project reference) started with `dotnet` in a child process, its output captured line by line, signals sent
// with kill(2).
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using NUnit.Framework;

namespace Engine.Tests.Cli;

internal sealed class BenchCli : IDisposable
{
    /// <summary>How long any one run may take before the test fails (a loaded 2-core machine is slow).</summary>
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);

    private readonly Process _process;
    private readonly BlockingCollection<string> _lines = new();
    private readonly ConcurrentQueue<string> _stdout = new(), _stderr = new();
    private int _openStreams = 2;

    private BenchCli(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Engine.Bench.dll"));
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Receive(e.Data, _stdout);
        _process.ErrorDataReceived += (_, e) => Receive(e.Data, _stderr);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    private void Receive(string? line, ConcurrentQueue<string> stream)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref _openStreams) == 0) _lines.CompleteAdding();
            return;
        }
        stream.Enqueue(line);
        _lines.Add(line);
    }

    /// <summary>Starts the program with <paramref name="arguments"/>.</summary>
    public static BenchCli Start(params string[] arguments) => new(arguments);

    /// <summary>Runs the program to its end.</summary>
    public static BenchCli Run(params string[] arguments)
    {
        var run = Start(arguments);
        run.WaitForExit();
        return run;
    }

    /// <summary>The process id.</summary>
    public int Id => _process.Id;

    /// <summary>Standard output and error so far.</summary>
    public IReadOnlyList<string> Stdout => _stdout.ToList();

    /// <inheritdoc cref="Stdout"/>
    public IReadOnlyList<string> Stderr => _stderr.ToList();

    /// <summary>Both streams, for assertion messages.</summary>
    public string Transcript => $"stdout:\n{string.Join('\n', Stdout)}\nstderr:\n{string.Join('\n', Stderr)}";

    /// <summary>The exit code, once it has ended.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Waits for a line (on either stream) containing <paramref name="text"/>; fails if the program ends
    /// or the limit passes first.</summary>
    public void WaitForLine(string text)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (_lines.TryTake(out string? line, deadline - DateTime.UtcNow))
            if (line.Contains(text, StringComparison.Ordinal)) return;
        Assert.Fail($"No line with '{text}' before the program ended or {Limit} passed.\n{Transcript}");
    }

    /// <summary>Waits for the end (and for all its output).</summary>
    public void WaitForExit()
    {
        if (!_process.WaitForExit(Limit))
        {
            _process.Kill(entireProcessTree: true);
            Assert.Fail($"Still running after {Limit}.\n{Transcript}");
        }
        _process.WaitForExit();
    }

    /// <summary>Sends a signal ("INT", "TERM", "KILL") with the C library's kill(2), as a terminal or a process
    /// manager would (no kill(1) program needed).</summary>
    public void Signal(string name)
    {
        int number = name switch { "INT" => 2, "KILL" => 9, "TERM" => 15, _ => throw new ArgumentException(name) };
        Assert.That(Kill(Id, number), Is.Zero, $"kill(-{name}, {Id}): errno {Marshal.GetLastPInvokeError()}");
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>Whether the process ignores SIGINT (as processes started from a background job without job
    /// control do; the runtime then leaves it ignored), read from /proc.</summary>
    public bool IgnoresSigint()
    {
        string status = $"/proc/{Id}/status";
        string? mask = File.Exists(status)
            ? File.ReadLines(status).FirstOrDefault(l => l.StartsWith("SigIgn:"))?["SigIgn:".Length..].Trim()
            : null;
        return mask is not null && (Convert.ToUInt64(mask, 16) & 0b10) != 0; // bit 1: signal 2, SIGINT
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
        _lines.Dispose();
    }
}
