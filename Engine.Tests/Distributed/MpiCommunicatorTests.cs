// The MPI communicator, tested on real mpirun jobs of 2 (and 3) ranks on this machine (never a mock): exact
// rank-order sums, averages and broadcasts of float and double data, barrier, bit-identical repeated runs, and
// bounded, clearly reported ends of a job whose rank dies or hangs. Plus, in process, the errors for a missing
// MPI library and a process not started by mpirun. Without mpirun these tests are ignored, naming the package.
using System.Text.RegularExpressions;
using Engine.Core.Distributed;
using NUnit.Framework;

namespace Engine.Tests.Distributed;

[NonParallelizable]
public sealed class MpiCommunicatorTests
{
    private static readonly TimeSpan JobLimit = TimeSpan.FromSeconds(60);

    [Test]
    public void CollectivesAreExactAndBitIdenticalAcrossRuns()
    {
        var first = MpiJob.Run(2, JobLimit, "collectives", "--chunk", "1000");
        var second = MpiJob.Run(2, JobLimit, "collectives", "--chunk", "1000");
        var digests = Digests(first).Concat(Digests(second)).ToList();
        Assert.That(digests, Has.Count.EqualTo(4), first.Output + second.Output);
        Assert.That(digests.Distinct().Count(), Is.EqualTo(1),
            "every rank of both runs holds the same bits:\n" + first.Output + second.Output);
    }

    [Test]
    public void RankOrderedSumOnThreeRanksIsTheSequentialSum()
    {
        // Two ranks sum with MPI_Allreduce (x0 + x1 is the only sum of two addends); three run the all-to-all path.
        // Three addends over several binades: ((x0 + x1) + x2) differs from other orders in the last bits (this
        // OpenMPI's own MPI_Allreduce misses it on some elements), and the scenario checks every element against it.
        var first = MpiJob.Run(3, JobLimit, "collectives", "--chunk", "1000");
        var second = MpiJob.Run(3, JobLimit, "collectives");
        var digests = Digests(first).Concat(Digests(second)).ToList();
        Assert.That(digests, Has.Count.EqualTo(6), first.Output + second.Output);
        Assert.That(digests.Distinct().Count(), Is.EqualTo(1), "the chunk size does not change a bit:\n" + first.Output + second.Output);
    }

    [Test]
    public void DyingRankEndsTheJob()
    {
        var job = MpiJob.Run(2, JobLimit, "dying");
        Assert.That(job.ExitCode, Is.Not.Zero, job.Output);
        Assert.That(job.Output, Does.Contain("leaving with status 3"));
        Assert.That(job.Output, Does.Contain("exited").Or.Contain("non-zero status"), "mpirun names the rank that ended");
        Assert.That(job.Output, Does.Not.Contain("returned although"));
        Assert.That(job.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)));
    }

    [Test]
    public void HangingRankIsAbortedByTheWatchdog()
    {
        var job = MpiJob.Run(2, JobLimit, "hanging", "--timeout", "3");
        Assert.That(job.ExitCode, Is.EqualTo(MpiCommunicator.TimeoutExitCode), job.Output);
        Assert.That(job.Output, Does.Contain(
            "error: rank 0 of 2: all-reduce sum of 1,000 float32 values did not complete within 3 s: another rank died, hangs"));
        Assert.That(job.Output, Does.Not.Contain("returned although"));
        Assert.That(job.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)));
    }

    [Test]
    public void MissingLibraryNamesItAndThePackage()
    {
        var error = Assert.Throws<DllNotFoundException>(() =>
            MpiCommunicator.OpenLibrary("libmpi-absent.so.40", MpiReduction.RankOrdered, null))!;
        Assert.That(error.Message, Does.Contain("MPI is not installed").And.Contain("libmpi-absent.so.40")
            .And.Contain("apt-get install openmpi-bin libopenmpi-dev"));
    }

    [Test]
    public void OutsideMpirunTheErrorSaysHowToStart()
    {
        if (MpiJob.InsideMpiJob) Assert.Ignore("this test process runs under mpirun itself.");
        Exception? error = null;
        try
        {
            MpiCommunicator.Open().Dispose();
        }
        catch (Exception e)
        {
            error = e;
        }
        if (error is DllNotFoundException) Assert.Ignore($"OpenMPI is not installed: {MpiJob.MpiLibraryHint}.");
        Assert.That(error, Is.TypeOf<InvalidOperationException>());
        Assert.That(error!.Message, Does.Contain("not started by mpirun").And.Contain("mpirun -np 2"));
    }

    private static List<string> Digests(MpiJobResult job)
    {
        Assert.That(job.ExitCode, Is.Zero, job.Output);
        return Regex.Matches(job.Output, @"checks passed; digest ([0-9A-F]{64})").Select(m => m.Groups[1].Value).ToList();
    }
}
