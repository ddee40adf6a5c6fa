// The ranks' side of the MPI tests: `Engine.Tests --mpi SCENARIO [options]`, started by mpirun (MpiJob launches
// it; see MpiCommunicatorTests). Each rank checks its own results bit for bit against the rank-order sums it
// recomputes from every rank's seeded data, prints one line, and exits 0, or 1 with the first mismatch.
//   collectives [--reduction ordered|library] [--chunk N]   sums, averages, broadcasts (float and double, span and
//                                                          tensor, several lengths), barrier; prints a digest of
//                                                          every result, so two runs can be compared bit for bit
//   dying                                                  the last rank exits (status 3) before an all-reduce
//   hanging [--timeout S]                                  the last rank sleeps instead of joining an all-reduce
//   timing [--reduction R] N...                            median all-reduce time of N floats (rank 0 prints it)
//   buckets                                                ResNet-20 A's gradients with synchronised batch-norm,
//                                                          averaged in 64 KiB buckets during backward and after it:
//                                                          the same bits, and the rank-order average of every rank's
//                                                          gradients recomputed here
//   epochs IMAGES BATCH EPOCHS [--no-overlap] [--bucket-kib K]
//                                                          data-parallel ResNet-20 A on IMAGES synthetic 3x32x32
//                                                          images: rank 0 prints each epoch's seconds and the
//                                                          gradient all-reduce's median exposed and hidden time
//                                                          per step and bytes per step
using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Engine.Core;
using Engine.Core.Distributed;

namespace Engine.Tests.Distributed;

internal static class MpiScenarios
{
    public const string Usage =
        "usage: Engine.Tests --mpi collectives [--reduction ordered|library] [--chunk N] | dying | hanging [--timeout S] | " +
        "timing [--reduction ordered|library] N... | buckets | epochs IMAGES BATCH EPOCHS [--no-overlap] [--bucket-kib K]";

    /// <summary>Exit status of the rank that leaves on purpose in the dying scenario.</summary>
    public const int DyingExitCode = 3;

