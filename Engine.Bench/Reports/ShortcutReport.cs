// The identity-vs-projection comparison: its rows, and its output as a console table, markdown, CSV and a PNG
// chart. Each row is measured against the first row of its group (the identity-shortcut variant).
using System.Globalization;
using System.Text;
using Spectre.Console;

namespace Engine.Bench.Reports;

public sealed record ShortcutRow(
    string Group,
    string Variant,
    int Batch,
    long Parameters,
    long Macs,
    long ActivationBytes,
    double ForwardMs,
    double TrainMs);

public sealed class ShortcutReport(string device, IReadOnlyList<ShortcutRow> rows)
{
    public string Device { get; } = device;
    public IReadOnlyList<ShortcutRow> Rows { get; } = rows;

    /// <summary>The identity variant a row is compared with: the first row of its group.</summary>
    public ShortcutRow BaselineOf(ShortcutRow row) => Rows.First(r => r.Group == row.Group);

    private static string Ratio(double value, double baseline) =>
        (value / baseline).ToString("F2", CultureInfo.InvariantCulture) + "×";

    private static readonly string[] Headers =
    [
        "group", "variant", "batch", "parameters", "MACs/image", "activations", "forward ms", "train step ms",
        "params ×", "MACs ×", "forward ×", "train ×",
    ];

    private string[] Cells(ShortcutRow r)
    {
        var b = BaselineOf(r);
        return
        [
            r.Group, r.Variant, r.Batch.ToString(CultureInfo.InvariantCulture), r.Parameters.ToString("N0", CultureInfo.InvariantCulture),
            r.Macs.ToString("N0", CultureInfo.InvariantCulture), $"{r.ActivationBytes / 1048576.0:F1} MiB",
            r.ForwardMs.ToString("F1", CultureInfo.InvariantCulture), r.TrainMs.ToString("F1", CultureInfo.InvariantCulture),
            Ratio(r.Parameters, b.Parameters), Ratio(r.Macs, b.Macs), Ratio(r.ForwardMs, b.ForwardMs),
            Ratio(r.TrainMs, b.TrainMs),
        ];
    }

    public void WriteConsole()
    {
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 180);
        var table = new Table().AddColumns(Headers);
        foreach (var row in Rows) table.AddRow(Cells(row).Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
    }

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.AppendLine($"Device: {Device}. Times are medians after warm-up; × is the ratio to the group's first " +
                        "(identity-shortcut) row. Activations: every forward output at the row's batch, float32.");
        text.AppendLine();
        text.AppendLine("| " + string.Join(" | ", Headers) + " |");
        text.AppendLine("|" + string.Concat(Enumerable.Repeat("---|", Headers.Length)));
        foreach (var row in Rows) text.AppendLine("| " + string.Join(" | ", Cells(row)) + " |");
        return text.ToString();
    }

    public string ToCsv()
    {
        var text = new StringBuilder();
        text.AppendLine("group,variant,batch,parameters,macs_per_image,activation_bytes,forward_ms,train_ms," +
                        "parameters_ratio,macs_ratio,forward_ratio,train_ratio");
        foreach (var r in Rows)
        {
            var b = BaselineOf(r);
            text.AppendLine(string.Join(',', Quote(r.Group), Quote(r.Variant), r.Batch, r.Parameters, r.Macs,
                r.ActivationBytes, F(r.ForwardMs), F(r.TrainMs), F((double)r.Parameters / b.Parameters),
                F((double)r.Macs / b.Macs), F(r.ForwardMs / b.ForwardMs), F(r.TrainMs / b.TrainMs)));
        }
        return text.ToString();

        static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
        static string Quote(string s) => "\"" + s.Replace("\"", "\"\"") + "\"";
    }

    /// <summary>Grouped bars: parameters, MACs, forward time and training-step time of each row relative to its
    /// group's identity variant.</summary>
    public void SavePng(string path)
    {
        var plot = new ScottPlot.Plot();
        (string Name, Func<ShortcutRow, ShortcutRow, double> Ratio)[] series =
        [
            ("parameters", (r, b) => (double)r.Parameters / b.Parameters),
            ("MACs", (r, b) => (double)r.Macs / b.Macs),
            ("forward time", (r, b) => r.ForwardMs / b.ForwardMs),
            ("train-step time", (r, b) => r.TrainMs / b.TrainMs),
        ];
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<ScottPlot.Bar>();
        for (int i = 0; i < Rows.Count; i++)
            for (int s = 0; s < series.Length; s++)
                bars.Add(new ScottPlot.Bar
                {
                    Position = i * (series.Length + 1) + s,
                    Value = series[s].Ratio(Rows[i], BaselineOf(Rows[i])),
                    FillColor = palette.GetColor(s),
                });
        plot.Add.Bars(bars);
        plot.Axes.Bottom.SetTicks(
            Enumerable.Range(0, Rows.Count).Select(i => i * (series.Length + 1) + (series.Length - 1) / 2.0).ToArray(),
            Rows.Select(r => r.Variant).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = ScottPlot.Alignment.MiddleLeft;
        plot.Add.HorizontalLine(1, 1, ScottPlot.Colors.Gray, ScottPlot.LinePattern.Dashed);
        for (int s = 0; s < series.Length; s++)
            plot.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = series[s].Name, FillColor = palette.GetColor(s) });
        plot.ShowLegend(ScottPlot.Edge.Top);
        plot.Title($"Cost relative to identity shortcuts ({Device})");
        plot.YLabel("ratio to the identity variant");
        plot.Axes.Margins(bottom: 0);
        plot.Layout.Fixed(new ScottPlot.PixelPadding(70, 30, 110, 70));
        plot.SavePng(path, 1200, 650);
    }
}
