// The degradation experiment's comparison: runs grouped by kind (plain networks first, then residual, as the paper's
// figure 6 sets them left and right), each kind by depth, and per kind one line that says whether its deepest
// network ends at a lower or higher training error than its shallowest.
using System.Globalization;
using Engine.Models;
using Engine.Models.Training;

namespace Engine.Bench.Reports;

public static class DegradationReport
{
    /// <summary>One kind of network and its runs, shallowest first.</summary>
    /// <param name="Label">"plain" or "residual".</param>
    /// <param name="Runs">The runs' registry names and histories, by depth.</param>
    public sealed record Kind(string Label, IReadOnlyList<(string Name, IReadOnlyList<EpochRecord> History)> Runs);

    /// <summary>The runs grouped by kind, plain first, each kind's runs by depth (the order given among equal
    /// depths).</summary>
    public static IReadOnlyList<Kind> ByKind(IEnumerable<(string Name, IReadOnlyList<EpochRecord> History)> runs) =>
        runs.GroupBy(run => ModelRegistry.Parse(run.Name).IsPlain)
            .OrderByDescending(kind => kind.Key)
            .Select(kind => new Kind(kind.Key ? "plain" : "residual", kind.OrderBy(run => Depth(run.Name)).ToList()))
            .ToList();

    /// <summary>Per kind with networks of more than one depth: its deepest network against its shallowest, by final
    /// training error (the paper's degradation problem is a deeper plain network that trains worse).</summary>
    public static IReadOnlyList<string> Verdicts(IReadOnlyList<Kind> kinds) => kinds
        .Where(kind => kind.Runs.Select(run => Depth(run.Name)).Distinct().Count() > 1)
        .Select(kind =>
        {
            var (shallow, deep) = (kind.Runs.MinBy(run => Depth(run.Name)), kind.Runs.MaxBy(run => Depth(run.Name)));
            var (shallowError, deepError) = (shallow.History[^1].TrainError, deep.History[^1].TrainError);
            string outcome = deepError < shallowError ? "better than" : deepError > shallowError ? "worse than" : "as well as";
            return $"{kind.Label}: {deep.Name} ends at {Percent(deepError)} training error, {shallow.Name} at " +
                   $"{Percent(shallowError)}: the deeper network trains {outcome} the shallower.";
        })
        .ToList();

    /// <summary>An error (0–1) as a percentage with two decimals.</summary>
    public static string Percent(double error) =>
        (100 * error).ToString("F2", CultureInfo.InvariantCulture) + "%";

    private static int Depth(string model) => ModelRegistry.Parse(model).Depth;
}
