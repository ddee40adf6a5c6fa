// The machine's float32 FMA peak as the CPU backend's threads find it now: every thread runs independent chains of
// fused multiply-adds, 512 bits wide with AVX-512 (256 with AVX2+FMA), at the same time. `kernels --conv-shapes`
// measures it before and after its table, so each pass's share of the peak comes from the same minutes as the pass:
// on shared virtual machines the whole host's speed moves by a quarter from one hour to the next.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Bench.Benchmarks;

internal static class FmaPeak
{
    /// <summary>Whether this CPU has the fused multiply-adds the measurement runs (AVX-512F, or AVX2 with FMA).
    /// </summary>
    public static bool IsSupported => Avx512F.IsSupported || Fma.IsSupported;

    /// <summary>Independent accumulators a thread keeps: more than an FMA's latency times the FMA pipes (4 × 2 on
    /// the cores measured), so the chains never wait on each other.</summary>
    private const int Chains = 12;

    /// <summary>Loop iterations a thread runs per run: 6.4 GFLOP with AVX-512, about 30 ms on a core of the
    /// development machine.</summary>
    private const long Iterations = 1 << 24;

    /// <summary>GFLOP/s of <paramref name="threads"/> threads running FMA chains at once: the best of three runs (a
    /// peak is what the cores can do, so a run slowed by another process does not count). Each run starts every
    /// thread at a barrier and ends when the last one finishes.</summary>
    public static double Measure(int threads)
    {
        if (!IsSupported) throw new PlatformNotSupportedException("The FMA peak needs AVX-512F or AVX2 with FMA.");
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Chain(Iterations / 64);   // compiled and tiered up before any timed run
        double best = 0;
        for (int run = 0; run < 3; run++) best = Math.Max(best, Run(threads));
        return best;
    }

    private static double Run(int threads)
    {
        using var start = new Barrier(threads + 1);
        var workers = new Thread[threads];
        var sink = new float[threads];
        for (int t = 0; t < threads; t++)
        {
            int index = t;
            workers[t] = new Thread(() =>
            {
                start.SignalAndWait();
                sink[index] = Chain(Iterations);
            }) { IsBackground = true };
            workers[t].Start();
        }
        start.SignalAndWait();
        long begin = Stopwatch.GetTimestamp();
        foreach (var worker in workers) worker.Join();
        double seconds = Stopwatch.GetElapsedTime(begin).TotalSeconds;
        GC.KeepAlive(sink);
        int lanes = Avx512F.IsSupported ? Vector512<float>.Count : Vector256<float>.Count;
        return threads * Iterations * Chains * lanes * 2.0 / seconds / 1e9;
    }

    /// <summary>Chains FMAs a = a · m + c for <paramref name="iterations"/> rounds of every accumulator; returns a
    /// lane of their sum, so the JIT keeps the work.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chain(long iterations) =>
        Avx512F.IsSupported ? Chain512(iterations) : Chain256(iterations);

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chain512(long iterations)
    {
        var m = Vector512.Create(0.999999f);
        var c = Vector512.Create(1e-6f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
            a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, c);
            a1 = Avx512F.FusedMultiplyAdd(a1, m, c);
            a2 = Avx512F.FusedMultiplyAdd(a2, m, c);
            a3 = Avx512F.FusedMultiplyAdd(a3, m, c);
            a4 = Avx512F.FusedMultiplyAdd(a4, m, c);
            a5 = Avx512F.FusedMultiplyAdd(a5, m, c);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, c);
            a7 = Avx512F.FusedMultiplyAdd(a7, m, c);
            a8 = Avx512F.FusedMultiplyAdd(a8, m, c);
            a9 = Avx512F.FusedMultiplyAdd(a9, m, c);
            a10 = Avx512F.FusedMultiplyAdd(a10, m, c);
            a11 = Avx512F.FusedMultiplyAdd(a11, m, c);
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).ToScalar();
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chain256(long iterations)
    {
        var m = Vector256.Create(0.999999f);
        var c = Vector256.Create(1e-6f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
            a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Fma.MultiplyAdd(a0, m, c);
            a1 = Fma.MultiplyAdd(a1, m, c);
            a2 = Fma.MultiplyAdd(a2, m, c);
            a3 = Fma.MultiplyAdd(a3, m, c);
            a4 = Fma.MultiplyAdd(a4, m, c);
            a5 = Fma.MultiplyAdd(a5, m, c);
            a6 = Fma.MultiplyAdd(a6, m, c);
            a7 = Fma.MultiplyAdd(a7, m, c);
            a8 = Fma.MultiplyAdd(a8, m, c);
            a9 = Fma.MultiplyAdd(a9, m, c);
            a10 = Fma.MultiplyAdd(a10, m, c);
            a11 = Fma.MultiplyAdd(a11, m, c);
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).ToScalar();
    }
}
