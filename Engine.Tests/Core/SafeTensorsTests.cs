// SafeTensors: the file format read back independently, bit-exact round trips, dtype conversion, every kind of
// corrupt file and of file/model mismatch rejected with a message naming the problem (and the model untouched),
// torchvision's num_batches_tracked ignored, atomic writes, and tensors holding NaN or ±∞ (or F64 values beyond
// float32's range) refused unless the caller opts in, in a trainer's checkpoint as in a plain file.
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Engine.Core;
using Engine.Core.Autograd;
using Engine.Core.Modules;
using Engine.Core.Serialization;
using Engine.Models.Training;
using NUnit.Framework;

namespace Engine.Tests.Core;

public sealed class SafeTensorsTests(string kind) : DeviceFixture(kind)
{
    /// <summary>A conv, a batch norm and a linear layer: parameters and buffers under dotted names.</summary>
    private sealed class TinyNet<T> : Module<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public TinyNet(Device device, int seed, int classes = 3)
        {
            Child("conv", new Conv2d<T>(device, 2, 4, 3, 1, 1, bias: false, seed));
            Child("bn", new BatchNorm2d<T>(device, 4));
            Child("fc", new Linear<T>(device, 4, classes, seed + 1));
            // Batch norm starts at ones and zeros whatever the seed: randomise it so every entry differs by seed.
            using (GradMode.NoGrad())
                foreach (var (name, tensor) in NamedBuffers().Concat(NamedParameters().Where(p => p.Name.StartsWith("bn."))))
                    tensor.CopyFrom(Tensor.RandomUniform<T>(tensor.Shape, seed + name.Length, 0.5, 1.5, device).ToArray());
        }

