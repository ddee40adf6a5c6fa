// GradientBuckets' grouping: parameters in reverse order, a new bucket when the next would pass the byte cap, a
// parameter larger than the cap alone; the bytes per step; a job of one that reduces nothing and keeps the
// gradients as they are; and, on a real 3-rank mpirun job (MpiScenarios' buckets), the average overlapped with
// backward (with synchronised batch-norm's collectives on the main thread meanwhile) is the same bits as the one
// after backward, which is the rank-order mean of every rank's gradients.
using System.Text.RegularExpressions;
using Engine.Core;
using Engine.Core.Distributed;
using NUnit.Framework;

namespace Engine.Tests.Distributed;

public sealed class GradientBucketsTests
{
    private static (string, Tensor<float>)[] Parameters(Device device) =>
        [("a", Tensor.Zeros<float>([10], device)), ("b", Tensor.Zeros<float>([20], device)), ("c", Tensor.Zeros<float>([30], device))];

    [Test]
    public void BucketsFollowTheReverseOrderUpToTheCap()
    {
        using var device = Device.Create("cpu");
        using var communicator = new SingleProcessCommunicator();
        var parameters = Parameters(device);
        // c (120 B) exceeds 100 B alone; b (80 B) opens the next; a (40 B) would make it 120 B: a third.
        var capped = new GradientBuckets<float>(communicator, parameters, bucketBytes: 100);
        Assert.That(capped.Count, Is.EqualTo(3));
        Assert.That(capped.BytesPerStep, Is.EqualTo(240));
        // 130 B: c alone (120 + 80 > 130), then b and a together (120 B).
        Assert.That(new GradientBuckets<float>(communicator, parameters, bucketBytes: 130).Count, Is.EqualTo(2));
        Assert.That(new GradientBuckets<float>(communicator, parameters).Count, Is.EqualTo(1));
        foreach (var (_, tensor) in parameters) tensor.Dispose();
    }

    [Test]
    public void AJobOfOneKeepsTheGradients()
    {
        using var device = Device.Create("cpu");
        using var communicator = new SingleProcessCommunicator();
        var weight = Tensor.FromArray(new[] { 1f, 2f, 3f }, [3], device);
        weight.RequiresGrad = true;
        (weight * weight).Sum().Backward();
        using var buckets = new GradientBuckets<float>(communicator, [("w", weight)]);
        Assert.That(buckets.Overlaps, Is.False);
        Assert.That(buckets.OverlapUnavailableReason, Does.Contain("a job of one"));
        buckets.Average();
        Assert.That(weight.Grad!.ToArray(), Is.EqualTo(new[] { 2f, 4f, 6f }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GradientBuckets<float>(communicator, [("w", weight)], 0));
        weight.Dispose();
    }

    [Test]
    public void OverlappedAverageIsTheSameBitsAsAfterBackward()
    {
        var job = MpiJob.Run(3, TimeSpan.FromSeconds(90), "buckets");
        Assert.That(job.ExitCode, Is.Zero, job.Output);
        var digests = Regex.Matches(job.Output, @"bit for bit \((\d+) buckets.*digest ([0-9A-F]+)")
            .Select(m => (Buckets: m.Groups[1].Value, Digest: m.Groups[2].Value)).ToList();
        Assert.That(digests, Has.Count.EqualTo(3), job.Output);
        Assert.That(digests.Distinct().Count(), Is.EqualTo(1), "every rank holds the same averages:\n" + job.Output);
        Assert.That(int.Parse(digests[0].Buckets), Is.GreaterThan(10), "several buckets, launched during backward");
    }
}
