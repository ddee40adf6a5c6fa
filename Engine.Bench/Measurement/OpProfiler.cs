// Records the time each op family takes, as an observer of a backend: it synchronises after each op, so the times
// are the ops' own. Used by `step --profile` to show where a step's time goes. Attaching it replaces the backend's
// observer; the backend stays its device's.
using System.Diagnostics;
using Engine.Kernels;

namespace Engine.Bench.Measurement;

internal sealed class OpProfiler : IBackendObserver
{
    private readonly Backend _backend;
    private readonly Dictionary<string, (double Milliseconds, int Calls)> _times = new();
    private long _started;

    /// <summary>Attaches a profiler to <paramref name="backend"/>.</summary>
    public OpProfiler(Backend backend)
    {
        _backend = backend;
        backend.Observer = this;
    }

    public IReadOnlyDictionary<string, (double Milliseconds, int Calls)> Times => _times;

    public void Reset() => _times.Clear();

    public void OnOpStarting(string op) => _started = Stopwatch.GetTimestamp();

    public void OnOpFinished(string op)
    {
        _backend.Synchronize();
        var (milliseconds, calls) = _times.GetValueOrDefault(op);
        _times[op] = (milliseconds + Stopwatch.GetElapsedTime(_started).TotalMilliseconds, calls + 1);
    }
}
