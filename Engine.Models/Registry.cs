// Model names, one registry: resnet<depth>[-a|-b|-c] and plain<depth>. The family follows from the depth
// (CIFAR: 20, 32, 44, 56, 110, 1202; ImageNet: 18, 34, 50, 101, 152; plain ImageNet nets: 18, 34); the option
// defaults as in the paper (CIFAR → A, ImageNet → B).
using System.Numerics;
using Engine.Core;

namespace Engine.Models;

/// <summary>Model names: parses resnet&lt;depth&gt;[-a|-b|-c] and plain&lt;depth&gt; into a
/// <see cref="ResNetSpec"/> and builds the networks.</summary>
public static class ModelRegistry
{
    /// <summary>Depths of the CIFAR nets, ResNet and plain (6n + 2): 20, 32, 44, 56, 110, 1202.</summary>
    public static IReadOnlyList<int> CifarDepths { get; } = [20, 32, 44, 56, 110, 1202];

    /// <summary>Depths of the ImageNet ResNets: 18, 34, 50, 101, 152.</summary>
    public static IReadOnlyList<int> ImageNetDepths { get; } = [18, 34, 50, 101, 152];

    /// <summary>Depths of the plain ImageNet nets (the paper's plain-18 and plain-34).</summary>
    public static IReadOnlyList<int> PlainImageNetDepths { get; } = [18, 34];

    /// <summary>Every accepted name, canonical forms first (resnet20-a …), then the short forms.</summary>
    public static IReadOnlyList<string> Names { get; } = BuildNames();

    private static List<string> BuildNames()
    {
        var names = new List<string>();
        foreach (int depth in CifarDepths.Concat(ImageNetDepths))
        {
            names.Add($"resnet{depth}");
            names.AddRange(new[] { "a", "b", "c" }.Select(o => $"resnet{depth}-{o}"));
        }
        names.AddRange(CifarDepths.Concat(PlainImageNetDepths).Select(d => $"plain{d}"));
        return names;
    }

    /// <summary>Parses a model name.</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the valid ones.</exception>
    public static ResNetSpec Parse(string name)
    {
        string n = name.Trim().ToLowerInvariant();
        bool plain = n.StartsWith("plain");
        string rest = plain ? n["plain".Length..] : n.StartsWith("resnet") ? n["resnet".Length..] : "";
        string? option = null;
        int dash = rest.IndexOf('-');
        if (dash >= 0)
        {
            option = rest[(dash + 1)..];
            rest = rest[..dash];
        }
        if (!int.TryParse(rest, out int depth) || (plain && option is not null) || !IsKnownDepth(depth, plain) ||
            option is not (null or "a" or "b" or "c"))
            throw new ArgumentException(
                $"Unknown model '{name}'. Models: resnet<depth>[-a|-b|-c] with depth in " +
                $"{string.Join(", ", CifarDepths)} (CIFAR, default A) or {string.Join(", ", ImageNetDepths)} " +
                $"(ImageNet, default B); plain<depth> with depth in {string.Join(", ", CifarDepths)}, " +
                $"{string.Join(", ", PlainImageNetDepths)}.", nameof(name));
        var family = CifarDepths.Contains(depth) ? ResNetFamily.Cifar : ResNetFamily.ImageNet;
        var shortcut = plain ? ShortcutOption.None
            : option switch
            {
                "a" => ShortcutOption.A,
                "b" => ShortcutOption.B,
                "c" => ShortcutOption.C,
                _ => family == ResNetFamily.Cifar ? ShortcutOption.A : ShortcutOption.B,
            };
        return new ResNetSpec(family, depth, shortcut);
    }

    private static bool IsKnownDepth(int depth, bool plain) =>
        CifarDepths.Contains(depth) || (plain ? PlainImageNetDepths.Contains(depth) : ImageNetDepths.Contains(depth));

    /// <summary>Builds the named network on <paramref name="device"/>.</summary>
    public static ResNet<T> Create<T>(string name, Device device, int seed = 0, int? classes = null,
        bool zeroInitResidual = false, int inputChannels = 3) where T : unmanaged, IFloatingPointIeee754<T> =>
        new(Parse(name), device, seed, classes, zeroInitResidual, inputChannels);
}