        public override Tensor<T> Forward(Tensor<T> x) =>
            throw new NotSupportedException("Only the state dict of this model is used.");
    }

    private static readonly string[] TinyNetNames =
        ["conv.weight", "bn.weight", "bn.bias", "fc.weight", "fc.bias", "bn.running_mean", "bn.running_var"];

    private string _directory = "";

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Path.Combine(Path.GetTempPath(), "engine-safetensors-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private string FilePath(string name = "model.safetensors") => Path.Combine(_directory, name);

    /// <summary>Every state-dict entry's raw bytes, to compare bit for bit.</summary>
    private static Dictionary<string, byte[]> Bytes<T>(Module<T> module) where T : unmanaged, IFloatingPointIeee754<T> =>
        module.StateDict().ToDictionary(e => e.Name, e => MemoryMarshal.AsBytes(e.Tensor.ToArray().AsSpan()).ToArray());

    /// <summary>Writes a safetensors file by hand: the header length, the header text as given, the data.</summary>
    private static void WriteRaw(string path, string header, byte[] data) =>
        WriteRaw(path, Encoding.UTF8.GetBytes(header), data);

    /// <summary>As <see cref="WriteRaw(string, string, byte[])"/>, for header bytes that need not be text.</summary>
    private static void WriteRaw(string path, byte[] header, byte[] data)
    {
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        File.WriteAllBytes(path, [.. length, .. header, .. data]);
    }

    /// <summary>Writes a well-formed file by hand from (name, dtype, shape, data) with contiguous offsets.</summary>
    private static void WriteEntries(string path, IEnumerable<(string Name, string DType, int[] Shape, byte[] Data)> entries)
    {
        var header = new Dictionary<string, object>();
        var data = new List<byte>();
        foreach (var (name, dtype, shape, bytes) in entries)
        {
            header[name] = new { dtype, shape, data_offsets = new[] { data.Count, data.Count + bytes.Length } };
            data.AddRange(bytes);
        }
        WriteRaw(path, JsonSerializer.Serialize(header), [.. data]);
    }

    private static (string, string, int[], byte[]) F32Entry(string name, Tensor<float> tensor) =>
        (name, "F32", tensor.Shape.ToArray(), MemoryMarshal.AsBytes(tensor.ToArray().AsSpan()).ToArray());

    /// <summary>Loading <paramref name="path"/> into a fresh model fails with <typeparamref name="TException"/>,
    /// the message names the file, and not one of the model's bytes changed.</summary>
    private TException AssertRejectedAndUntouched<TException>(string path, int classes = 3) where TException : Exception
    {
        using var model = new TinyNet<float>(Device, seed: 99, classes);
        var before = Bytes(model);
        var error = Assert.Throws<TException>(() => SafeTensors.Load(model, path))!;
        Assert.That(error.Message, Does.Contain(path));
        Assert.That(Bytes(model), Is.EqualTo(before), "the model changed although the load was rejected");
        return error;
    }

    [Test]
    public void SaveThenLoadIsBitExact()
    {
        using var saved = new TinyNet<float>(Device, seed: 1);
        using var loaded = new TinyNet<float>(Device, seed: 2);
        var expected = Bytes(saved);
        foreach (var (name, bytes) in Bytes(loaded))
            Assert.That(bytes, Is.Not.EqualTo(expected[name]), $"{name} should differ before loading");

        SafeTensors.Save(saved, FilePath());
        SafeTensors.Load(loaded, FilePath());

        Assert.That(Bytes(loaded), Is.EqualTo(expected));
    }

    [Test]
    public void FileLayoutIsTheSafetensorsFormat()
    {
        using var model = new TinyNet<double>(Device, seed: 3);
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["epoch"] = "7" };
        SafeTensors.Save(model, FilePath(), metadata);

        byte[] file = File.ReadAllBytes(FilePath());
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.That((8 + headerLength) % 8, Is.Zero, "data section is 8-byte aligned");
        using var header = JsonDocument.Parse(file.AsMemory(8, (int)headerLength));
        var root = header.RootElement;
        var names = root.EnumerateObject().Select(p => p.Name).Where(n => n != "__metadata__").ToArray();
        Assert.That(names, Is.EqualTo(TinyNetNames), "state-dict order: parameters, then buffers");
        Assert.That(root.GetProperty("__metadata__").GetProperty("epoch").GetString(), Is.EqualTo("7"));

        long dataStart = 8 + headerLength, offset = 0;
        foreach (var (name, tensor) in model.StateDict())
        {
            var entry = root.GetProperty(name);
            Assert.That(entry.GetProperty("dtype").GetString(), Is.EqualTo("F64"), name);
            Assert.That(entry.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()),
                Is.EqualTo(tensor.Shape.ToArray()), name);
            long[] offsets = [.. entry.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt64())];
            Assert.That(offsets, Is.EqualTo(new[] { offset, offset + tensor.Length * 8 }), name);
            var stored = MemoryMarshal.Cast<byte, double>(file.AsSpan((int)(dataStart + offset), (int)tensor.Length * 8));
            Assert.That(stored.ToArray(), Is.EqualTo(tensor.ToArray()), name);
            offset = offsets[1];
        }
        Assert.That(dataStart + offset, Is.EqualTo(file.Length), "the tensors fill the file exactly");

        var parsed = SafeTensors.ReadHeader(FilePath());
        Assert.That(parsed.Tensors.Select(t => t.Name), Is.EqualTo(TinyNetNames));
        Assert.That(parsed.Tensors[0], Is.EqualTo(new SafeTensorsEntry("conv.weight", "F64", [4, 2, 3, 3], 0, 72 * 8)));
        Assert.That(parsed.Metadata, Is.EqualTo(metadata));
        Assert.That(parsed.DataStart, Is.EqualTo(dataStart));
    }

    [Test]
    public void F32FileLoadsIntoAFloat64ModelAndBack()
    {
        using var single = new TinyNet<float>(Device, seed: 4);
        using var dbl = new TinyNet<double>(Device, seed: 5);
        SafeTensors.Save(single, FilePath("f32.safetensors"));
        SafeTensors.Load(dbl, FilePath("f32.safetensors"));
        foreach (var ((name, f), (_, d)) in single.StateDict().Zip(dbl.StateDict()))
            Assert.That(d.ToArray(), Is.EqualTo(f.ToArray().Select(v => (double)v).ToArray()), name);

        using var roundTrip = new TinyNet<float>(Device, seed: 6);
        SafeTensors.Save(dbl, FilePath("f64.safetensors"));
        SafeTensors.Load(roundTrip, FilePath("f64.safetensors"));
        Assert.That(Bytes(roundTrip), Is.EqualTo(Bytes(single)), "float → double → float is exact");
    }

    [Test]
    public void MissingFileIsNamed()
    {
        var error = AssertRejectedAndUntouched<FileNotFoundException>(FilePath("absent.safetensors"));
        Assert.That(error.Message, Does.Contain("does not exist"));
    }

    [Test]
    public void FileCutInTheDataSectionIsRejected()
    {
        using var model = new TinyNet<float>(Device, seed: 7);
        SafeTensors.Save(model, FilePath());
        byte[] file = File.ReadAllBytes(FilePath());
        File.WriteAllBytes(FilePath(), file[..^4]);
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("'bn.running_var'").And.Contain("truncated"));
    }

    [Test]
    public void FileCutInsideTheHeaderIsRejected()
    {
        using var model = new TinyNet<float>(Device, seed: 8);
        SafeTensors.Save(model, FilePath());
        byte[] file = File.ReadAllBytes(FilePath());
        File.WriteAllBytes(FilePath(), file[..40]);
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("past the end of the 40-byte file"));

        File.WriteAllBytes(FilePath(), file[..5]);
        error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("5 bytes, shorter than the 8-byte header length"));
    }

    [Test]
    public void OversizedHeaderLengthIsRejected()
    {
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 200_000_000);
        File.WriteAllBytes(FilePath(), bytes);
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("200000000").And.Contain("limit"));

        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        File.WriteAllBytes(FilePath(), bytes);
        AssertRejectedAndUntouched<InvalidDataException>(FilePath());
    }

    [Test]
    public void HeaderLengthLargerThanTheFileIsRejected()
    {
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 57);
        File.WriteAllBytes(FilePath(), bytes);
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("57 bytes, past the end of the 64-byte file"));
    }

    private const string A8 = "\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}";

    [TestCase("{\"a\": [1, 2", 0, "not valid JSON")]
    [TestCase("\u00ff\u00fe", 0, "not valid JSON")]
    [TestCase("[1, 2]", 0, "not a JSON object")]
    [TestCase("{\"a\": 3}", 0, "'a' is a JSON Number")]
    [TestCase("{\"a\": {\"dtype\": \"X9\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "unknown dtype 'X9'")]
    [TestCase("{\"a\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "'a' has no dtype")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", 8, "'a' has no shape")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", 8, "'a' has no shape")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "'a' has no data_offsets")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8, 9]}}", 8, "'a' has no data_offsets")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", 8, "end before they begin")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "F32 [3] needs 12")]
    [TestCase("{\"a\": {\"dtype\": \"F32\", \"shape\": [65536, 65536, 65536, 65536], \"data_offsets\": [0, 8]}}", 8,
        "more elements")]
    [TestCase("{" + A8 + ", \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 16,
        "'b' (bytes [4, 12)) overlaps 'a'")]
    [TestCase("{" + A8 + ", \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [12, 20]}}", 20,
        "bytes [8, 12) of the data section belong to no tensor")]
    [TestCase("{" + A8 + "}", 12, "bytes [8, 12) at the end of the data section")]
    [TestCase("{" + A8 + ", " + A8 + "}", 8, "'a' appears more than once")]
    [TestCase("{\"__metadata__\": {\"epoch\": 7}, " + A8 + "}", 8, "'epoch' is a JSON Number, not a string")]
    public void MalformedHeaderIsRejected(string header, int dataBytes, string expectedMessage)
    {
        WriteRaw(FilePath(), header, new byte[dataBytes]);
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain(expectedMessage));
    }

    [Test]
    public void HeaderThatIsNotUtf8IsRejected()
    {
        // A tensor name holding the byte 0xFF, which never occurs in UTF-8.
        WriteRaw(FilePath(), [.. "{\""u8, 0xFF, .. "\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}"u8],
            new byte[4]);
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("not valid UTF-8"));
    }

    [Test]
    public void EveryEntryProblemIsListed()
    {
        WriteRaw(FilePath(), "{\"a\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}, " +
                             "\"b\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [8, 16]}}", new byte[16]);
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("unknown dtype 'Q4'").And.Contain("'b' data_offsets [8, 16]"));
    }

    [Test]
    public void DTypeThatCannotBeLoadedIsNamed()
    {
        using var source = new TinyNet<float>(Device, seed: 9);
        WriteEntries(FilePath(), source.StateDict().Select(e => e.Name == "fc.bias"
            ? (e.Name, "F16", e.Tensor.Shape.ToArray(), new byte[e.Tensor.Length * 2])
            : F32Entry(e.Name, e.Tensor)));
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("'fc.bias' is F16"));
    }

    [Test]
    public void MisShapedTensorsAreAllNamed()
    {
        using var wide = new TinyNet<float>(Device, seed: 10, classes: 5);
        SafeTensors.Save(wide, FilePath());
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath(), classes: 3);
        Assert.That(error.Message, Does.Contain("'fc.weight' is [5, 4] in the file but [3, 4] in the model"));
        Assert.That(error.Message, Does.Contain("'fc.bias' is [5] in the file but [3] in the model"));
    }

    [Test]
    public void MissingAndUnexpectedTensorsAreAllNamed()
    {
        using var source = new TinyNet<float>(Device, seed: 11);
        var extra = Tensor.Zeros<float>([2, 2], Device);
        SafeTensors.Save(source.StateDict().Where(e => e.Name != "bn.running_var").Append(("head.weight", extra)),
            FilePath());
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("(2 problems)"));
        Assert.That(error.Message, Does.Contain("missing: 'bn.running_var' [4]"));
        Assert.That(error.Message, Does.Contain("unexpected: 'head.weight' [2, 2]"));
    }

    [Test]
    public void NumBatchesTrackedIsIgnored()
    {
        using var source = new TinyNet<float>(Device, seed: 12);
        // torchvision stores the counter as an int64 scalar.
        WriteEntries(FilePath(), source.StateDict().Select(e => F32Entry(e.Name, e.Tensor))
            .Append(("bn.num_batches_tracked", "I64", [], BitConverter.GetBytes(100L))));
        using var target = new TinyNet<float>(Device, seed: 13);
        SafeTensors.Load(target, FilePath());
        Assert.That(Bytes(target), Is.EqualTo(Bytes(source)));
    }

    /// <summary>The module's state dict as F32 entries, with <paramref name="poison"/> values written at
    /// (tensor name, index).</summary>
    private static List<(string, string, int[], byte[])> PoisonedF32Entries(Module<float> module,
        params (string Name, int Index, float Value)[] poison) =>
        module.StateDict().Select(e =>
        {
            var values = e.Tensor.ToArray();
            foreach (var (name, index, value) in poison)
                if (name == e.Name) values[index] = value;
            return (e.Name, "F32", e.Tensor.Shape.ToArray(), MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        }).ToList();

    [Test]
    public void NonFiniteTensorsAreRefusedNamingEach()
    {
        using var source = new TinyNet<float>(Device, seed: 14);
        WriteEntries(FilePath(), PoisonedF32Entries(source,
            ("conv.weight", 3, float.NaN), ("bn.running_var", 1, float.PositiveInfinity)));
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("non-finite values in 2 tensors"));
        Assert.That(error.Message, Does.Contain("'conv.weight': 1 NaN of 72 values"));
        Assert.That(error.Message, Does.Contain("'bn.running_var': 1 ±Inf of 4 values"));
        Assert.That(error.Message, Does.Contain("allowNonFinite: true"));
        Assert.That(error.Message, Does.Not.Contain("'fc.weight'"));
    }

    [Test]
    public void NonFiniteTensorsLoadWhenAllowed()
    {
        using var source = new TinyNet<float>(Device, seed: 15);
        var entries = PoisonedF32Entries(source,
            ("conv.weight", 3, float.NaN), ("bn.running_var", 1, float.PositiveInfinity), ("fc.bias", 0, float.NegativeInfinity));
        WriteEntries(FilePath(), entries);
        using var target = new TinyNet<float>(Device, seed: 16);
        SafeTensors.Load(target, FilePath(), allowNonFinite: true);
        Assert.That(Bytes(target), Is.EqualTo(entries.ToDictionary(e => e.Item1, e => e.Item4)));
    }

    [Test]
    public void F64BeyondFloat32RangeIsRefusedForAFloat32Model()
    {
        using var source = new TinyNet<double>(Device, seed: 17);
        WriteEntries(FilePath(), source.StateDict().Select(e =>
        {
            var values = e.Tensor.ToArray();
            if (e.Name == "fc.bias") (values[0], values[2]) = (1e39, -1e39);
            return (e.Name, "F64", e.Tensor.Shape.ToArray(), MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        }));
        var error = AssertRejectedAndUntouched<InvalidDataException>(FilePath());
        Assert.That(error.Message, Does.Contain("non-finite values in 1 tensor;"));
        Assert.That(error.Message, Does.Contain("'fc.bias': 2 F64 beyond float32's range of 3 values"));

        using var wide = new TinyNet<double>(Device, seed: 18);
        SafeTensors.Load(wide, FilePath());
        Assert.That(wide.StateDict().Single(e => e.Name == "fc.bias").Tensor.ToArray()[0], Is.EqualTo(1e39),
            "the same file loads into a float64 model, where the values are finite");
    }

    [Test]
    public void TrainerRefusesToResumeACheckpointWithANaNWeight()
    {
        var random = new Random(19);
        var pixels = new byte[8 * 64];
        random.NextBytes(pixels);
        var data = new Engine.Core.Data.ImageDataset(pixels, [.. Enumerable.Range(0, 8).Select(i => i % 4)], 1, 8, 8, 4,
            "synthetic-19");
        var options = new TrainOptions { Model = "resnet20-a", Epochs = 1, BatchSize = 4, Optimizer = "adam", Seed = 3 };
        string checkpoint = FilePath(Trainer.CheckpointFile);
        using (var saved = new Trainer(Device, options, data, data))
            saved.Save(checkpoint);
        var header = SafeTensors.ReadHeader(checkpoint);
        using (var file = new FileStream(checkpoint, FileMode.Open, FileAccess.Write))
        {
            file.Position = header.DataStart + header.Tensors.Single(t => t.Name == "conv1.weight").Begin + 4;
            file.Write(BitConverter.GetBytes(float.NaN));
        }

        using var resumed = new Trainer(Device, options, data, data);
        var before = Bytes(resumed.Model);
        var error = Assert.Throws<InvalidDataException>(() => resumed.Resume(checkpoint))!;
        Assert.That(error.Message, Does.Contain(checkpoint).And.Contain("non-finite values in 1 tensor;")
            .And.Contain("'conv1.weight': 1 NaN").And.Contain("allowNonFinite: true"));
        Assert.That(Bytes(resumed.Model), Is.EqualTo(before), "the model changed although the resume was refused");
    }

    [Test]
    public void SaveToAMissingDirectoryNamesIt()
    {
        using var model = new TinyNet<float>(Device, seed: 14);
        string missing = Path.Combine(_directory, "no-such-dir");
        var error = Assert.Throws<DirectoryNotFoundException>(
            () => SafeTensors.Save(model, Path.Combine(missing, "model.safetensors")))!;
        Assert.That(error.Message, Does.Contain(missing).And.Contain("does not exist"));
        Assert.That(Directory.GetFileSystemEntries(_directory), Is.Empty);
    }

    [Test]
    public void SuccessfulSaveLeavesOnlyTheTarget()
    {
        using var model = new TinyNet<float>(Device, seed: 15);
        SafeTensors.Save(model, FilePath());
        SafeTensors.Save(model, FilePath());
        Assert.That(Directory.GetFiles(_directory), Is.EqualTo(new[] { FilePath() }));
    }

    [Test]
    public void SaveFailingPartWayLeavesTheExistingFileAndNoTempFile()
    {
        using var model = new TinyNet<float>(Device, seed: 16);
        SafeTensors.Save(model, FilePath());
        byte[] before = File.ReadAllBytes(FilePath());

        var disposed = Tensor.Zeros<float>([3], Device);
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(
            () => SafeTensors.Save(model.StateDict().Append(("late", disposed)), FilePath()));

        Assert.That(File.ReadAllBytes(FilePath()), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(_directory), Is.EqualTo(new[] { FilePath() }));
    }

    [Test]
    public void InvalidTensorNamesAreRejectedBeforeWriting()
    {
        var t = Tensor.Zeros<float>([1], Device);
        Assert.Throws<ArgumentException>(() => SafeTensors.Save([("a", t), ("a", t)], FilePath()));
        Assert.Throws<ArgumentException>(() => SafeTensors.Save([("__metadata__", t)], FilePath()));
        Assert.That(Directory.GetFiles(_directory), Is.Empty);
    }
}
