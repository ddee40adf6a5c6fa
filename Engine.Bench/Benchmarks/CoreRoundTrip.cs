// How far apart two of this machine's cores are: the time a cache line takes from one thread to another and back,
// two threads handing a counter to and fro. On the shared 2-core virtual machines we measure on, the host runs the
// two virtual CPUs on cores that share a cache (about 0.1 µs) or on cores that do not (about 0.4 µs), and moves them
// from one placement to the other within seconds; in the far one, passes whose threads read what the other thread
// wrote run up to a quarter slower while the FMA peak stays where it was (docs/performance.md has the numbers).
// `kernels --conv-shapes` prints it before and after its table, beside the peak, so a table says which it ran in.
using System.Diagnostics;

namespace Engine.Bench.Benchmarks;

internal static class CoreRoundTrip
{
    /// <summary>Round trips a run times (about 2 ms near, 8 ms far).</summary>
    private const int RoundTrips = 20_000;

    /// <summary>Nanoseconds a cache line takes from one thread to another and back: the median of three runs of
    /// RoundTrips; null on a machine with one core, where two spinning threads would share it.</summary>
    public static double? Measure()
    {
        if (Environment.ProcessorCount < 2) return null;
        var runs = new double[3];
        for (int run = 0; run < runs.Length; run++) runs[run] = Run();
        Array.Sort(runs);
        return runs[1];
    }

    /// <summary>One run: this thread writes odd counts, the partner answers each with the next even one, the counter
    /// alone on its cache line; both spin without pausing, so the time is the line's. The first round trip, which
    /// waits for the partner to start, is not timed.</summary>
    private static double Run()
    {
        var line = new long[3 * 8];   // the counter at [8], with a cache line of padding on each side
        var partner = new Thread(() =>
        {
            for (long count = 1; count <= 2 * RoundTrips + 1; count += 2)
            {
                while (Volatile.Read(ref line[8]) != count) { }
                Volatile.Write(ref line[8], count + 1);
            }
        }) { IsBackground = true };
        partner.Start();
        Volatile.Write(ref line[8], 1);
        while (Volatile.Read(ref line[8]) != 2) { }
        long start = Stopwatch.GetTimestamp();
        for (long count = 3; count <= 2 * RoundTrips + 1; count += 2)
        {
            Volatile.Write(ref line[8], count);
            while (Volatile.Read(ref line[8]) != count + 1) { }
        }
        double nanoseconds = Stopwatch.GetElapsedTime(start).TotalNanoseconds / RoundTrips;
        partner.Join();
        return nanoseconds;
    }
}
