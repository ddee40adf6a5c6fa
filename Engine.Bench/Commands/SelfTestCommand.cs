// `selftest [--device D] [--filter REGEX]`: runs the test suite's own fixtures — float32 kernels against float64
// references, float64 gradient checks, blocks and networks — in process, for the chosen device kind, with NUnit's
// engine-less runner. For machines that have a GPU but no .NET SDK (the single-file build carries the tests).
// Prints one line per test and a summary; exits non-zero on any failure or when nothing ran.
using System.CommandLine;
using System.Text.RegularExpressions;
using NUnit.Framework.Api;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

namespace Engine.Bench.Commands;

internal static class SelfTestCommand
{
    public static Command Create()
    {
        var device = new Option<string>("--device") { Description = "Device kind whose fixtures run.", DefaultValueFactory = _ => "cuda" };
        var filter = new Option<string?>("--filter") { Description = "Only tests whose full name matches this regular expression." };
        var command = new Command("selftest", "Runs the test suite's checks on one device kind.") { device, filter };
        command.SetAction(result => Run(result.GetValue(device)!, result.GetValue(filter)));
        return command;
    }

    private static int Run(string kind, string? pattern)
    {
        var runner = new NUnitTestAssemblyRunner(new DefaultTestAssemblyBuilder());
        runner.Load(typeof(Engine.Tests.DeviceFixture).Assembly, new Dictionary<string, object>());
        var nameFilter = pattern is null ? null : new Regex(pattern);
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
                    break;
                default:
                    Skipped++;
                    output.WriteLine($"skip  {result.FullName}: {result.Message?.Trim()}");
                    break;
            }
        }

        public void TestOutput(TestOutput output)
        {
        }

        public void SendMessage(TestMessage message)
        {
        }
    }
}
