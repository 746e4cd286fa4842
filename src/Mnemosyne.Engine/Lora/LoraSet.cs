using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Lora;

/// <summary>A LoRA layer matched to the network's module it changes, with the user's weight.</summary>
internal sealed record MatchedLoraLayer(LoraFile File, LoraLayer Layer, string Module, long[] Shape, float Weight)
{
    /// <summary>The layer's down and up factors as stored (down [rank, in·taps], up [out, rank]) and its scale, weight · alpha / rank.</summary>
    public (float[] Down, float[] Up, float Scale) ReadFactors()
    {
        var down = new float[Layer.Down.ElementCount];
        var up = new float[Layer.Up.ElementCount];
        File.File.ReadFloat32(Layer.Down, down);
        File.File.ReadFloat32(Layer.Up, up);
        return (down, up, Weight * Layer.Scale);
    }
}

/// <summary>
/// LoRA files matched, layer by layer, to the networks they change: every layer of every file must be one of a
/// network's modules with a fitting shape, or the whole set is refused with what the file is (never half-applied).
/// </summary>
internal sealed class LoraSet : IDisposable
{
    private readonly List<LoraFile> files;

    private LoraSet(List<LoraFile> files, IReadOnlyDictionary<LoraTarget, IReadOnlyList<MatchedLoraLayer>> layers, IReadOnlyList<AppliedLora> applied)
    {
        this.files = files;
        Layers = layers;
        Applied = applied;
    }

    /// <summary>The matched layers of each network the set changes.</summary>
    public IReadOnlyDictionary<LoraTarget, IReadOnlyList<MatchedLoraLayer>> Layers { get; }

    public IReadOnlyList<AppliedLora> Applied { get; }

    public static LoraSet Open(IReadOnlyList<LoraRequest> requests, IReadOnlyDictionary<LoraTarget, LoraKeyMap> maps)
    {
        var files = new List<LoraFile>();
        try
        {
            var matched = new List<MatchedLoraLayer>();
            var applied = new List<AppliedLora>();
            foreach (var request in requests)
            {
                var file = LoraFile.Open(request.Path);
                files.Add(file);
                matched.AddRange(Match(file, request.Weight, maps));
                applied.Add(new AppliedLora(file.Name, file.ShortHash(), request.Weight, file.Path));
            }
            var layers = matched.Where(m => m.Weight != 0).GroupBy(m => m.Layer.Target)
                .ToDictionary(g => g.Key, g => (IReadOnlyList<MatchedLoraLayer>)g.ToList());
            return new LoraSet(files, layers, applied);
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    private static List<MatchedLoraLayer> Match(LoraFile file, float weight, IReadOnlyDictionary<LoraTarget, LoraKeyMap> maps)
    {
        var path = file.Path;
        var matched = new List<MatchedLoraLayer>();
        var missing = new List<LoraLayer>();
        var misfits = new List<string>();
        foreach (var layer in file.Layers)
        {
            if (maps[layer.Target].Resolve(layer, path) is not { } module)
            {
                missing.Add(layer);
                continue;
            }
            if (Fits(layer, module.Shape)) matched.Add(new MatchedLoraLayer(file, layer, module.Module, module.Shape, weight));
            else misfits.Add($"'{layer.Module}' (down {layer.Down.ShapeText}, up {layer.Up.ShapeText} for a weight of [{string.Join(", ", module.Shape)}])");
        }
        if (missing.Count == 0 && misfits.Count == 0) return matched;

        if (Sd1CrossAttention(file.Layers) is { } width)
            throw new CheckpointException(
                $"{path} is a LoRA for Stable Diffusion {(width == 768 ? "1.x" : "2.x")} (its cross-attention reads {width}-wide text), not for this SDXL model: use a LoRA made for SDXL.", path);
        if (missing.Count > 0)
            throw new CheckpointException(
                $"{path} is a LoRA for layers this model does not have, so it is not applied: {missing.Count} of its {file.Layers.Count} layers, e.g. " +
                $"'{missing[0].Module}' of the {LoraKeyMap.Describe(missing[0].Target)}. It was made for another model (or is damaged).", path, missing[0].Module);
        throw new CheckpointException(
            $"{path} is a LoRA whose shapes do not fit this model, so it is not applied: {misfits.Count} of its {file.Layers.Count} layers, e.g. {misfits[0]}. " +
            "It was made for another model of a different size.", path);
    }

    /// <summary>
    /// Whether down · up has the weight's shape: [out, in] for a linear layer (the factors may carry 1×1 kernels),
    /// [out, in, kh, kw] for a convolution, whose down has the kernel (or is 1×1 for a 1×1 kernel) and up is 1×1.
    /// </summary>
    internal static bool Fits(LoraLayer layer, long[] weight)
    {
        var down = layer.Down.Shape;
        if (layer.Up.Shape[0] != weight[0] || down[1] != weight[1]) return false;
        long[] downKernel = down.Length == 4 ? down[2..] : [1, 1];
        long[] weightKernel = weight.Length == 4 ? weight[2..] : [1, 1];
        return downKernel.SequenceEqual(weightKernel);
    }

    /// <summary>The text width an SD 1.x (768) or 2.x (1024) LoRA's UNet cross-attention keys read, where the file has one; null otherwise.</summary>
    private static long? Sd1CrossAttention(IEnumerable<LoraLayer> layers)
    {
        foreach (var layer in layers)
        {
            if (layer.Target != LoraTarget.Unet) continue;
            var name = layer.Module.Replace('_', '.');
            if ((name.EndsWith("attn2.to.k", StringComparison.Ordinal) || name.EndsWith("attn2.to.v", StringComparison.Ordinal)) && layer.Down.Shape[1] is 768 or 1024)
                return layer.Down.Shape[1];
        }
        return null;
    }

    public void Dispose()
    {
        foreach (var file in files) file.Dispose();
    }
}
