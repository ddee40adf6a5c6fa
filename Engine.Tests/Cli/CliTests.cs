// The command-line program run as a process (the Engine.Bench build of the same configuration): every failure is
// one line on stderr and exit code 2, never a stack trace or a help page, and outputs and inputs are checked
// before a device is opened or anything is measured.
using System.Runtime.Intrinsics.X86;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace Engine.Tests.Cli;

[TestFixture]
public sealed class CliTests : TempFolderFixture
{
    /// <summary>Runs the program with <paramref name="args"/> to its end.</summary>
    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        using var run = BenchCli.Run(args);
        return (run.ExitCode, string.Join('\n', run.Stdout), string.Join('\n', run.Stderr));
    }

    private static void AssertOneLineError((int ExitCode, string Stdout, string Stderr) result, string expected)
    {
        Assert.That(result.ExitCode, Is.EqualTo(2), result.Stdout + result.Stderr);
        string[] lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), result.Stderr);
        Assert.That(lines[0], Does.StartWith("error: ").And.Contain(expected));
    }

    [TestCase("step", "--model", "resnet20-a", "--batch", "abc")]
    [TestCase("costs", "--model", "resnet20-a", "--batch", "99999999999")]
    [TestCase("kernels", "--size", "huge")]
    [TestCase("step", "--model", "resnet20-a", "--mode", "sideways")]
    public void ValuesThatDoNotParseAreOneLineAndExitCode2(params string[] args) =>
        AssertOneLineError(Run(args), $"'{args[^1]}'");

    [Test]
    public void ShortcutsRefusesAnUnwritableOutputBeforeMeasuring()
    {
        // A folder under a regular file can never be created, whoever runs the test.
        string file = Path.Combine(Folder, "file");
        File.WriteAllText(file, "x");
        var result = Run("shortcuts", "--out", Path.Combine(file, "out"), "--iters", "1", "--warmup", "0",
            "--device", "cpu");
        AssertOneLineError(result, $"--out: cannot write to the folder '{Path.Combine(file, "out")}'");
        Assert.That(result.Stdout, Does.Not.Contain("device:"), "nothing was opened or measured");
    }

    [Test]
    public void PredictNamesAFolderGivenAsTheCheckpoint()
    {
        string image = Path.Combine(Folder, "image.png");
        File.WriteAllText(image, "x");
        AssertOneLineError(Run("predict", image, "--checkpoint", Folder),
            $"--checkpoint: '{Folder}' is a folder, not a file.");
        AssertOneLineError(Run("predict", image, "--checkpoint", image, "--labels", Folder),
            $"--labels: '{Folder}' is a folder, not a file.");
    }

    [Test]
    public void StepRefusesNoFoldOutsideInference() =>
        AssertOneLineError(Run("step", "--model", "resnet20-a", "--mode", "train", "--no-fold", "--device", "cpu"),
            "--no-fold applies to --mode infer only");

    [Test]
    public void KernelsTrainingWithoutConvShapesIsRefused() =>
        AssertOneLineError(Run("kernels", "--training", "--device", "cpu"),
            "--training applies to --conv-shapes only");

    [Test]
    public void ConvShapesWithTrainingTimesEveryShapeWithItsWeightsWrittenBeforeEachCall()
    {
        var result = Run("kernels", "--conv-shapes", "resnet20-a", "--batch", "2", "--iters", "1", "--training",
            "--device", "cpu");
        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        Assert.That(result.Stdout, Does.Contain("weights written before every call, as in training"));
        Assert.That(result.Stdout, Does.Contain("| all 19 layers |"));
        // A cache line's round trip between two threads, before and after the table, where there are two cores.
        var roundTrip = Regex.Match(result.Stdout,
            @"A cache line's round trip between two threads, before and after the table: (\d+) and (\d+) ns");
        Assert.That(roundTrip.Success, Is.EqualTo(Environment.ProcessorCount >= 2), result.Stdout);
        if (roundTrip.Success)
            Assert.That(new[] { roundTrip.Groups[1].Value, roundTrip.Groups[2].Value }.Select(int.Parse),
                Is.All.Positive);
        if (!Fma.IsSupported) return;
        // The table ends with the FMA peak of the backend's threads, before and after, and the passes under 60 %.
        var peak = Regex.Match(result.Stdout,
            @"float32 FMA peak of the backend's threads, measured before and after the table: (\d+) and (\d+) GFLOP/s");
        Assert.That(peak.Success, result.Stdout);
        Assert.That(int.Parse(peak.Groups[1].Value), Is.Positive);
        Assert.That(int.Parse(peak.Groups[2].Value), Is.Positive);
        Assert.That(result.Stdout, Does.Match(@"Passes below 60 % of it \(\d+ GFLOP/s\): (none|.+ \(\d+ %\))\."));
        // The stem's data gradient, which training never computes, is named apart from that verdict.
        var verdict = result.Stdout[result.Stdout.IndexOf("Passes below", StringComparison.Ordinal)..];
        Assert.That(verdict, Does.Match(@"Apart, the data gradient of the layer that takes the network's input, " +
            @"which no training step computes: 3×32×32 → 16, 3×3/1 backward data \d+ \(\d+ %\)\."));
        Assert.That(verdict[..verdict.IndexOf("Apart", StringComparison.Ordinal)],
            Does.Not.Contain("3×32×32 → 16, 3×3/1 backward data"));
    }

    [Test]
    public void KernelsFilterThatMatchesNothingFailsBeforeBenchmarking() =>
        AssertOneLineError(Run("kernels", "--filter", "NoSuch", "--device", "cpu"),
            "--filter NoSuch matches no benchmark; the benchmarks are ConvForward");
}
