// Transposed convolution on every device: float32 against a float64 plain-loop reference (each input element
// spreading its weighted kernel over the output), forward and backward, and float64 gradient checks for the input,
// the weight and the bias, over strides with output padding, asymmetric pads, dilation and groups.
using Engine.Core;
using Engine.Core.Autograd;
using NUnit.Framework;

namespace Engine.Tests.Ops;

public sealed class ConvTransposeTests(string kind) : DeviceFixture(kind)
{
    /// <summary>Input [N, C, H, W], K output channels, kernel R×S, and the transposed convolution's settings.</summary>
    public sealed record Case(int N, int C, int H, int W, int K, int R, int S, int SH, int SW, int PadTop,
        int PadBottom, int PadLeft, int PadRight, int OutPadH, int OutPadW, int DH, int DW, int Groups)
    {
        public int OH => SH * (H - 1) + OutPadH + (R - 1) * DH + 1 - PadTop - PadBottom;
        public int OW => SW * (W - 1) + OutPadW + (S - 1) * DW + 1 - PadLeft - PadRight;
        public int[] WeightShape => [C, K / Groups, R, S];

        public Tensor<TT> Run<TT>(Tensor<TT> x, Tensor<TT> w, Tensor<TT>? b)
            where TT : unmanaged, System.Numerics.IFloatingPointIeee754<TT> =>
            x.ConvTranspose2d(w, b, SH, SW, PadTop, PadBottom, PadLeft, PadRight, OutPadH, OutPadW, DH, DW, Groups);

        /// <summary>y[n, k, h·SH − PadTop + r·DH, w·SW − PadLeft + s·DW] += x[n, c, h, w] · W[c, k mod (K/G), r, s]
        /// for k in c's group, plus the bias.</summary>
        public double[] Reference(double[] x, double[] w, double[] b)
        {
            var y = new double[N * K * OH * OW];
            int perGroupIn = C / Groups, perGroupOut = K / Groups;
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++)
                    for (int i = 0; i < OH * OW; i++)
                        y[(n * K + k) * OH * OW + i] = b[k];
            for (int n = 0; n < N; n++)
                for (int c = 0; c < C; c++)
                    for (int h = 0; h < H; h++)
                        for (int v = 0; v < W; v++)
                            for (int j = 0; j < perGroupOut; j++)
                                for (int r = 0; r < R; r++)
                                    for (int s = 0; s < S; s++)
                                    {
                                        int oh = h * SH - PadTop + r * DH, ow = v * SW - PadLeft + s * DW;
                                        if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                                        int k = c / perGroupIn * perGroupOut + j;
                                        y[((n * K + k) * OH + oh) * OW + ow] +=
                                            x[((n * C + c) * H + h) * W + v] * w[((c * perGroupOut + j) * R + r) * S + s];
                                    }
            return y;
        }
    }

    public static IEnumerable<Case> Cases() =>
    [
        new(2, 3, 4, 3, 2, 3, 3, 2, 2, 1, 0, 1, 1, 1, 0, 1, 1, 1),
        new(1, 4, 3, 4, 6, 2, 3, 1, 2, 0, 1, 2, 0, 0, 1, 2, 1, 2),
        new(1, 2, 3, 3, 2, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 1, 1, 1),
    ];

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheReferenceAndPassesGradientChecks(Case p)
    {
        var x = Normal<float>([p.N, p.C, p.H, p.W], 1);
        var w = Normal<float>(p.WeightShape, 2);
        var b = Normal<float>([p.K], 3);
        var y = p.Run(x, w, b);
        Assert.That(y.Shape, Is.EqualTo(new Shape(p.N, p.K, p.OH, p.OW)));
        Reference.AssertClose(p.Reference(Reference.ToDouble(x.ToArray()), Reference.ToDouble(w.ToArray()),
            Reference.ToDouble(b.ToArray())), Reference.ToDouble(y.ToArray()), 1e-5, 1e-5, "conv-transpose2d");

        var xd = Variable([p.N, p.C, p.H, p.W], 4);
        var wd = Variable(p.WeightShape, 5);
        var bd = Variable([p.K], 6);
        GradCheck.Run(() => p.Run(xd, wd, bd), [xd, wd, bd],
            new GradCheckOptions { InputNames = ["x", "weight", "bias"] }).EnsurePassed();
    }

    [Test]
    public void OutputPaddingAtLeastTheStrideIsRefused()
    {
        var x = Normal<float>([1, 2, 3, 3], 7);
        var w = Normal<float>([2, 2, 3, 3], 8);
        var error = Assert.Throws<ArgumentException>(() =>
            x.ConvTranspose2d(w, null, 2, 2, 0, 0, 0, 0, 2, 0, 1, 1, 1))!;
        Assert.That(error.Message, Does.Contain("output padding 2x0 must be non-negative and smaller than the stride 2x2"));
    }
}
