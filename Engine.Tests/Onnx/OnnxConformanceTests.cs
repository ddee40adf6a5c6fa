// ONNX's own backend node tests (Debian's libonnx-testdata: model.onnx plus input and expected output tensors per
// test) run through OnnxModel and compared with the expected outputs at atol 1e-5 + rtol 1e-4. A test the
// importer cannot pass is listed once, in NotSupported, with its reason and the words its refusal must contain:
// the test checks that loading refuses it with exactly that message (so the list cannot rot) and then reports it
// as not run, never as passed. docs/onnx.md's table is checked against a fresh run.
using System.Text;
using Engine.Core;
using Engine.Core.Onnx;
using Engine.Core.Onnx.Proto;
using NUnit.Framework;

namespace Engine.Tests.Onnx;

/// <summary>Runs one ONNX node test and says how it went.</summary>
internal static class OnnxConformance
{
    public const string Root = "/usr/share/libonnx-testdata/data/node";
    public const string Install = "apt-get install libonnx-testdata";

    private static readonly string[] Patterns =
    [
        "test_conv*", "test_batchnorm*", "test_relu", "test_maxpool_2d_*", "test_averagepool_2d_*",
        "test_globalaveragepool*", "test_gemm_*", "test_add*", "test_sum_*", "test_flatten_*", "test_transpose_*",
        "test_matmul_2d",
    ];

    /// <summary>The tests the importer cannot pass: why, and words the refusal's message must contain.</summary>
    public static readonly IReadOnlyDictionary<string, (string Reason, string Message)> NotSupported =
        new Dictionary<string, (string, string)>
        {
            ["test_add_uint8"] = ("uint8 tensors (the engine computes in float32/float64)", "element type Uint8"),
            ["test_maxpool_2d_uint8"] = ("uint8 tensors (the engine computes in float32/float64)", "element type Uint8"),
            ["test_convinteger_with_padding"] = ("ConvInteger is another operator (integer quantised convolution)", "op 'ConvInteger'"),
            ["test_convtranspose_1d"] = ("1-D transposed convolution (the engine's convolutions are 2-D)", "input X [1, 1, 3] (2-D images"),
            ["test_convtranspose_3d"] = ("3-D transposed convolution (the engine's convolutions are 2-D)", "input X [1, 1, 3, 4, 5] (2-D images"),
            ["test_convinteger_without_padding"] = ("ConvInteger is another operator (integer quantised convolution)", "op 'ConvInteger'"),
        };

    /// <summary>Every test folder the patterns name, sorted; empty when the data is not installed.</summary>
    public static IEnumerable<string> Tests() =>
        Directory.Exists(Root)
            ? Patterns.SelectMany(p => Directory.GetDirectories(Root, p)).Select(Path.GetFileName).Distinct()
                .Order(StringComparer.Ordinal)!
            : [];

    /// <summary>Runs <paramref name="test"/> on <paramref name="device"/>: null when every output of every data set
    /// agrees, else what went wrong.</summary>
    public static string? Run(string test, Device device)
    {
        string folder = Path.Combine(Root, test);
        using var scope = TensorScope.Begin();
        using var model = OnnxModel.Load<float>(Path.Combine(folder, "model.onnx"), device);
        foreach (string set in Directory.GetDirectories(folder, "test_data_set_*").Order(StringComparer.Ordinal))
        {
            var inputs = new Dictionary<string, Tensor<float>>();
            var required = model.InputNames;
            for (int i = 0; File.Exists(Path.Combine(set, $"input_{i}.pb")); i++)
            {
                var array = Read(Path.Combine(set, $"input_{i}.pb"));
                string name = required.Contains(array.Name) ? array.Name : required[i];
                inputs[name] = Tensor.FromArray(array.To<float>(), array.Dims.Select(d => (int)d).ToArray(), device);
            }
            var outputs = model.Run(inputs);
            for (int i = 0; File.Exists(Path.Combine(set, $"output_{i}.pb")); i++)
            {
                var expected = Read(Path.Combine(set, $"output_{i}.pb"));
                var actual = outputs[model.OutputNames[i]];
                if (!actual.Shape.ToArray().Select(d => (long)d).SequenceEqual(expected.Dims))
                    return $"{Path.GetFileName(set)} output {i}: shape {actual.Shape}, expected [{string.Join(", ", expected.Dims)}]";
                var values = actual.ToArray();
                for (int k = 0; k < values.Length; k++)
                    if (!(Math.Abs(values[k] - expected.Values[k]) <= 1e-5 + 1e-4 * Math.Abs(expected.Values[k])))
                        return $"{Path.GetFileName(set)} output {i}: element {k} is {values[k]}, expected {expected.Values[k]}";
            }
        }
        return null;
    }

