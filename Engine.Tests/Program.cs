// The test suite as its own program: `Engine.Tests [--device D] [--filter REGEX]` runs the device fixtures —
// float32 kernels against float64 references, float64 gradient checks, blocks and networks — of one device kind, in
// process, with NUnit's engine-less runner. For machines that have a GPU but no .NET SDK: the single-file publish
// (docs/gpu.md) carries the suite. `dotnet test` does not use this entry point; it runs every test as usual.
// Prints one line per test and a summary; exits 1 on any failure or when nothing ran, 2 on a bad argument.
// `Engine.Tests --mpi SCENARIO ...` is instead one rank of an mpirun job that the MPI tests launch
// (Distributed/MpiScenarios.cs).
using System.Text.RegularExpressions;
using NUnit.Framework.Api;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

namespace Engine.Tests;

internal static class Program
{
    private const string Usage = "usage: Engine.Tests [--device cuda|opencl|cpu|ilgpu-cpu] [--filter REGEX]\n" +
                                 "       Engine.Tests --mpi SCENARIO ... (a rank of an mpirun job; --mpi alone lists them)";

    private static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "--mpi")
            return Distributed.MpiScenarios.Run(args[1..]);
        string kind = "cuda";
        Regex? nameFilter = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--device" when i + 1 < args.Length:
                    kind = args[++i];
                    break;
                case "--filter" when i + 1 < args.Length:
                    try
                    {
                        nameFilter = new Regex(args[++i]);
                    }
                    catch (ArgumentException error)
                    {
                        return BadArgument($"--filter is not a regular expression: {error.Message}");
                    }
                    break;
                case "-h" or "--help":
                    Console.WriteLine(Usage);
                    return 0;
                default:
                    return BadArgument($"unexpected argument '{args[i]}'.");
            }
        }
        if (!Engine.Core.Device.Kinds.Contains(kind))
            return BadArgument($"unknown device '{kind}'. Known devices: {string.Join(", ", Engine.Core.Device.Kinds)}.");
        return Run(kind, nameFilter);
    }

    private static int BadArgument(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static int Run(string kind, Regex? nameFilter)
    {
        var runner = new NUnitTestAssemblyRunner(new DefaultTestAssemblyBuilder());
        runner.Load(typeof(DeviceFixture).Assembly, new Dictionary<string, object>());
        var listener = new Listener(Console.Out); // NUnit redirects Console.Out while tests run
        // Device fixtures carry their kind as the fixture argument: "ConvolutionTests(cuda)".
        runner.Run(listener, new KindFilter($"({kind})", nameFilter));
        Console.WriteLine($"selftest {kind}: {listener.Passed} passed, {listener.Failed} failed, {listener.Skipped} skipped");
        if (listener.Passed + listener.Failed == 0)
        {
            Console.Error.WriteLine($"error: no test ran for device '{kind}' (is it present?).");
            return 1;
        }
        return listener.Failed == 0 ? 0 : 1;
    }

    private sealed class KindFilter(string fixtureSuffix, Regex? names) : TestFilter
    {
        public override bool Match(ITest test) =>
            !test.IsSuite && FixtureOf(test)?.Name.EndsWith(fixtureSuffix) == true &&
            (names is null || names.IsMatch(test.FullName));

        private static ITest? FixtureOf(ITest test)
        {
            for (var t = test.Parent; t is not null; t = t.Parent)
                if (t.TypeInfo is not null && t.IsSuite && t.Parent?.TypeInfo?.Type != t.TypeInfo.Type)
                    return t;
            return null;
        }

        public override TNode AddToXml(TNode parentNode, bool recursive) => parentNode.AddElement("kind", fixtureSuffix);
    }

    private sealed class Listener(TextWriter output) : ITestListener
    {
        public int Passed, Failed, Skipped;

        public void TestStarted(ITest test)
        {
        }

        public void TestFinished(ITestResult result)
        {
            if (result.Test.IsSuite)
            {
                if (result.ResultState.Status == TestStatus.Failed && result.ResultState.Site is FailureSite.SetUp or FailureSite.TearDown)
                {
                    Failed++;
                    output.WriteLine($"FAIL  {result.FullName}: {result.Message}");
                    WriteStack(result.StackTrace);
                }
                return;
            }
            switch (result.ResultState.Status)
            {
                case TestStatus.Passed:
                    Passed++;
                    output.WriteLine($"pass  {result.FullName} ({result.Duration:F2} s)");
                    break;
                case TestStatus.Failed:
                    Failed++;
                    output.WriteLine($"FAIL  {result.FullName}: {result.Message?.Trim()}");
                    WriteStack(result.StackTrace);
                    break;
                default:
                    Skipped++;
                    output.WriteLine($"skip  {result.FullName}: {result.Message?.Trim()}");
                    break;
            }
        }

        /// <summary>The failure's innermost frames, indented under its FAIL line: on a GPU machine they are all there
        /// is to find the op that failed.</summary>
        private void WriteStack(string? stackTrace)
        {
            var frames = (stackTrace ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var frame in frames.Take(StackFrames)) output.WriteLine($"      {frame.Trim()}");
        }

        private const int StackFrames = 12;

        public void TestOutput(TestOutput output)
        {
        }

        public void SendMessage(TestMessage message)
        {
        }
    }
}
