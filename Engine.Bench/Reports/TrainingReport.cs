// Training outputs: the per-epoch CSV and the paper-style error curves (thin dashed: training error, bold:
// test error; one colour per model; one panel, or panels side by side on one error axis from 0), written atomically.
using System.Globalization;
using System.Text;
using Engine.Core.Serialization;
using Engine.Models.Training;
using ScottPlot;

namespace Engine.Bench.Reports;

public static class TrainingReport
{
    /// <summary>One row per epoch; learning_rate is the rate of the epoch's last iteration.</summary>
    public static void WriteCsv(string path, IReadOnlyList<EpochRecord> history)
    {
        var text = new StringBuilder("epoch,iteration,learning_rate,train_loss,train_error,test_loss,test_error," +
                                     "images_per_second,seconds\n");
        foreach (var r in history)
            text.AppendLine(string.Join(',',
                new[] { r.Epoch + 1, r.Iteration }.Select(v => v.ToString(CultureInfo.InvariantCulture)).Concat(
                    new[] { r.LearningRate, r.TrainLoss, r.TrainError, r.TestLoss, r.TestError, r.ImagesPerSecond, r.Seconds }
                        .Select(v => v.ToString("G6", CultureInfo.InvariantCulture)))));
        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>Error (%) against iterations for each named run, in one panel.</summary>
    public static void SaveErrorCurves(string path, string title,
        IReadOnlyList<(string Name, IReadOnlyList<EpochRecord> History)> runs) =>
        SaveErrorCurves(path, [new ErrorPanel(title, runs)]);

    /// <summary>Panels side by side with one error axis (the paper's figure 6: plain networks left, residual
    /// right); within a panel the runs take the palette's colours in order, so runs listed alike across panels
    /// (20 layers, then 56) match in colour.</summary>
    public static void SaveErrorCurves(string path, IReadOnlyList<ErrorPanel> panels)
    {
        ArgumentOutOfRangeException.ThrowIfZero(panels.Count, nameof(panels));
        var plots = new List<Plot>();
        double top = 0;
        foreach (var panel in panels)
        {
            var plot = new Plot();
            var palette = new ScottPlot.Palettes.Category10();
            int colour = 0;
            foreach (var (name, history) in panel.Runs)
            {
                if (history.Count == 0) continue;
                var color = palette.GetColor(colour++);
                double[] iterations = history.Select(r => (double)r.Iteration).ToArray();
                double[] trainErrors = history.Select(r => 100 * r.TrainError).ToArray();
                double[] testErrors = history.Select(r => 100 * r.TestError).ToArray();
                top = Math.Max(top, trainErrors.Concat(testErrors).Where(double.IsFinite).DefaultIfEmpty(0).Max());
                var train = plot.Add.Scatter(iterations, trainErrors, color);
                train.LinePattern = LinePattern.Dashed;
                train.LineWidth = 1;
                train.MarkerSize = 0;
                train.LegendText = $"{name} train";
                var test = plot.Add.Scatter(iterations, testErrors, color);
                test.LineWidth = 3;
                test.MarkerSize = 4;
                test.LegendText = $"{name} test";
            }
            plot.Title(panel.Title);
            plot.XLabel("iteration");
            plot.YLabel("error (%)");
            plot.ShowLegend(Edge.Right);
            plots.Add(plot);
        }
        var figure = new Multiplot { Layout = new ScottPlot.MultiplotLayouts.Columns() };
        figure.Reset(plots[0]);
        foreach (var plot in plots.Skip(1)) figure.AddPlot(plot);
        foreach (var plot in plots) plot.Axes.SetLimitsY(0, Math.Max(1, top * 1.05));
        AtomicFile.Write(path, temporary => figure.SavePng(temporary, 1000 * panels.Count, 560));
    }
}

/// <summary>One panel of <see cref="TrainingReport.SaveErrorCurves(string, IReadOnlyList{ErrorPanel})"/>: its title
/// and its runs' histories by name, in the order they take the palette's colours.</summary>
public sealed record ErrorPanel(string Title, IReadOnlyList<(string Name, IReadOnlyList<EpochRecord> History)> Runs);
