// Plain-loop float64 references for the ops, and the float32-vs-reference comparison.
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests;

public static class Reference
{
    public static double[] Map(double[] x, Func<double, double> f) => x.Select(f).ToArray();

    public static double[] Zip(double[] a, double[] b, Func<double, double, double> f)
    {
        var y = new double[a.Length];
        for (int i = 0; i < y.Length; i++) y[i] = f(a[i], b[i]);
        return y;
    }

    public static double Sum(double[] x)
    {
        double sum = 0;
        foreach (double v in x) sum += v;
        return sum;
    }

    public static double[] ToDouble(float[] x) => x.Select(v => (double)v).ToArray();

    public static float[] ToFloat(double[] x) => x.Select(v => (float)v).ToArray();

    /// <summary><paramref name="count"/> random values in [−2, 2), three decimals, never exactly zero.</summary>
    public static double[] RandomValues(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => Math.Round(random.NextDouble() * 4 - 2, 3) + 0.001).ToArray();

    /// <summary>A float buffer on <paramref name="backend"/> holding <paramref name="values"/>, rounded.</summary>
    public static DeviceBuffer<float> UploadFloat(Backend backend, double[] values)
    {
        var buffer = backend.Allocate<float>(values.Length);
        buffer.CopyFromHost(ToFloat(values));
        return buffer;
    }

    /// <summary>The float contents of <paramref name="buffer"/>.</summary>
    public static float[] DownloadFloat(DeviceBuffer<float> buffer)
    {
        var values = new float[buffer.Length];
        buffer.CopyToHost(values);
        return values;
    }

    /// <summary>The three convolution passes of <paramref name="g"/> on <paramref name="backend"/>, on float
    /// copies of the inputs: y = conv(x, w) + bias (+ residual, then ReLU when asked), dx from dy, dw from x and
    /// dy.</summary>
    public static (float[] Y, float[] DX, float[] DW) ConvPasses(Backend backend, ConvGeometry g, double[] x,
        double[] weights, double[]? bias, double[] dy, double[]? residual = null, bool relu = false)
    {
        using var dx = UploadFloat(backend, x);
        using var dw = UploadFloat(backend, weights);
        using var db = bias is null ? null : UploadFloat(backend, bias);
        using var ddy = UploadFloat(backend, dy);
        using var dr = residual is null ? null : UploadFloat(backend, residual);
        using var y = backend.Allocate<float>(dy.Length);
        using var gradX = backend.Allocate<float>(x.Length);
        using var gradW = backend.Allocate<float>(weights.Length);
        backend.Conv2dForward(g, dx, dw, db, y, dr, relu);
        backend.Conv2dBackwardData(g, ddy, dw, gradX);
        backend.Conv2dBackwardWeight(g, dx, ddy, gradW);
        return (DownloadFloat(y), DownloadFloat(gradX), DownloadFloat(gradW));
    }

    /// <summary>Asserts |actual − expected| ≤ atol + rtol·|expected| element by element, naming the worst.</summary>
    public static void AssertClose(double[] expected, double[] actual, double atol, double rtol, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), $"{what}: length");
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double excess = Math.Abs(actual[i] - expected[i]) - (atol + rtol * Math.Abs(expected[i]));
            if (double.IsNaN(actual[i]) || excess > worstExcess)
            {
                worst = i;
                worstExcess = double.IsNaN(actual[i]) ? double.PositiveInfinity : excess;
            }
        }
        if (worst >= 0)
            Assert.Fail($"{what}: element {worst} is {actual[worst]:G9}, expected {expected[worst]:G9} " +
                        $"(atol {atol}, rtol {rtol}).");
    }
}

