// The test project checks internal invariants (e.g. that the CPU backend's worker pool runs every task once).
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("Engine.Tests")]
