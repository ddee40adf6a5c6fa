// `blocks`: the BenchmarkDotNet suite of Benchmarks/BlockBenchmarks.cs (identity vs projection shortcut, basic vs
// bottleneck block, forward and training step) on the chosen device.
using System.CommandLine;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using Engine.Bench.Benchmarks;

namespace Engine.Bench.Commands;

internal static class BlocksCommand
{
    public static Command Create()
    {
        var device = CommonOptions.Device();
        var command = new Command("blocks", "BenchmarkDotNet: identity vs projection shortcut per block.") { device };
        command.SetAction(result =>
        {
            using var opened = CommonOptions.OpenDevice(result.GetValue(device));
            BlockBenchmarks.SharedDevice = opened;
            var config = ManualConfig.CreateEmpty()
                .AddJob(BenchmarkJobs.Short())
                .AddLogger(ConsoleLogger.Default)
                .AddColumnProvider(DefaultColumnProviders.Instance)
                .AddColumn(StatisticColumn.Median)
                .WithOptions(ConfigOptions.JoinSummary);
            var summary = BenchmarkRunner.Run<BlockBenchmarks>(config);
            BlockBenchmarks.SharedDevice = null;
            return summary.Reports.Length > 0 && summary.Reports.All(r => r.Success) ? 0 : 1;
        });
        return command;
    }
}