    public static int Run(string[] args)
    {
        var reduction = MpiReduction.RankOrdered;
        int? chunk = null;
        double timeoutSeconds = 60;
        bool overlap = true;
        long bucketBytes = Engine.Core.Distributed.GradientBuckets<float>.DefaultBucketBytes;
        var numbers = new List<int>();
        if (args.Length == 0) return BadArgument("no scenario given.");
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--reduction" when i + 1 < args.Length:
                    reduction = args[++i] switch
                    {
                        "ordered" => MpiReduction.RankOrdered,
                        "library" => MpiReduction.Library,
                        _ => (MpiReduction)(-1),
                    };
                    if (!Enum.IsDefined(reduction)) return BadArgument($"unknown reduction '{args[i]}'.");
                    break;
                case "--chunk" when i + 1 < args.Length && int.TryParse(args[i + 1], out int c) && c > 0:
                    chunk = c;
                    i++;
                    break;
                case "--no-overlap":
                    overlap = false;
                    break;
                case "--bucket-kib" when i + 1 < args.Length && int.TryParse(args[i + 1], out int k) && k > 0:
                    bucketBytes = k * 1024L;
                    i++;
                    break;
                case "--timeout" when i + 1 < args.Length && double.TryParse(args[i + 1], out double t) && t > 0:
                    timeoutSeconds = t;
                    i++;
                    break;
                default:
                    if (!int.TryParse(args[i], out int n) || n <= 0) return BadArgument($"unexpected argument '{args[i]}'.");
                    numbers.Add(n);
                    break;
            }
        }
        using var communicator = MpiCommunicator.Open(reduction, TimeSpan.FromSeconds(timeoutSeconds));
        if (chunk is int elements) communicator.MaxChunkElements = elements;
        return args[0] switch
        {
            "collectives" => Collectives(communicator),
            "dying" => Dying(communicator),
            "hanging" => Hanging(communicator),
            "timing" => Timing(communicator, numbers),
            "buckets" => Buckets(communicator),
            "epochs" => Epochs(communicator, numbers, overlap, bucketBytes),
            _ => BadArgument($"unknown scenario '{args[0]}'."),
        };
    }

    private static int BadArgument(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static int Collectives(MpiCommunicator communicator)
    {
        int[] lengths = [1, 7, 1000, 2999, 100_003, 300_017]; // the last two cross chunks of 1000 and of 2^18
        using var device = Device.Create("cpu");
        using var digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var failures = new List<string>();
        int checks = 0;
        foreach (int length in lengths)
        {
            checks += CheckCollectives<float>(communicator, device, length, digest, failures);
            checks += CheckCollectives<double>(communicator, device, length, digest, failures);
        }
        checks += CheckBarrier(communicator, failures);
        string prefix = $"rank {communicator.Rank} of {communicator.Size} ({communicator.Reduction})";
        if (failures.Count > 0)
        {
            Console.Error.WriteLine($"FAIL {prefix}: {failures.Count} of {checks} checks failed; first: {failures[0]}");
            return 1;
        }
        Console.WriteLine($"{prefix}: {checks} checks passed; digest {Convert.ToHexString(digest.GetHashAndReset())}");
        return 0;
    }

    /// <summary>Sum, average and broadcast of <paramref name="length"/> elements of T, on a span and on a tensor;
    /// each result compared bit for bit with the rank-order reference and added to the digest.</summary>
    private static int CheckCollectives<T>(MpiCommunicator communicator, Device device, int length,
        IncrementalHash digest, List<string> failures) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int size = communicator.Size, rank = communicator.Rank;
        var own = RankData<T>(rank, length);
        var sum = RankData<T>(0, length);
        for (int r = 1; r < size; r++)
        {
            var other = RankData<T>(r, length);
            for (int i = 0; i < length; i++) sum[i] += other[i];
        }
        var average = sum.Select(s => s / T.CreateChecked(size)).ToArray();
        int root = length % size;
        var rootData = RankData<T>(root, length);
        string what = $"{length} {typeof(T).Name}";

        var data = (T[])own.Clone();
        communicator.AllReduceSum(data.AsSpan());
        Compare($"span sum of {what}", data, sum);
        data = (T[])own.Clone();
        communicator.AllReduceAverage(data.AsSpan());
        Compare($"span average of {what}", data, average);
        data = (T[])own.Clone();
        communicator.Broadcast(data.AsSpan(), root);
        Compare($"span broadcast from rank {root} of {what}", data, rootData);

        using var scope = TensorScope.Begin();
        var tensor = Tensor.FromArray(own, [length], device);
        communicator.AllReduceSum(tensor);
        Compare($"tensor sum of {what}", tensor.ToArray(), sum);
        tensor.CopyFrom(own);
        communicator.AllReduceAverage(tensor);
        Compare($"tensor average of {what}", tensor.ToArray(), average);
        tensor.CopyFrom(own);
        communicator.Broadcast(tensor, root);
        Compare($"tensor broadcast from rank {root} of {what}", tensor.ToArray(), rootData);
        return 6;

        void Compare(string check, T[] actual, T[] expected)
        {
            digest.AppendData(MemoryMarshal.AsBytes(actual.AsSpan()));
            int i = FirstBitDifference(actual, expected);
            if (i >= 0)
                failures.Add($"{check}: element {i} is {actual[i]:R}, expected {expected[i]:R}");
        }
    }

    private static int FirstBitDifference<T>(T[] actual, T[] expected) where T : unmanaged
    {
        var a = MemoryMarshal.AsBytes(actual.AsSpan());
        var e = MemoryMarshal.AsBytes(expected.AsSpan());
        int byteIndex = a.CommonPrefixLength(e);
        return byteIndex == a.Length ? -1 : byteIndex / Marshal.SizeOf<T>();
    }

    /// <summary>Rank <paramref name="rank"/>'s data: non-zero values of both signs over several binades (so that
    /// the summation order shows in the last bits), the same on every rank that recomputes them.</summary>
    private static T[] RankData<T>(int rank, int length) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(unchecked(rank * 1_000_003 + length * 31 + Marshal.SizeOf<T>()));
        var data = new T[length];
        for (int i = 0; i < length; i++)
        {
            double magnitude = (0.5 + random.NextDouble()) * Math.Pow(2, random.Next(-8, 9));
            data[i] = T.CreateChecked(random.Next(2) == 0 ? -magnitude : magnitude);
        }
        return data;
    }

    /// <summary>Ranks enter the barrier at staggered times (rank r after r × 300 ms); every rank must leave it after
    /// the last one entered. The entry and exit times (µs of the shared clock) are exchanged with a sum, each rank
    /// filling its own slot.</summary>
    private static int CheckBarrier(MpiCommunicator communicator, List<string> failures)
    {
        int size = communicator.Size, rank = communicator.Rank;
        Thread.Sleep(300 * rank);
        var times = new double[2 * size];
        times[rank] = Microseconds();
        communicator.Barrier();
        times[size + rank] = Microseconds();
        communicator.AllReduceSum(times.AsSpan());
        double lastEntry = times.Take(size).Max(), firstExit = times.Skip(size).Min();
        if (firstExit < lastEntry)
            failures.Add($"barrier: a rank left it {lastEntry - firstExit:F0} µs before the last rank entered");
        return 1;

        static double Microseconds() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks / 10.0;
    }

    private static int Dying(MpiCommunicator communicator)
    {
        var data = RankData<float>(communicator.Rank, 1000);
        if (communicator.Rank == communicator.Size - 1)
        {
            Console.Error.WriteLine($"rank {communicator.Rank}: leaving with status {DyingExitCode} before the all-reduce (dying-rank scenario)");
            Environment.Exit(DyingExitCode);
        }
        communicator.AllReduceSum(data.AsSpan());
        Console.WriteLine($"rank {communicator.Rank}: the all-reduce returned although a rank died");
        return 1;
    }

    private static int Hanging(MpiCommunicator communicator)
    {
        var data = RankData<float>(communicator.Rank, 1000);
        if (communicator.Rank == communicator.Size - 1)
        {
            Console.Error.WriteLine($"rank {communicator.Rank}: sleeping instead of joining the all-reduce (hanging-rank scenario)");
            Thread.Sleep(Timeout.Infinite);
        }
        communicator.AllReduceSum(data.AsSpan());
        Console.WriteLine($"rank {communicator.Rank}: the all-reduce returned although a rank hangs");
        return 1;
    }

    /// <summary>For each length: a warm-up, then repetitions each started by a barrier; rank 0 prints the median,
    /// minimum and maximum wall time of one all-reduce.</summary>
    /// <summary>Two steps of ResNet-20 A gradients (each rank its own seeded batch of 3x8x8 images, batch-norm
    /// synchronised: collectives on the main thread during backward) averaged by GradientBuckets in 64 KiB buckets,
    /// after backward and then during it. The first must be the rank-order mean (g0 + g1 + …) / size of every rank's
    /// own gradients (gathered exactly); the second the same bits as the first.</summary>
    private static int Buckets(MpiCommunicator communicator)
    {
        using var device = Device.Create("cpu");
        const long bucketBytes = 64 << 10;
        var results = new List<float[]>[2];
        string report = "";
        foreach (bool overlap in new[] { false, true })
        {
            using var model = Engine.Models.ModelRegistry.Create<float>("resnet20-a", device, 5, 10, inputChannels: 3);
            foreach (var layer in Descendants(model).OfType<Engine.Core.Modules.BatchNorm2d<float>>())
                layer.SyncStatistics = communicator;
            using var buckets = new GradientBuckets<float>(communicator, model.NamedParameters(), bucketBytes, overlap);
            if (overlap != buckets.Overlaps)
                return Fail($"overlap {overlap} but Overlaps is {buckets.Overlaps} ({buckets.OverlapUnavailableReason})");
            var grads = results[overlap ? 1 : 0] = [];
            var own = new List<float[]>();
            for (int step = 0; step < 2; step++)
            {
                using var scope = TensorScope.Begin();
                var x = Tensor.RandomNormal<float>([4, 3, 8, 8], seed: 100 * step + communicator.Rank, device: device);
                int[] labels = [.. Enumerable.Range(0, 4).Select(i => (i + step + communicator.Rank) % 10)];
                model.Forward(x).CrossEntropy(labels).Backward();
                if (!overlap) own.AddRange(model.Parameters().Select(p => p.Grad!.ToArray()));
                buckets.Average();
                grads.AddRange(model.Parameters().Select(p => p.Grad!.ToArray()));
                foreach (var parameter in model.Parameters()) parameter.ZeroGrad();
                if (overlap) report = $"{buckets.Count} buckets, {1e3 * buckets.LastHiddenSeconds:F2} ms of " +
                                      $"{1e3 * buckets.LastCollectiveSeconds:F2} ms hidden";
            }
            if (!overlap && CheckAverage(communicator, own, grads) is { } wrong) return Fail(wrong);
        }
        for (int i = 0; i < results[0].Count; i++)
            if (FirstBitDifference(results[1][i], results[0][i]) is int at and >= 0)
                return Fail($"gradient {i}: element {at} is {results[1][i][at]:R} with overlap, {results[0][i][at]:R} after backward");
        using var digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var grad in results[1]) digest.AppendData(MemoryMarshal.AsBytes(grad.AsSpan()));
        Console.WriteLine($"rank {communicator.Rank}: overlapped buckets match after-backward buckets bit for bit " +
                          $"({report}); digest {Convert.ToHexString(digest.GetHashAndReset())}");
        return 0;

        int Fail(string message)
        {
            Console.Error.WriteLine($"FAIL rank {communicator.Rank}: {message}");
            return 1;
        }
    }

    /// <summary>Checks <paramref name="averaged"/> against (g_0 + g_1 + …) / size in rank order, with every rank's
    /// own gradients <paramref name="own"/> gathered in double (exact for float values) by a sum of one-hot slots.</summary>
    private static string? CheckAverage(MpiCommunicator communicator, List<float[]> own, List<float[]> averaged)
    {
        int size = communicator.Size;
        for (int i = 0; i < own.Count; i++)
        {
            int n = own[i].Length;
            var slots = new double[size * n];
            for (int j = 0; j < n; j++) slots[communicator.Rank * n + j] = own[i][j];
            communicator.AllReduceSum(slots.AsSpan());
            for (int j = 0; j < n; j++)
            {
                float sum = (float)slots[j];
                for (int r = 1; r < size; r++) sum += (float)slots[r * n + j];
                float expected = sum / size;
                if (BitConverter.SingleToInt32Bits(expected) != BitConverter.SingleToInt32Bits(averaged[i][j]))
                    return $"gradient {i} element {j}: averaged {averaged[i][j]:R}, rank-order mean {expected:R}";
            }
        }
        return null;
    }

    private static IEnumerable<Engine.Core.Modules.Module<float>> Descendants(Engine.Core.Modules.Module<float> module) =>
        module.NamedChildren().SelectMany(child => Descendants(child.Module)).Prepend(module);

    private static int Epochs(MpiCommunicator communicator, List<int> numbers, bool overlap, long bucketBytes)
    {
        if (numbers is not [int images, int batch, int epochs]) return BadArgument("epochs needs IMAGES BATCH EPOCHS.");
        var random = new Random(11);
        var pixels = new byte[images * 3 * 32 * 32];
        random.NextBytes(pixels);
        var labels = Enumerable.Range(0, images).Select(_ => random.Next(10)).ToArray();
        var train = new Engine.Core.Data.ImageDataset(pixels, labels, 3, 32, 32, 10, "synthetic");
        var test = train.Take(Math.Min(images, 20));
        using var device = Device.Create("cpu");
        var options = new Engine.Models.Training.TrainOptions
        {
            Model = "resnet20-a", Epochs = epochs, BatchSize = batch, EvaluationBatchSize = 20,
        };
        using var trainer = new Engine.Models.Training.Trainer(device, options, train, test, communicator, overlap, bucketBytes);
        var seconds = new List<double>();
        while (!trainer.Finished) seconds.Add(trainer.RunEpoch().Seconds);
        var reduce = trainer.AllReduceSeconds.Order().ToList();
        var hidden = trainer.AllReduceHiddenSeconds.Order().ToList();
        if (communicator.Rank == 0)
            Console.WriteLine($"ranks {communicator.Size}, threads {Environment.ProcessorCount}: epoch seconds " +
                              string.Join(" ", seconds.Select(v => v.ToString("F2"))) +
                              (reduce.Count == 0 ? "" : $"; all-reduce median {1000 * reduce[reduce.Count / 2]:F2} ms " +
                                  $"exposed, {1000 * hidden[hidden.Count / 2]:F2} ms hidden per step over {reduce.Count} steps") +
                              $"; {trainer.GradientBuckets} buckets, " +
                              (trainer.GradientOverlapUnavailableReason is { } why ? $"after backward ({why})" : "overlapped") +
                              $"; {trainer.GradientBytesPerStep:N0} gradient bytes per step");
        return 0;
    }

    private static int Timing(MpiCommunicator communicator, List<int> lengths)
    {
        if (lengths.Count == 0) return BadArgument("timing needs at least one length.");
        foreach (int length in lengths)
        {
            var data = RankData<float>(communicator.Rank, length);
            int repetitions = length > 5_000_000 ? 9 : 41;
            communicator.AllReduceSum(data.AsSpan());
            var seconds = new double[repetitions];
            for (int i = 0; i < repetitions; i++)
            {
                communicator.Barrier();
                long start = Stopwatch.GetTimestamp();
                communicator.AllReduceSum(data.AsSpan());
                seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            Array.Sort(seconds);
            if (communicator.Rank == 0)
                Console.WriteLine($"all-reduce {communicator.Reduction} of {length:N0} float32 ({length * 4.0 / (1 << 20):F2} MiB) " +
                                  $"on {communicator.Size} ranks: median {seconds[repetitions / 2] * 1e3:F3} ms " +
                                  $"(min {seconds[0] * 1e3:F3}, max {seconds[^1] * 1e3:F3}; {repetitions} runs)");
        }
        return 0;
    }
}
