// The CPU backend's blocked memory-bound passes give the same bits on 1, 2 and 3 threads: batch-norm forward and
// backward with few channels (so a channel spans many tasks) and with one task per channel, max-pooling forward and
// backward, and the multi-tensor SGD and Adam (AMSGrad) steps. Max-pool backward rejects an argmax outside its plane,
// naming the first, wherever it lies in the plane (the checks' vector body or tail).
using Engine.Kernels;
using Engine.Kernels.Cpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class CpuMemoryBoundThreadCountTests
{
    [Test]
    public void BlockedPassesGiveTheSameBitsOnEveryThreadCount()
    {
        var reference = Results(threads: 1);
        foreach (int threads in new[] { 2, 3 })
        {
            var results = Results(threads);
            Assert.That(results.Count, Is.EqualTo(reference.Count));
            for (int i = 0; i < results.Count; i++)
                Assert.That(results[i].Values, Is.EqualTo(reference[i].Values), $"{results[i].Name}, {threads} threads");
        }
    }

    [Test]
    public void MaxPoolBackwardNamesTheFirstArgmaxOutsideItsPlane()
    {
        // 3 planes of 5x5 → 3x3 (9 outputs: a vector of 8 and a tail of 1 per plane).
        var g = PoolGeometry.Square(1, 3, 5, 5, 3, 2, 1).Validated();
        using var backend = new CpuBackend(2);
        using var dy = backend.Allocate<float>(g.OutputLength);
        using var dx = backend.Allocate<float>(g.InputLength);
        using var argmax = backend.Allocate<int>(g.OutputLength);
        dy.CopyFromHost(Enumerable.Repeat(1f, (int)g.OutputLength).ToArray());
        foreach (var (bad, value) in new[] { (26, 25), (17, -1), (3, 25), (20, int.MinValue) })
        {
            var indices = new int[g.OutputLength]; // all 0: inside
            indices[bad] = value;
            if (bad != 26) indices[26] = 30; // a later one in another plane's tail is not the first
            argmax.CopyFromHost(indices);
            var error = Assert.Throws<ArgumentException>(() => backend.MaxPoolBackward(g, dy, argmax, dx))!;
            Assert.That(error.Message, Does.Contain($"argmax[{bad}] = {value} is outside the 5x5 plane"));
        }
    }

    private static List<(string Name, float[] Values)> Results(int threads)
    {
        using var backend = new CpuBackend(threads);
        var owned = new List<DeviceBuffer<float>>();
        DeviceBuffer<float> Buffer(long length, int seed)
        {
            var random = new Random(seed);
            var host = Enumerable.Range(0, (int)length).Select(_ => (float)(random.NextDouble() * 4 - 1)).ToArray();
            var buffer = backend.Allocate<float>(length);
            buffer.CopyFromHost(host);
            owned.Add(buffer);
            return buffer;
        }
        float[] Read(DeviceBuffer<float> buffer)
        {
            var host = new float[buffer.Length];
            buffer.CopyToHost(host);
            return host;
        }

        var results = new List<(string, float[])>();
        try
        {
            // Two channels of 70 planes of 900 (several blocks each), one channel of 2 planes of 40000 (pieces), and
            // nine channels (one task each).
            foreach (var (n, c, spatial) in new[] { (70, 2, 900), (2, 1, 40000), (6, 9, 300) })
            {
                long length = (long)n * c * spatial;
                var (x, dy, residual) = (Buffer(length, 1), Buffer(length, 2), Buffer(length, 3));
                var (gamma, beta, runMean, runVar) = (Buffer(c, 4), Buffer(c, 5), Buffer(c, 6), Buffer(c, 7));
                var (y, mean, invStd) = (Buffer(length, 0), Buffer(c, 0), Buffer(c, 0));
                var (dx, dgamma, dbeta, dr) = (Buffer(length, 0), Buffer(c, 0), Buffer(c, 0), Buffer(length, 0));
                backend.BatchNormForwardTraining(n, c, spatial, x, gamma, beta, runMean, runVar, 0.1, 1e-5, y, mean,
                    invStd, relu: true, residual: residual);
                backend.BatchNormBackward(n, c, spatial, x, dy, gamma, mean, invStd, batchStatistics: true, dx,
                    dgamma, dbeta, reluOutput: y, residualGradient: dr);
                foreach (var (name, buffer) in new[] { ("y", y), ("mean", mean), ("invStd", invStd),
                             ("running mean", runMean), ("running var", runVar), ("dx", dx), ("dgamma", dgamma),
                             ("dbeta", dbeta), ("residual gradient", dr) })
                    results.Add(($"batch-norm {n}x{c}x{spatial} {name}", Read(buffer)));
            }

            // Max-pooling: 6 planes of 57x61 (one task), and 40 planes of 70x70 (tasks of 6 planes and a last of
            // 4; every other plane starts off a 32-byte boundary, so dx's streamed stores have a head and a tail).
            foreach (var g in new[] { PoolGeometry.Square(3, 2, 57, 61, 3, 2, 1).Validated(),
                         PoolGeometry.Square(4, 10, 70, 70, 3, 2, 1).Validated() })
            {
                var pooled = Buffer(g.OutputLength, 0);
                var argmax = backend.Allocate<int>(g.OutputLength);
                backend.MaxPoolForward(g, Buffer(g.InputLength, 8), pooled, argmax);
                var indices = new int[g.OutputLength];
                argmax.CopyToHost(indices);
                var pooledGrad = Buffer(g.OutputLength, 9);
                var poolDx = Buffer(g.InputLength, 10); // overwritten
                backend.MaxPoolBackward(g, pooledGrad, argmax, poolDx);
                argmax.Dispose();
                results.Add(($"max-pool {g.Channels} y", Read(pooled)));
                results.Add(($"max-pool {g.Channels} argmax", indices.Select(i => (float)i).ToArray()));
                results.Add(($"max-pool {g.Channels} dx", Read(poolDx)));
            }

            int[] lengths = [3, 40000, 70001, 17];
            var parameters = lengths.Select((l, i) => Buffer(l, 20 + i)).ToArray();
            var grads = lengths.Select((l, i) => Buffer(l, 30 + i)).ToArray();
            var momenta = lengths.Select((l, i) => Buffer(l, 40 + i)).ToArray();
            backend.SgdSteps(new SgdParameters(0.1, Momentum: 0.9, WeightDecay: 1e-3).Validated(), parameters, grads,
                momenta, new bool[lengths.Length]);
            results.AddRange(parameters.Select((b, i) => ($"SGD parameter {i}", Read(b))));

            var secondMoments = lengths.Select((l, i) => Buffer(l, 50 + i)).ToArray();
            var maxima = lengths.Select((l, i) => Buffer(l, 60 + i)).ToArray();
            foreach (var buffer in secondMoments.Concat(maxima)) backend.Relu(buffer, buffer); // moments ≥ 0
            backend.AdamSteps(new AdamParameters(0.01, WeightDecay: 1e-2, Amsgrad: true), [1, 5, 2, 9], parameters,
                grads, momenta, secondMoments, maxima);
            results.AddRange(parameters.Select((b, i) => ($"Adam parameter {i}", Read(b))));
            results.AddRange(maxima.Select((b, i) => ($"Adam maximum {i}", Read(b))));
            return results;
        }
        finally
        {
            foreach (var buffer in owned) buffer.Dispose();
        }
    }
}
