// Training outputs: the per-epoch CSV and the paper-style error curves (thin dashed: training error, bold:
// test error; one colour per model), written atomically.
using System.Globalization;
using System.Text;
using Engine.Core.Serialization;
using Engine.Models.Training;

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

    /// <summary>Error (%) against iterations for each named run.</summary>
    public static void SaveErrorCurves(string path, string title, IReadOnlyDictionary<string, IReadOnlyList<EpochRecord>> runs)
    {
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int colour = 0;
        foreach (var (name, history) in runs)
        {
            if (history.Count == 0) continue;
            var color = palette.GetColor(colour++);
            double[] iterations = history.Select(r => (double)r.Iteration).ToArray();
            var train = plot.Add.Scatter(iterations, history.Select(r => 100 * r.TrainError).ToArray(), color);
            train.LinePattern = ScottPlot.LinePattern.Dashed;
            train.LineWidth = 1;
            train.MarkerSize = 0;
            train.LegendText = $"{name} train";
            var test = plot.Add.Scatter(iterations, history.Select(r => 100 * r.TestError).ToArray(), color);
            test.LineWidth = 3;
            test.MarkerSize = 4;
            test.LegendText = $"{name} test";
        }
        plot.Title(title);
        plot.XLabel("iteration");
        plot.YLabel("error (%)");
        plot.ShowLegend(ScottPlot.Edge.Right);
        AtomicFile.Write(path, temporary => plot.SavePng(temporary, 1000, 560));
    }
}
