// Reading and writing ONNX tensors: ONNX's own test data read back as the numbers it states, a round trip, and the
// ways a tensor can be corrupt, each refused with its name.
using Engine.Core.Onnx;
using Engine.Core.Onnx.Proto;
using Google.Protobuf;
using NUnit.Framework;
using DataType = Engine.Core.Onnx.Proto.TensorProto.Types.DataType;

namespace Engine.Tests.Onnx;

public class OnnxTensorsTests
{
    private const string NodeTests = "/usr/share/libonnx-testdata/data/node";

    [Test]
    public void ReluTestDataReadsAsInputAndItsRectifiedOutput()
    {
        string folder = Path.Combine(NodeTests, "test_relu", "test_data_set_0");
        if (!Directory.Exists(folder)) Assert.Ignore($"ONNX's test data is not installed ({folder}; apt-get install libonnx-testdata).");
        var x = OnnxTensors.Read(TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(folder, "input_0.pb"))), folder);
        var y = OnnxTensors.Read(TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(folder, "output_0.pb"))), folder);
        Assert.That(x.Dims, Is.EqualTo(y.Dims));
        Assert.That(x.Values.Count(v => v < 0), Is.GreaterThan(0));
        Assert.That(y.Values, Is.EqualTo(x.Values.Select(v => Math.Max(v, 0)).ToArray()));
    }

    [TestCase(DataType.Float)]
    [TestCase(DataType.Double)]
    [TestCase(DataType.Int64)]
    public void CreatedTensorsReadBackExactly(DataType type)
    {
        double[] values = [1.5, -2, 3e7, 0, -0.25, 42];
        if (type == DataType.Int64) values = values.Select(v => Math.Round(v)).ToArray();
        var read = OnnxTensors.Read(OnnxTensors.Create<double>("t", type, [2, 3], values), null);
        Assert.That(read.Dims, Is.EqualTo(new long[] { 2, 3 }));
        Assert.That(read.Values, Is.EqualTo(values));
    }

    [Test]
    public void ShortRawDataIsRefusedWithTheTensorsName()
    {
        var tensor = OnnxTensors.Create<float>("conv1.weight", DataType.Float, [2, 2], [1f, 2f, 3f, 4f]);
        tensor.RawData = ByteString.CopyFrom(tensor.RawData.Span[..12]);
        var e = Assert.Throws<InvalidDataException>(() => OnnxTensors.Read(tensor, null));
        Assert.That(e!.Message, Does.Contain("conv1.weight").And.Contain("12 bytes").And.Contain("need 16"));
    }

    [Test]
    public void MissingOrEscapingExternalDataIsRefused()
    {
        string folder = Directory.CreateTempSubdirectory("onnx-external").FullName;
        try
        {
            var tensor = new TensorProto { Name = "fc.weight", DataType = (int)DataType.Float, DataLocation = TensorProto.Types.DataLocation.External };
            tensor.Dims.Add(4);
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights.bin" });
            Assert.That(Assert.Throws<InvalidDataException>(() => OnnxTensors.Read(tensor, folder))!.Message,
                Does.Contain("fc.weight").And.Contain("does not exist"));
            File.WriteAllBytes(Path.Combine(folder, "weights.bin"), new byte[8]);
            Assert.That(Assert.Throws<InvalidDataException>(() => OnnxTensors.Read(tensor, folder))!.Message,
                Does.Contain("8 bytes").And.Contain("need 16"));
            File.WriteAllBytes(Path.Combine(folder, "weights.bin"), new byte[16]);
            Assert.That(OnnxTensors.Read(tensor, folder).Values, Is.EqualTo(new double[4]));
            tensor.ExternalData[0].Value = "../escape.bin";
            Assert.That(Assert.Throws<InvalidDataException>(() => OnnxTensors.Read(tensor, folder))!.Message,
                Does.Contain("leaves the model's folder"));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }
}
