// Launches a real `mpirun --oversubscribe --allow-run-as-root -np N dotnet Engine.Tests.dll --mpi SCENARIO` job for
// the MPI tests, with a wall-clock bound: a job past it is killed (its whole process tree) and the test fails with
// what the ranks printed. Without mpirun on the PATH the calling test is reported as ignored, naming the package.
using System.Diagnostics;
using System.Text;
using Engine.Core.Distributed;
using NUnit.Framework;

namespace Engine.Tests.Distributed;

internal sealed record MpiJobResult(int ExitCode, string Output, TimeSpan Elapsed);

internal static class MpiJob
{
    /// <summary>Runs the scenario on <paramref name="ranks"/> ranks; fails the test when the job outlives
    /// <paramref name="limit"/>.</summary>
    public static MpiJobResult Run(int ranks, TimeSpan limit, params string[] scenario) =>
        Launch(limit, null, ["-np", ranks.ToString(), Dotnet, typeof(MpiJob).Assembly.Location, "--mpi", .. scenario]);

    /// <summary>The dotnet host that runs the tests.</summary>
    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    /// <summary>The command-line program's assembly, next to the tests'.</summary>
    public static string BenchDll => Path.Combine(AppContext.BaseDirectory, "Engine.Bench.dll");

    /// <summary>Runs <c>mpirun --oversubscribe --allow-run-as-root</c> with <paramref name="arguments"/> (process
    /// counts and commands, MPMD `:` groups included); <paramref name="started"/>, when given, is called with the
    /// mpirun process and the output so far, while the job runs (to signal ranks). Fails the test when the job
    /// outlives <paramref name="limit"/>.</summary>
    public static MpiJobResult Launch(TimeSpan limit, Action<Process, Func<string>>? started, params string[] arguments)
    {
        string mpirun = FindOnPath("mpirun") ??
            throw new IgnoreException($"mpirun is not on the PATH: {MpiLibraryHint}; the MPI tests did not run.");
        var start = new ProcessStartInfo(mpirun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Tiered PGO off in the ranks: the jobs are a few seconds of mostly tier-0 code, and its instrumentation cost
        // a third of their CPU time here; it changes which code the JIT emits, never what the code computes.
        foreach (var argument in (string[])["--oversubscribe", "--allow-run-as-root", "-x", "DOTNET_TieredPGO=0", .. arguments])
            start.ArgumentList.Add(argument);
        string scenario = string.Join(' ', arguments);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, line) => { lock (output) output.AppendLine(line.Data); };
        process.ErrorDataReceived += (_, line) => { lock (output) output.AppendLine(line.Data); };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            started?.Invoke(process, () => { lock (output) return output.ToString(); });
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        if (!process.WaitForExit(TimeSpan.FromTicks(Math.Max(0, (limit - clock.Elapsed).Ticks))))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"mpirun {scenario} did not end within {limit.TotalSeconds} s; output:\n{output}");
        }
        process.WaitForExit(); // drains the redirected streams
        lock (output) return new MpiJobResult(process.ExitCode, output.ToString(), clock.Elapsed);
    }

    /// <summary>What to install, as the communicator's own error says it.</summary>
    public static string MpiLibraryHint => "install OpenMPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)";

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(folder => Path.Combine(folder, program))
        .FirstOrDefault(Runnable);

    /// <summary>A file at <paramref name="path"/> that a link, if it is one, leads to: a link left dangling by a
    /// removed package (an alternatives entry) counts as absent, as File.Exists alone would not.</summary>
    private static bool Runnable(string path) =>
        File.Exists(path) && (new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.Exists ?? true);

    /// <summary>Whether a test process itself runs under mpirun (then the "not started by mpirun" check cannot be
    /// exercised in process).</summary>
    public static bool InsideMpiJob => MpiCommunicator.StartedByMpirun;
}
