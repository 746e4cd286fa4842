using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// IP-Adapter's decoupled cross-attention: beside the text keys and values, every cross-attention
/// (attn2) of the UNet attends with the same query to the image-prompt tokens through its own
/// key/value projections, and adds that result, times the adapter weight, before to_out.
/// </summary>
internal static class IpAdapterAttention
{
    public const string KeyPrefix = "ip_adapter.";

    /// <summary>
    /// The adapter file's number for each transformer block's cross-attention, keyed by the block's
    /// module path ("down_blocks.1.attentions.0.transformer_blocks.0"). The file numbers all of the UNet's
    /// attention processors in diffusers' registration order (down blocks, then up blocks, then the mid
    /// block; attn1 before attn2), so the cross-attentions get the odd numbers 1, 3, 5, …
    /// </summary>
    public static IReadOnlyDictionary<string, int> Numbers(UnetConfig config)
    {
        int levels = config.BlockOutChannels.Count;
        var attentionModules = new List<(string Prefix, int Depth)>();
        for (int i = 0; i < levels; i++)
            if (config.DownBlockTypes[i] == Unet.CrossAttnDownBlock)
                for (int j = 0; j < config.LayersPerBlock[i]; j++)
                    attentionModules.Add(($"down_blocks.{i}.attentions.{j}", config.TransformerLayersPerBlock[i]));
        for (int i = 0; i < levels; i++)
        {
            int level = levels - 1 - i;
            if (config.UpBlockTypes[i] == Unet.CrossAttnUpBlock)
                for (int j = 0; j < config.LayersPerBlock[level] + 1; j++)
                    attentionModules.Add(($"up_blocks.{i}.attentions.{j}", config.TransformerLayersPerBlock[level]));
        }
        attentionModules.Add(("mid_block.attentions.0", config.TransformerLayersPerBlock[levels - 1]));

        var numbers = new Dictionary<string, int>(StringComparer.Ordinal);
        int next = 1;
        foreach (var (prefix, depth) in attentionModules)
            for (int k = 0; k < depth; k++, next += 2)
                numbers[$"{prefix}.transformer_blocks.{k}"] = next;
        return numbers;
    }

    /// <summary>The names of every tensor the UNet reads from an adapter file.</summary>
    public static IEnumerable<string> TensorNames(UnetConfig config)
        => Numbers(config).Values.SelectMany(n => new[] { $"{KeyPrefix}{n}.to_k_ip.weight", $"{KeyPrefix}{n}.to_v_ip.weight" });

    /// <summary>Attn(query, to_k_ip(tokens), to_v_ip(tokens)) with the block's heads: the term that is scaled and added.</summary>
    public static string ImageTerm(OnnxGraph g, IWeightSource adapter, int number, string query, string ipTokens, long channels, long crossDim, int heads)
    {
        var key = g.Linear(ipTokens, adapter, $"{KeyPrefix}{number}.to_k_ip", crossDim, channels, bias: false);
        var value = g.Linear(ipTokens, adapter, $"{KeyPrefix}{number}.to_v_ip", crossDim, channels, bias: false);
        return g.Attention(query, key, value, heads);
    }

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
