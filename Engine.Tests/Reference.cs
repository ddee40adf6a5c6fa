// Plain-loop float64 references for the ops, and the float32-vs-reference comparison.
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
