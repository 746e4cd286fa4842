using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// IP-Adapter's decoupled cross-attention: beside the text keys and values, every cross-attention
/// (attn2) of the UNet attends with the same query to the image-prompt tokens through its own
/// key/value projections, and adds that result, times the adapter weight, before to_out. The
/// projections depend on the tokens alone, so <see cref="IpAdapterKeys"/> computes them once per
/// reference and the UNet takes them as inputs, one key and one value per layer.
/// </summary>
internal static class IpAdapterAttention
{
    public const string KeyPrefix = "ip_adapter.";

    /// <summary>
    /// One cross-attention of the UNet: its transformer block's module path ("down_blocks.1.attentions.0.transformer_blocks.0"),
    /// the adapter file's number for it, and its width (the rows of its to_k_ip and to_v_ip). <paramref name="Part"/>,
    /// <paramref name="Block"/> and <paramref name="Attention"/> name it as set_ip_adapter_scale does ("down", 1, 0 for
    /// down.block_1 attention 0; the mid block is "mid", 0, 0); <paramref name="Level"/> is the resolution it runs at
    /// (0 for the latents' own, one more per downsampler).
    /// </summary>
    public sealed record Layer(string BlockPrefix, int Number, long Channels, string Part, int Block, int Attention, int Level);

    /// <summary>
    /// Every cross-attention of the UNet in the order its forward pass reaches them (down blocks, mid block,
    /// up blocks). The adapter file numbers all of the UNet's attention processors in diffusers' registration
    /// order (down blocks, then up blocks, then the mid block; attn1 before attn2), so the cross-attentions
    /// get the odd numbers 1, 3, 5, …
    /// </summary>
    public static IReadOnlyList<Layer> Layers(UnetConfig config)
    {
        int levels = config.BlockOutChannels.Count;
        var down = new List<Module>();
        var up = new List<Module>();
        for (int i = 0; i < levels; i++)
            if (config.DownBlockTypes[i] == Unet.CrossAttnDownBlock)
                for (int j = 0; j < config.LayersPerBlock[i]; j++)
                    down.Add(new($"down_blocks.{i}.attentions.{j}", config.TransformerLayersPerBlock[i], config.BlockOutChannels[i], "down", i, j, i));
        for (int i = 0; i < levels; i++)
        {
            int level = levels - 1 - i;
            if (config.UpBlockTypes[i] == Unet.CrossAttnUpBlock)
                for (int j = 0; j < config.LayersPerBlock[level] + 1; j++)
                    up.Add(new($"up_blocks.{i}.attentions.{j}", config.TransformerLayersPerBlock[level], config.BlockOutChannels[level], "up", i, j, level));
        }
        var mid = new Module("mid_block.attentions.0", config.TransformerLayersPerBlock[levels - 1], config.BlockOutChannels[levels - 1], "mid", 0, 0, levels - 1);

        int next = 1;
        List<Layer> Number(IEnumerable<Module> modules)
        {
            var layers = new List<Layer>();
            foreach (var m in modules)
                for (int k = 0; k < m.Depth; k++, next += 2)
                    layers.Add(new Layer($"{m.Prefix}.transformer_blocks.{k}", next, m.Channels, m.Part, m.Block, m.Attention, m.Level));
            return layers;
        }
        var downLayers = Number(down);
        var upLayers = Number(up);
        var midLayers = Number([mid]);
        return [.. downLayers, .. midLayers, .. upLayers];
    }

    private sealed record Module(string Prefix, int Depth, long Channels, string Part, int Block, int Attention, int Level);

    /// <summary>The names of every tensor the adapter's key/value projections read from an adapter file.</summary>
    public static IEnumerable<string> TensorNames(UnetConfig config)
        => Layers(config).SelectMany(l => new[] { ProjectionName(l.Number, "to_k_ip") + ".weight", ProjectionName(l.Number, "to_v_ip") + ".weight" });

    /// <summary>The prefix of one layer's projection in the adapter file: "ip_adapter.3.to_k_ip".</summary>
    public static string ProjectionName(int number, string projection) => $"{KeyPrefix}{number}.{projection}";

    /// <summary>Layer <paramref name="number"/>'s key [B, tokens, C]: an output of <see cref="IpAdapterKeys"/> and an input of the UNet.</summary>
    public static string KeyName(int number) => $"ip_key_{number}";

    /// <summary>Layer <paramref name="number"/>'s value [B, tokens, C], likewise.</summary>
    public static string ValueName(int number) => $"ip_value_{number}";

    /// <summary>
    /// The references' weights [layers, references]: row i scales reference r's term in the i-th layer of <see cref="Layers"/>
    /// (its weight times the layer's block weight, 0 outside its steps). An input of the UNet, so weights change per step
    /// with no new session.
    /// </summary>
    public const string ScalesInput = "ip_scale";

    /// <summary>
    /// [references, tokens]: 0 where a token is the reference's own, −∞ elsewhere. The references' tokens lie side by
    /// side in every layer's key and value; each reference attends over its own alone.
    /// </summary>
    public const string TokenBiasInput = "ip_token_bias";

    /// <summary>The references' region masks at resolution <paramref name="level"/> [references, queries] (diffusers' downsampled ip_adapter_masks).</summary>
    public static string MaskName(int level) => $"ip_mask_{level}";

    /// <summary>An adapter with more layers than this UNet has was made for another UNet: refuse it.</summary>
    public static void CheckNoOtherLayers(SafetensorsFile adapter, UnetConfig config)
    {
        var used = TensorNames(config).ToHashSet(StringComparer.Ordinal);
        var extra = adapter.Tensors.Keys.FirstOrDefault(k => k.StartsWith(KeyPrefix, StringComparison.Ordinal) && !used.Contains(k));
        if (extra is not null)
            throw new CheckpointException(
                $"{adapter.Path}: tensor '{extra}' has no attention layer in this UNet ({used.Count / 2} cross-attentions): the IP-Adapter was made for another model.",
                adapter.Path, extra);
    }
}
