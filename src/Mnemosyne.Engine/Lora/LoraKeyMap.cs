using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Lora;

/// <summary>
/// The layers of one network that a LoRA can change, by the names LoRA files give them: each weight of 2 or 4
/// dimensions the network's graph reads (<c>X.weight</c>) is the module X in diffusers/PEFT files, X with '_' for
/// '.' in kohya files and, where <paramref name="alternativeNames"/> gives one, that name too (the UNet's ldm name,
/// which sd-scripts' SDXL LoRAs use). Built from the modules the network really has, as diffusers' and kohya's
/// converters do, so a kohya name that two modules would share is known as ambiguous rather than guessed.
/// </summary>
public sealed class LoraKeyMap
{
    private readonly Dictionary<string, long[]> weights = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string?> kohya = new(StringComparer.Ordinal);

    /// <param name="networkWeights">Every weight the network reads, with its shape.</param>
    /// <param name="alternativeNames">Another dotted module name for a weight name, or null.</param>
    public LoraKeyMap(LoraTarget target, IEnumerable<(string Name, long[] Shape)> networkWeights, Func<string, string?>? alternativeNames = null)
    {
        Target = target;
        foreach (var (name, shape) in networkWeights)
        {
            if (shape.Length is not (2 or 4) || !name.EndsWith(".weight", StringComparison.Ordinal)) continue;
            var module = name[..^".weight".Length];
            weights[module] = shape;
            AddKohya(module.Replace('.', '_'), module);
            if (alternativeNames?.Invoke(name) is { } other) AddKohya(other.Replace('.', '_'), module);
        }
    }

    public LoraTarget Target { get; }

    private void AddKohya(string key, string module)
    {
        // null marks a name two modules share.
        if (kohya.TryGetValue(key, out var known) && known != module) kohya[key] = null;
        else kohya[key] = module;
    }

    /// <summary>The network's module a layer changes and its weight's shape; null when the network has no such module.</summary>
    public (string Module, long[] Shape)? Resolve(LoraLayer layer, string path)
    {
        string? module;
        if (layer.KohyaName)
        {
            if (!kohya.TryGetValue(layer.Module, out module)) return null;
            if (module is null)
                throw new CheckpointException(
                    $"{path}: the kohya layer name '{layer.Module}' fits more than one layer of the {Describe(Target)}, so the engine cannot tell which it changes.", path, layer.Module);
        }
        else module = weights.ContainsKey(layer.Module) ? layer.Module : null;
        return module is null ? null : (module, weights[module]);
    }

    /// <summary>The network as a message names it.</summary>
    public static string Describe(LoraTarget target) => target switch
    {
        LoraTarget.Unet => "UNet",
        LoraTarget.TextEncoder => "first text encoder (CLIP ViT-L)",
        _ => "second text encoder (OpenCLIP ViT-bigG)",
    };
}
