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
    public static MpiJobResult Run(int ranks, TimeSpan limit, params string[] scenario)
    {
        string mpirun = FindOnPath("mpirun") ??
            throw new IgnoreException($"mpirun is not on the PATH: {MpiLibraryHint}; the MPI tests did not run.");
        var start = new ProcessStartInfo(mpirun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["--oversubscribe", "--allow-run-as-root", "-np", ranks.ToString(),
                                            Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
                                            typeof(MpiJob).Assembly.Location, "--mpi", .. scenario])
            start.ArgumentList.Add(argument);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, line) => { lock (output) output.AppendLine(line.Data); };
        process.ErrorDataReceived += (_, line) => { lock (output) output.AppendLine(line.Data); };
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"mpirun -np {ranks} {string.Join(' ', scenario)} did not end within {limit.TotalSeconds} s; output:\n{output}");
        }
        process.WaitForExit(); // drains the redirected streams
        lock (output) return new MpiJobResult(process.ExitCode, output.ToString(), clock.Elapsed);
    }

    /// <summary>What to install, as the communicator's own error says it.</summary>
    public static string MpiLibraryHint => "install OpenMPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)";

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(folder => Path.Combine(folder, program))
        .FirstOrDefault(File.Exists);

    /// <summary>Whether a test process itself runs under mpirun (then the "not started by mpirun" check cannot be
    /// exercised in process).</summary>
    public static bool InsideMpiJob => MpiCommunicator.StartedByMpirun;
}
