// `costs --model NAME [--layers]`: parameters and multiply-accumulates of a model (per block, or per layer).
using System.CommandLine;
using Engine.Core;
using Engine.Models;
using Spectre.Console;

namespace Engine.Bench.Commands;

internal static class CostsCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model name, e.g. resnet50-c.", Required = true };
        var layers = new Option<bool>("--layers") { Description = "One row per layer instead of per block." };
        var batch = new Option<int>("--batch") { Description = "Batch size for activation memory.", DefaultValueFactory = _ => 1 };
        var command = new Command("costs", "Prints a model's parameter and MAC counts.") { model, layers, batch };
        command.SetAction(result => Run(result.GetValue(model)!, result.GetValue(layers), result.GetValue(batch)));
        return command;
    }

    private static int Run(string name, bool perLayer, int batch)
    {
        if (batch < 1) throw new ArgumentException($"--batch must be at least 1 (got {batch}).");
        var spec = ModelRegistry.Parse(name);
        // Counting needs the built network, not a GPU: the CPU backend holds it.
        using var device = Device.Create("cpu", "cost counting only");
        using var model = ModelRegistry.Create<float>(name, device);
        var report = CostCounter.Count(model);
        var table = new Table().AddColumns(perLayer ? "layer" : "block", "parameters", "MACs / image",
            $"activations (batch {batch})");
        var rows = perLayer
            ? report.Rows.Select(r => (r.Name, r.Parameters, r.Macs, r.OutputElements))
            : report.Groups.Select(g => (g.Name, g.Parameters, g.Macs, g.ActivationElements));
        foreach (var (label, parameters, macs, elements) in rows)
            table.AddRow(label, $"{parameters:N0}", $"{macs:N0}", Format.Bytes(elements * batch * 4));
        AnsiConsole.Write(table);
        var total = report.Total;
        Console.WriteLine($"{spec.Name}: {total.Parameters:N0} parameters, {total.Macs:N0} MACs per image, " +
                          $"{Format.Bytes(total.ActivationBytes(batch))} activations at batch {batch} (float32)");
        return 0;
    }
}

internal static class Format
{
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };
}
