// Options shared by the commands.
using System.CommandLine;
using Engine.Core;

namespace Engine.Bench.Commands;

internal static class CommonOptions
{
    public static Option<string?> Device() => new("--device")
    {
        Description = $"Device: {string.Join(", ", Engine.Core.Device.Kinds)} " +
                      $"(default: ${Engine.Core.Device.EnvironmentVariable}, else the first present in that order).",
    };

    /// <summary>Creates the device a command runs on and says which one it is and why.</summary>
    public static Device OpenDevice(string? requested)
    {
        var device = Engine.Core.Device.Select(requested);
        Console.WriteLine($"device: {device.Kind} — {device.Backend.Description} ({device.SelectionReason})");
        return device;
    }
}
