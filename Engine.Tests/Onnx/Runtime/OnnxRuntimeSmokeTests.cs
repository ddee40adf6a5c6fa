// ONNX Runtime loads and runs a model the engine's generated ONNX classes built: the oracle is wired up.
using Engine.Core.Onnx.Proto;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NUnit.Framework;

namespace Engine.Tests.Onnx.Runtime;

public class OnnxRuntimeSmokeTests
{
    [Test]
    public void OnnxRuntimeRunsAReluGraphBuiltWithTheGeneratedClasses()
    {
        var input = new ValueInfoProto { Name = "x", Type = FloatType(2, 3) };
        var output = new ValueInfoProto { Name = "y", Type = FloatType(2, 3) };
        var graph = new GraphProto { Name = "relu" };
        graph.Input.Add(input);
        graph.Output.Add(output);
        graph.Node.Add(new NodeProto { OpType = "Relu", Input = { "x" }, Output = { "y" } });
        var model = new ModelProto { IrVersion = 8, Graph = graph, OpsetImport = { new OperatorSetIdProto { Version = 13 } } };

        using var session = new InferenceSession(model.ToByteArray());
        var x = new DenseTensor<float>(new float[] { -1, 2, -3, 4, -5, 6 }, [2, 3]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("x", x)]);
        Assert.That(results.Single().AsEnumerable<float>().ToArray(), Is.EqualTo(new float[] { 0, 2, 0, 4, 0, 6 }));
    }

    private static TypeProto FloatType(params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } };
    }
}
