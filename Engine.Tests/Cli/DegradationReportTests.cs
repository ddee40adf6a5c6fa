// The degradation comparison on made-up histories: kinds in figure-6 order (plain, then residual) whatever order
// the runs come in, each kind by depth, and a verdict only where a kind has more than one depth, its deepest
// network against its shallowest.
using Engine.Bench.Reports;
using Engine.Models.Training;
using NUnit.Framework;

namespace Engine.Tests.Cli;

public sealed class DegradationReportTests
{
    /// <summary>A run of one epoch that ends at <paramref name="trainError"/>.</summary>
    private static (string Name, IReadOnlyList<EpochRecord> History) Run(string name, double trainError) =>
        (name, [new EpochRecord(0, 10, 0.1, 1.0, trainError, 1.0, trainError + 0.01, 100, 1)]);

    [Test]
    public void KindsArePlainThenResidualEachByDepthAndTheVerdictsCompareDeepestWithShallowest()
    {
        var kinds = DegradationReport.ByKind(
        [
            Run("resnet56-a", 0.13), Run("plain56", 0.41), Run("resnet20-a", 0.17), Run("resnet32-a", 0.20),
            Run("plain20", 0.15),
        ]);
        Assert.That(kinds.Select(kind => kind.Label), Is.EqualTo(new[] { "plain", "residual" }));
        Assert.That(kinds[0].Runs.Select(run => run.Name), Is.EqualTo(new[] { "plain20", "plain56" }));
        Assert.That(kinds[1].Runs.Select(run => run.Name), Is.EqualTo(new[] { "resnet20-a", "resnet32-a", "resnet56-a" }));
        Assert.That(DegradationReport.Verdicts(kinds), Is.EqualTo(new[]
        {
            "plain: plain56 ends at 41.00% training error, plain20 at 15.00%: the deeper network trains worse than the shallower.",
            "residual: resnet56-a ends at 13.00% training error, resnet20-a at 17.00%: the deeper network trains better than the shallower.",
        }));
    }

    [Test]
    public void AKindOfOneDepthGetsNoVerdict()
    {
        var kinds = DegradationReport.ByKind([Run("resnet20-b", 0.2), Run("resnet20-a", 0.1), Run("plain44", 0.3)]);
        Assert.That(kinds.Select(kind => kind.Runs.Count), Is.EqualTo(new[] { 1, 2 }));
        Assert.That(kinds[1].Runs.Select(run => run.Name), Is.EqualTo(new[] { "resnet20-b", "resnet20-a" }),
            "equal depths keep the order given");
        Assert.That(DegradationReport.Verdicts(kinds), Is.Empty);
    }

    [Test]
    public void EqualErrorsTrainAsWell() =>
        Assert.That(DegradationReport.Verdicts(DegradationReport.ByKind([Run("plain20", 0.2), Run("plain32", 0.2)])),
            Has.One.EndsWith("the deeper network trains as well as the shallower."));
}
