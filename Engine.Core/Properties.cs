// The test project checks internal invariants (e.g. that a deliberately wrong backward is caught).
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("Engine.Tests")]