/// <summary>Plain-loop float64 references for the structured ops (NCHW, row-major).</summary>
public static class ReferenceOps
{
    public sealed record Conv(int N, int C, int H, int W, int K, int R, int S, int StrideH, int StrideW, int PadTop,
        int PadBottom, int PadLeft, int PadRight, int DilationH = 1, int DilationW = 1, int Groups = 1)
    {
        public int OH => (H + PadTop + PadBottom - ((R - 1) * DilationH + 1)) / StrideH + 1;
        public int OW => (W + PadLeft + PadRight - ((S - 1) * DilationW + 1)) / StrideW + 1;
        public int[] InputShape => [N, C, H, W];
        public int[] WeightShape => [K, C / Groups, R, S];
        public int[] OutputShape => [N, K, OH, OW];

        public override string ToString() =>
            $"N{N} C{C} {H}x{W} K{K} {R}x{S} stride {StrideH},{StrideW} pad {PadTop},{PadBottom},{PadLeft},{PadRight}" +
            (DilationH == 1 && DilationW == 1 ? "" : $" dilation {DilationH},{DilationW}") +
            (Groups == 1 ? "" : $" groups {Groups}");

        /// <summary>Calls f(inputIndex, weightIndex, outputIndex) for every in-range tap: output channel k reads the
        /// C/Groups input channels of its group, tap (r, s) at row oh·StrideH − PadTop + r·DilationH.</summary>
        public void ForEachTap(Action<int, int, int> f)
        {
            int groupC = C / Groups, groupK = K / Groups;
            for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++)
            for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
            for (int c = 0; c < groupC; c++)
            for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
            {
                int h = oh * StrideH - PadTop + r * DilationH, w = ow * StrideW - PadLeft + s * DilationW;
                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                int channel = k / groupK * groupC + c;
                f(((n * C + channel) * H + h) * W + w, ((k * groupC + c) * R + r) * S + s,
                    ((n * K + k) * OH + oh) * OW + ow);
            }
        }
    }

    public static double[] ConvForward(Conv g, double[] x, double[] w, double[]? bias)
    {
        var y = new double[g.N * g.K * g.OH * g.OW];
        if (bias is not null)
            for (int i = 0; i < y.Length; i++) y[i] = bias[i / (g.OH * g.OW) % g.K];
        g.ForEachTap((xi, wi, yi) => y[yi] += x[xi] * w[wi]);
        return y;
    }

    public static double[] ConvBackwardData(Conv g, double[] dy, double[] w)
    {
        var dx = new double[g.N * g.C * g.H * g.W];
        g.ForEachTap((xi, wi, yi) => dx[xi] += dy[yi] * w[wi]);
        return dx;
    }

    public static double[] ConvBackwardWeight(Conv g, double[] x, double[] dy)
    {
        var dw = new double[g.K * (g.C / g.Groups) * g.R * g.S];
        g.ForEachTap((xi, wi, yi) => dw[wi] += dy[yi] * x[xi]);
        return dw;
    }

    /// <summary>C = op(A)·op(B), A stored m×k (k×m if transposed), B k×n (n×k if transposed).</summary>
    public static double[] MatMul(bool transposeA, bool transposeB, int m, int n, int k, double[] a, double[] b)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double sum = 0;
            for (int p = 0; p < k; p++)
                sum += (transposeA ? a[p * m + i] : a[i * k + p]) * (transposeB ? b[j * k + p] : b[p * n + j]);
            c[i * n + j] = sum;
        }
        return c;
    }
}

/// <summary>Plain-loop float64 references for batch-norm, pooling, loss, shortcut and SGD.</summary>
public static class ReferenceLayers
{
    /// <summary>Training-mode batch norm over [N, C, HW]: y, batch mean, biased variance.</summary>
    public static (double[] Y, double[] Mean, double[] Var) BatchNormTrain(int n, int c, int hw, double[] x,
        double[] gamma, double[] beta, double eps)
    {
        var mean = new double[c];
        var variance = new double[c];
        int m = n * hw;
        for (int ch = 0; ch < c; ch++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) for (int p = 0; p < hw; p++) sum += x[(i * c + ch) * hw + p];
            mean[ch] = sum / m;
            double sq = 0;
            for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++)
            {
                double d = x[(i * c + ch) * hw + p] - mean[ch];
                sq += d * d;
            }
            variance[ch] = sq / m;
        }
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int ch = i / hw % c;
            y[i] = (x[i] - mean[ch]) / Math.Sqrt(variance[ch] + eps) * gamma[ch] + beta[ch];
        }
        return (y, mean, variance);
    }

    public static (double[] Y, int[] Argmax) MaxPool(int n, int c, int h, int w, int k, int s, int p, double[] x)
    {
        int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
        var y = new double[n * c * oh * ow];
        var argmax = new int[y.Length];
        for (int plane = 0; plane < n * c; plane++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        {
            double best = double.NegativeInfinity;
            int at = -1;
            for (int r = 0; r < k; r++)
            for (int q = 0; q < k; q++)
            {
                int hh = i * s - p + r, ww = j * s - p + q;
                if (hh < 0 || hh >= h || ww < 0 || ww >= w) continue;
                double v = x[plane * h * w + hh * w + ww];
                if (v > best) { best = v; at = hh * w + ww; }
            }
            int o = (plane * oh + i) * ow + j;
            y[o] = best;
            argmax[o] = at;
        }
        return (y, argmax);
    }

    /// <summary>Mean cross-entropy and its gradient with respect to the logits.</summary>
    public static (double Loss, double[] Grad) CrossEntropy(int n, int classes, double[] logits, int[] labels)
    {
        double loss = 0;
        var grad = new double[logits.Length];
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < classes; j++) max = Math.Max(max, logits[i * classes + j]);
            double sum = 0;
            for (int j = 0; j < classes; j++) sum += Math.Exp(logits[i * classes + j] - max);
            loss += Math.Log(sum) + max - logits[i * classes + labels[i]];
            for (int j = 0; j < classes; j++)
                grad[i * classes + j] = (Math.Exp(logits[i * classes + j] - max) / sum - (j == labels[i] ? 1 : 0)) / n;
        }
        return (loss / n, grad);
    }

    public static double[] Shortcut(int n, int c, int h, int w, int k, int stride, int padFront, double[] x)
    {
        int oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1;
        var y = new double[n * k * oh * ow];
        for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
        for (int a = 0; a < oh; a++)
        for (int b = 0; b < ow; b++)
            y[((i * k + ch + padFront) * oh + a) * ow + b] = x[((i * c + ch) * h + a * stride) * w + b * stride];
        return y;
    }
}
