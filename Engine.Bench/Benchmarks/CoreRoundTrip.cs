// How far apart two of this machine's cores are: the time a cache line takes from one thread to another and back,
// two threads handing a counter to and fro. On the shared 2-core virtual machines we measure on, the host runs the
// two virtual CPUs on cores that share a cache (about 0.1 µs) or on cores that do not (about 0.4 µs), and moves them
// from one placement to the other within seconds; in the far one, passes whose threads read what the other thread
// wrote run up to a third slower while the FMA peak stays where it was (docs/performance.md has the numbers).
// `kernels --conv-shapes` prints it before and after its table, beside the peak, so a table says which it ran in.
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Engine.Bench.Benchmarks;

internal static class CoreRoundTrip
{
    /// <summary>Round trips a run times (about 1 ms near, 8 ms far), unless Budget ends it first.</summary>
    private const int RoundTrips = 20_000;

    /// <summary>The longest a run takes, looked at every 64 round trips: where the two threads must share a core, a
    /// round trip waits for the scheduler.</summary>
    private static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(100);

    /// <summary>Nanoseconds a cache line takes from one thread to another and back: the median of three runs; null on
    /// a machine with one core.</summary>
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
    /// waits for the partner to start, is not timed; −1 tells the partner to stop.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double Run()
    {
        var line = new long[3 * 8];   // the counter at [8], with a cache line of padding on each side
        var partner = new Thread(() =>
        {
            for (long count = 1; Await(line, count) > 0; count += 2) Volatile.Write(ref line[8], count + 1);
        }) { IsBackground = true };
        partner.Start();
        Volatile.Write(ref line[8], 1);
        Await(line, 2);
        long start = Stopwatch.GetTimestamp(), count = 3;
        int trips = 0;
        for (; trips < RoundTrips && (trips % 64 != 0 || Stopwatch.GetElapsedTime(start) < Budget); trips++)
        {
            Volatile.Write(ref line[8], count);
            Await(line, count + 1);
            count += 2;
        }
        double nanoseconds = Stopwatch.GetElapsedTime(start).TotalNanoseconds / trips;
        Volatile.Write(ref line[8], -1);
        partner.Join();
        return nanoseconds;
    }

    /// <summary>Spins until the counter is <paramref name="value"/> or −1 and returns it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static long Await(long[] line, long value)
    {
        while (true)
        {
            long seen = Volatile.Read(ref line[8]);
            if (seen == value || seen < 0) return seen;
        }
    }
}
