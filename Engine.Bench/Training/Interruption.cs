// Ctrl-C (SIGINT) and SIGTERM during a training run: the first cancels Token, so that the run finishes its current
// step, saves a checkpoint and exits with ExitCode (128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, as
// shells report a process ended by that signal); a second one ends the process at once (the signal's default).
// Only the command installs these handlers; the trainer takes the token.
using System.Runtime.InteropServices;

namespace Engine.Bench.Training;

internal sealed class Interruption : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly PosixSignalRegistration[] _registrations;
    private int _signal; // the first signal received (a PosixSignal, never 0), or 0

    /// <summary>Handles SIGINT and SIGTERM until disposed.</summary>
    public Interruption() =>
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>The first signal, as a message names it.</summary>
    public string SignalName => (PosixSignal)_signal == PosixSignal.SIGTERM ? "SIGTERM" : "Ctrl-C (SIGINT)";

    /// <summary>The exit code of a run stopped by the first signal: 130 for SIGINT, 143 for SIGTERM.</summary>
    public int ExitCode => (PosixSignal)_signal == PosixSignal.SIGTERM ? 143 : 130;

    private void Handle(PosixSignalContext context)
    {
        if (Interlocked.CompareExchange(ref _signal, (int)context.Signal, 0) != 0)
            return; // the second: not cancelled, so the signal ends the process
        context.Cancel = true;
        Console.Error.WriteLine($"{SignalName}: stopping after the current step to save a checkpoint " +
                                "(again to quit at once, without one)");
        _source.Cancel();
    }

    /// <summary>Restores the signals' default handling.</summary>
    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _source.Dispose();
    }
}
