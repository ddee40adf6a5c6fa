// A bound on how long one collective may block. A rank that dies makes mpirun end the job; a rank that hangs (or
// never reaches the collective) would leave the others waiting inside MPI forever. So every collective is armed
// here first: a dedicated thread waits for its deadline and, if the collective has not returned by then, reports
// which collective on which rank timed out and ends the job (MpiCommunicator passes MPI_Abort).
namespace Engine.Core.Distributed;

/// <summary>Runs <c>onTimeout</c> with a description of the collective when one stays armed past its deadline.</summary>
internal sealed class CollectiveWatchdog : IDisposable
{
    private readonly object _gate = new();
    private readonly TimeSpan _timeout;
    private readonly Action<string> _onTimeout;
    private readonly Thread _thread;
    private string? _armed;
    private long _deadline; // Environment.TickCount64 milliseconds
    private bool _stopped;

    public CollectiveWatchdog(TimeSpan timeout, Action<string> onTimeout)
    {
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The collective timeout must be positive.");
        _timeout = timeout;
        _onTimeout = onTimeout;
        _thread = new Thread(Watch) { IsBackground = true, Name = "collective watchdog" };
        _thread.Start();
    }

    public TimeSpan Timeout => _timeout;

    /// <summary>Arms the watchdog for <paramref name="collective"/> until the returned scope is disposed.</summary>
    public Armed Arm(string collective)
    {
        lock (_gate)
        {
            _armed = collective;
            _deadline = Environment.TickCount64 + (long)_timeout.TotalMilliseconds;
            Monitor.Pulse(_gate);
        }
        return new Armed(this);
    }

    /// <summary>Disarms the watchdog when disposed.</summary>
    public readonly struct Armed(CollectiveWatchdog watchdog) : IDisposable
    {
        public void Dispose()
        {
            lock (watchdog._gate) watchdog._armed = null;
        }
    }

    private void Watch()
    {
        string expired;
        lock (_gate)
        {
            while (true)
            {
                if (_stopped) return;
                if (_armed is null)
                {
                    Monitor.Wait(_gate);
                    continue;
                }
                long left = _deadline - Environment.TickCount64;
                if (left <= 0)
                {
                    expired = _armed;
                    break;
                }
                Monitor.Wait(_gate, TimeSpan.FromMilliseconds(left));
            }
        }
        _onTimeout(expired);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopped = true;
            Monitor.Pulse(_gate);
        }
        _thread.Join();
    }
}
