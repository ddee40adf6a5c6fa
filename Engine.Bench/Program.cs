// Engine.Bench: the engine's command-line program. Each command lives in Commands/; this file wires them up.
using System.CommandLine;
using Engine.Bench.Commands;

var root = new RootCommand("Engine: deep residual networks on hand-written ILGPU kernels.");
root.Subcommands.Add(DemoCommand.Create());
return root.Parse(args).Invoke();