    private static OnnxArray Read(string path) =>
        OnnxTensors.Read(TensorProto.Parser.ParseFrom(File.ReadAllBytes(path)), Path.GetDirectoryName(path));

    /// <summary>The outcome of <paramref name="test"/> as the docs state it; throws when the outcome contradicts
    /// the <see cref="NotSupported"/> list.</summary>
    public static string Outcome(string test, Device device)
    {
        if (NotSupported.TryGetValue(test, out var listed))
        {
            var e = Assert.Catch(() => Run(test, device),
                $"{test} is listed as not supported ({listed.Reason}) but loads: take it off the list.");
            Assert.That(e, Is.InstanceOf<NotSupportedException>().Or.InstanceOf<InvalidDataException>());
            Assert.That(e!.Message, Does.Contain(listed.Message), $"{test} is refused for another reason than listed.");
            return $"not supported: {listed.Reason}";
        }
        string? failure = Run(test, device);
        Assert.That(failure, Is.Null, $"{test}: {failure}");
        return "pass";
    }
}

public class OnnxConformanceTests
{
    private Device _cpu = null!;

    [OneTimeSetUp]
    public void CreateDevice() => _cpu = Device.Create("cpu");

    [OneTimeTearDown]
    public void DisposeDevice() => _cpu.Dispose();

    private static IEnumerable<TestCaseData> Cases()
    {
        var tests = OnnxConformance.Tests().ToArray();
        if (tests.Length == 0) yield return new TestCaseData("(libonnx-testdata not installed)");
        foreach (string test in tests) yield return new TestCaseData(test).SetArgDisplayNames(test);
    }

    [TestCaseSource(nameof(Cases))]
    public void NodeTestMatchesOnnxExpectedOutputs(string test)
    {
        if (!Directory.Exists(OnnxConformance.Root))
            Assert.Ignore($"ONNX's node tests are not installed ({OnnxConformance.Root}; {OnnxConformance.Install}).");
        string outcome = OnnxConformance.Outcome(test, _cpu);
        if (outcome != "pass") Assert.Ignore($"{test}: {outcome}");
    }

    [Test]
    public void DocsTableIsTheOutcomeOfARun()
    {
        if (!Directory.Exists(OnnxConformance.Root))
            Assert.Ignore($"ONNX's node tests are not installed ({OnnxConformance.Root}; {OnnxConformance.Install}).");
        var table = new StringBuilder("| ONNX node test | result |\n|---|---|\n");
        var outcomes = OnnxConformance.Tests().Select(t => (Test: t, Outcome: OnnxConformance.Outcome(t, _cpu))).ToArray();
        foreach (var (test, outcome) in outcomes) table.Append($"| `{test}` | {outcome} |\n");
        table.Append($"\n{outcomes.Count(o => o.Outcome == "pass")} of {outcomes.Length} pass.\n");
        string generated = table.ToString();
        TestContext.Out.Write(generated);

        string docs = Path.Combine(RepositoryRoot(), "docs", "onnx.md");
        string text = File.ReadAllText(docs).ReplaceLineEndings("\n");
        const string begin = "<!-- conformance table: generated by OnnxConformanceTests -->\n", end = "<!-- end of table -->";
        int start = text.IndexOf(begin, StringComparison.Ordinal), stop = text.IndexOf(end, StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0).And.LessThan(stop), $"{docs} has no conformance table markers.");
        Assert.That(text[(start + begin.Length)..stop], Is.EqualTo(generated),
            $"{docs}'s conformance table is not what a run gives; replace it with:\n{generated}");
    }

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "Engine.sln"))) return folder.FullName;
        throw new DirectoryNotFoundException("Engine.sln not found above the test directory.");
    }
}

/// <summary>A few node tests on every device kind (the op table is the same everywhere; the engine ops differ).</summary>
public class OnnxConformanceDeviceTests(string kind) : DeviceFixture(kind)
{
    [TestCase("test_conv_with_strides_and_asymmetric_padding")]
    [TestCase("test_batchnorm_example_training_mode")]
    [TestCase("test_gemm_all_attributes")]
    [TestCase("test_maxpool_2d_precomputed_strides")]
    [TestCase("test_transpose_all_permutations_3")]
    public void NodeTestMatchesOnnxExpectedOutputs(string test)
    {
        if (!Directory.Exists(Path.Combine(OnnxConformance.Root, test)))
            Assert.Ignore($"ONNX's node test {test} is not installed ({OnnxConformance.Install}).");
        Assert.That(OnnxConformance.Run(test, Device), Is.Null);
    }
}
