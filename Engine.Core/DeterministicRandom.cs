// DeterministicRandom: a small counter-based generator (SplitMix64, Steele, Lea & Flood 2014) keyed by a tuple of
// integers, e.g. (seed, stream, epoch, sample). Every random number the engine draws — initial weights, the data
// pipeline's splits, orders and augmentations, GradCheck's weights and directions — comes from a generator keyed by
// what it is for, so it depends only on that key: not on thread timing, on which epochs ran before, or on the .NET
// version (System.Random's seeded algorithm is not promised to stay fixed).
namespace Engine.Core;

/// <summary>What a generator is used for; part of its key, so different uses never share a sequence.</summary>
internal enum RandomStream
{
    Split = 1,
    Order = 2,
    Augmentation = 3,
    Tensor = 4,
    GradCheck = 5,
}

internal struct DeterministicRandom
{
    private const ulong GoldenGamma = 0x9E3779B97F4A7C15;
    private ulong _state;

    /// <summary>A generator whose sequence is a function of <paramref name="key"/> alone.</summary>
    public DeterministicRandom(params ReadOnlySpan<long> key)
    {
        foreach (long part in key)
            _state = Mix((_state + GoldenGamma) ^ (ulong)part);
    }

    public ulong NextUInt64()
    {
        _state += GoldenGamma;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, bound): the high word of a 64×64-bit product (bias below bound / 2⁶⁴).</summary>
    public int NextInt(int bound) => (int)Math.BigMul(NextUInt64(), (ulong)bound, out _);

    public bool NextBool() => (NextUInt64() >> 63) != 0;

    /// <summary>Uniform in [0, 1): the top 53 bits of the next word, scaled.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A standard normal sample by Box–Muller (the cosine branch); 1 − u is in (0, 1], so the log is
    /// finite.</summary>
    public double NextNormal()
    {
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>A uniformly random permutation of 0..count−1 (Fisher–Yates).</summary>
    public int[] Permutation(int count)
    {
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        for (int i = count - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
