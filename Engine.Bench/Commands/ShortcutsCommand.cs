// `shortcuts`: the main job. Measures what shortcut options cost — parameters, MACs, activation memory,
// forward time and training-step time — for CIFAR ResNet-20 and -56 (A, B, C, plain), one ImageNet bottleneck
// block with an identity vs a projection shortcut (the paper's sec. 3.3 argument), and ResNet-50 with A, B and
// C shortcuts; prints the table and writes it as markdown, CSV and a PNG chart. Random inputs, no download.
using System.CommandLine;
using Engine.Bench.Measurement;
using Engine.Bench.Reports;
using Engine.Core;
using Engine.Core.Modules;
using Engine.Core.Serialization;
using Engine.Models;
using Spectre.Console;

namespace Engine.Bench.Commands;

internal static class ShortcutsCommand
{
    /// <summary>One thing to measure: a model or block factory, its input and its costs.</summary>
    private sealed record Entry(string Group, string Variant, int Batch, Func<Device, Module<float>> Build,
        Func<Module<float>, CostTotals> Costs, int[] ImageShape);

    public static Command Create()
    {
        var device = CommonOptions.Device();
        var iterations = new Option<int>("--iters") { Description = "Timed iterations per measurement.", DefaultValueFactory = _ => 7 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed iterations first.", DefaultValueFactory = _ => 3 };
        var cifarBatch = new Option<int>("--cifar-batch") { Description = "Batch for the CIFAR networks.", DefaultValueFactory = _ => 128 };
        var blockBatch = new Option<int>("--block-batch") { Description = "Batch for the bottleneck block.", DefaultValueFactory = _ => 32 };
        var imagenetBatch = new Option<int>("--imagenet-batch") { Description = "Batch for ResNet-50 (0 skips it).", DefaultValueFactory = _ => 4 };
        var deep = new Option<bool>("--deep") { Description = "Add ResNet-110 and ResNet-101 rows." };
        var output = new Option<string>("--out") { Description = "Folder for shortcuts.md, .csv and .png.", DefaultValueFactory = _ => "out/shortcuts" };
        var command = new Command("shortcuts", "Identity vs projection shortcuts: parameters, MACs, memory and time.")
            { device, iterations, warmup, cifarBatch, blockBatch, imagenetBatch, deep, output };
        command.SetAction(result => Run(result.GetValue(device), result.GetValue(iterations), result.GetValue(warmup),
            result.GetValue(cifarBatch), result.GetValue(blockBatch), result.GetValue(imagenetBatch),
            result.GetValue(deep), result.GetValue(output)!));
        return command;
    }

    private static IEnumerable<Entry> Entries(int cifarBatch, int blockBatch, int imagenetBatch, bool deep)
    {
        foreach (int depth in deep ? new[] { 20, 56, 110 } : [20, 56])
            foreach (string name in new[] { $"resnet{depth}-a", $"resnet{depth}-b", $"resnet{depth}-c", $"plain{depth}" })
                yield return Network($"CIFAR ResNet-{depth}", name, cifarBatch);
        foreach (var (variant, option) in new[] { ("identity", ShortcutOption.B), ("projection", ShortcutOption.C) })
            yield return new Entry("bottleneck 1024-256-1024 @14x14", variant, blockBatch,
                d => new Bottleneck<float>(d, 1024, 256, 1, option, new SeedSequence(1)),
                m => CostCounter.CountBlock((Bottleneck<float>)m, "block", 14, 14).Total, [1024, 14, 14]);
        if (imagenetBatch > 0)
            foreach (int depth in deep ? new[] { 50, 101 } : [50])
                foreach (string option in new[] { "a", "b", "c" })
                    yield return Network($"ImageNet ResNet-{depth}", $"resnet{depth}-{option}", imagenetBatch);
    }

    private static Entry Network(string group, string name, int batch)
    {
        var spec = ModelRegistry.Parse(name);
        return new Entry(group, spec.Name, batch, d => ModelRegistry.Create<float>(name, d),
            m => CostCounter.Count((ResNet<float>)m).Total, [3, spec.InputSize, spec.InputSize]);
    }

    private static int Run(string? deviceName, int iterations, int warmup, int cifarBatch, int blockBatch,
        int imagenetBatch, bool deep, string outputFolder)
    {
        if (iterations < 1 || warmup < 0 || cifarBatch < 1 || blockBatch < 1 || imagenetBatch < 0)
            throw new ArgumentException("--iters, --cifar-batch and --block-batch must be at least 1; --warmup and " +
                                        "--imagenet-batch at least 0.");
        CommonOptions.RequireWritableFolder(outputFolder, "--out");
        using var device = CommonOptions.OpenDevice(deviceName);
        var entries = Entries(cifarBatch, blockBatch, imagenetBatch, deep).ToList();
        var rows = new List<ShortcutRow>();
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var overall = context.AddTask("[bold]shortcuts[/]", maxValue: entries.Count * 2 * (warmup + iterations));
                // The process is cold: warm the runtime (tiered JIT) and the device on the first entry, untimed.
                using (var first = entries[0].Build(device))
                {
                    overall.Description = "warming up";
                    Shape warmInput = [entries[0].Batch, .. entries[0].ImageShape];
                    StepTimer.Time(first, warmInput, StepMode.Infer, warmup, 1);
                    StepTimer.Time(first, warmInput, StepMode.Train, warmup, 1);
                }
                foreach (var entry in entries)
                {
                    overall.Description = Markup.Escape($"{entry.Variant} (batch {entry.Batch})");
                    using var model = entry.Build(device);
                    var costs = entry.Costs(model);
                    Shape input = [entry.Batch, .. entry.ImageShape];
                    var forward = StepTimer.Time(model, input, StepMode.Infer, warmup, iterations, () => overall.Increment(1));
                    var train = StepTimer.Time(model, input, StepMode.Train, warmup, iterations, () => overall.Increment(1));
                    rows.Add(new ShortcutRow(entry.Group, entry.Variant, entry.Batch, costs.Parameters, costs.Macs,
                        costs.ActivationBytes(entry.Batch), forward.MedianMs, train.MedianMs));
                }
            });

        var report = new ShortcutReport($"{device.Kind}: {device.Backend.Description}", rows);
        report.WriteConsole();
        Directory.CreateDirectory(outputFolder);
        AtomicFile.WriteAllText(Path.Combine(outputFolder, "shortcuts.md"), report.ToMarkdown());
        AtomicFile.WriteAllText(Path.Combine(outputFolder, "shortcuts.csv"), report.ToCsv());
        AtomicFile.Write(Path.Combine(outputFolder, "shortcuts.png"), report.SavePng);
        Console.WriteLine($"wrote {Path.Combine(outputFolder, "shortcuts.md")}, .csv and .png");
        return 0;
    }
}
