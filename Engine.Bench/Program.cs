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
root.Subcommands.Add(ExportCommand.Create());
root.Subcommands.Add(OnnxRunCommand.Create());
var configuration = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
// Every failure is one line on stderr and exit code 2, never a stack trace: a value that does not parse, an unknown
// option or a missing command as well as bad input found while running.
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    Console.Error.WriteLine($"error: {OneLine(string.Join(" ", parsed.Errors.Select(e => e.Message)))} (see --help)");
    return 2;
}
try
{
    return parsed.Invoke(configuration);
}
catch (Exception error) when (error is ArgumentException or InvalidOperationException or IOException
                                  or InvalidDataException or UnauthorizedAccessException or OutOfMemoryException
                                  or ArithmeticException or NotSupportedException)
{
    // Bad input (sizes too large for memory or for the index types included, a model the engine does not run):
    // its message alone, without the parameter name that ArgumentException appends (the message names the option
    // already).
    string message = error is ArgumentException { ParamName: { } name }
        ? error.Message.Replace($" (Parameter '{name}')", "")
        : error.Message;
    Console.Error.WriteLine($"error: {OneLine(message)}");
    return 2;
}
catch (Exception error)
{
    // Anything else is a fault of the program, still reported in one line with its kind.
    Console.Error.WriteLine($"error: {error.GetType().Name}: {OneLine(error.Message)}");
    return 2;
}

// A message of several lines (a list of choices, of problems) joined into one.
static string OneLine(string message) =>
    string.Join(" ", message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
