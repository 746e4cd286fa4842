using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Models;

/// <summary>A speed LoRA among a scene's LoRAs: the known model it is, its file, and the sampling it was distilled for.</summary>
public sealed record SpeedLora(string ModelName, string Path, SchedulerSettings Sampling);

/// <summary>
/// Finds the speed LoRAs (LoRA models whose manifest gives a scheduler: SDXL-Lightning's, LCM-LoRA) among a scene's LoRAs,
/// so that -Quality Fast takes their sampling on any checkpoint. A LoRA is one when its file is the model's installed file
/// (named with -Lora by the model's name), or when its SHA-256 is the one the manifest pins (the same file kept elsewhere,
/// under another name); each file is hashed once per process (and again when it changes), and only while some speed LoRA
/// has a pin.
/// </summary>
public static class SpeedLoras
{
    /// <summary>The speed LoRA among <paramref name="loras"/> (those at weight 0 are left out, as the scene leaves them); null when none is.</summary>
    /// <exception cref="ArgumentException">Two speed LoRAs that ask for different sampling; the message names both.</exception>
    public static SpeedLora? Find(ModelCatalog catalog, IEnumerable<LoraRequest> loras)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(loras);
        var given = loras.Where(l => l.Weight != 0 && !string.IsNullOrWhiteSpace(l.Path)).Select(l => System.IO.Path.GetFullPath(l.Path)).ToList();
        var speed = catalog.Manifests.Where(m => m.Role == ModelRole.Lora && m.Scheduler is not null).ToList();
        if (given.Count == 0 || speed.Count == 0) return null;

        var installed = speed.Select(m => (Manifest: m, Status: catalog.Inspect(m)))
            .Where(s => s.Status.IsComplete)
            .Select(s => (s.Manifest, Path: System.IO.Path.GetFullPath(s.Status.EntryPath!)))
            .ToList();
        var pinned = speed.SelectMany(m => m.Files.Where(f => f.Sha256 is not null && f.Path == m.Entry).Select(f => (Manifest: m, f.Sha256)))
            .ToList();
        var found = new List<SpeedLora>();
        foreach (var path in given)
        {
            var manifest = installed.FirstOrDefault(i => PathsEqual(i.Path, path)).Manifest;
            if (manifest is null && pinned.Count > 0 && File.Exists(path) && ModelFileHash.Sha256Of(path) is { } hash)
                manifest = pinned.FirstOrDefault(p => p.Sha256 == hash).Manifest;
            if (manifest is not null) found.Add(new SpeedLora(manifest.Name, path, manifest.Scheduler!));
        }
        var differing = found.FirstOrDefault(f => f.Sampling != found[0].Sampling);
        if (differing is not null)
            throw new ArgumentException(
                $"The scene has two speed LoRAs that ask for different sampling: {found[0].ModelName} ({Describe(found[0].Sampling)}) and " +
                $"{differing.ModelName} ({Describe(differing.Sampling)}). Use one of them.", "Lora");
        return found.FirstOrDefault();
    }

    /// <summary>"4 Euler steps at trailing timesteps, guidance 0".</summary>
    public static string Describe(SchedulerSettings sampling) =>
        FormattableString.Invariant($"{sampling.Steps} {sampling.Kind} steps{(sampling.TimestepSpacing is { } spacing ? $" at {spacing} timesteps" : "")}, guidance {sampling.GuidanceScale}");

    private static bool PathsEqual(string a, string b) =>
        string.Equals(a, b, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
}
