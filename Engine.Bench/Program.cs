// Engine.Bench: the engine's command-line program. Each command lives in Commands/; this file wires them up.
using System.CommandLine;
using Engine.Bench.Commands;

var root = new RootCommand("Engine: deep residual networks on hand-written ILGPU kernels.");
root.Subcommands.Add(ShortcutsCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(StepCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(PredictCommand.Create());
root.Subcommands.Add(DegradationCommand.Create());
root.Subcommands.Add(CostsCommand.Create());
root.Subcommands.Add(KernelsCommand.Create());
root.Subcommands.Add(BlocksCommand.Create());
var configuration = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
try
{
    return root.Parse(args).Invoke(configuration);
}
catch (Exception error) when (error is ArgumentException or InvalidOperationException or IOException
                                  or InvalidDataException or UnauthorizedAccessException or OutOfMemoryException
                                  or ArithmeticException)
{
    // Bad input (sizes too large for memory or for the index types included): one clear line and a non-zero exit,
    // no stack trace.
    Console.Error.WriteLine($"error: {error.Message}");
    return 2;
}
