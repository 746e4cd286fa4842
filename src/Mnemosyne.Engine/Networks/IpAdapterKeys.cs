using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>One cross-attention's IP-Adapter key and value, [B, tokens, C] each; <paramref name="Number"/> is the adapter file's number for the layer.</summary>
public sealed record IpAdapterLayerKeyValue(int Number, FloatTensor Key, FloatTensor Value);

/// <summary>
/// The IP-Adapter's keys and values for every cross-attention of one UNet, made from one batch of ip tokens by
/// <see cref="IpAdapterKeys"/>: what the UNet's image term attends to.
/// </summary>
public sealed record IpAdapterKeyValues(IReadOnlyList<IpAdapterLayerKeyValue> Layers)
{
    /// <summary>Stacks two batches of one item each (the unconditional and the conditional branch) into a batch of two.</summary>
    public static IpAdapterKeyValues ConcatBatch(IpAdapterKeyValues first, IpAdapterKeyValues second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        if (!first.Layers.Select(l => l.Number).SequenceEqual(second.Layers.Select(l => l.Number)))
            throw new ArgumentException("Only keys and values made for the same UNet layers can be stacked.", nameof(second));
        return new(first.Layers.Zip(second.Layers, (a, b) => new IpAdapterLayerKeyValue(a.Number,
            FloatTensorOps.ConcatBatch(a.Key, b.Key), FloatTensorOps.ConcatBatch(a.Value, b.Value))).ToList());
    }
}

/// <summary>
/// The IP-Adapter's key and value projections of every UNet cross-attention (ip_adapter.{n}.to_k_ip and
/// to_v_ip): ip tokens [B, tokens, cross_attention_dim] → tokens·Wᵀ per layer. The tokens are fixed per
/// reference, so these run once per reference rather than in every UNet step, and the UNet holds none of
/// the adapter's weights.
/// </summary>
public sealed class IpAdapterKeys : IDisposable
{
    public const string IpTokensInput = "ip_tokens";

    private readonly OnnxModel model;
    private readonly IReadOnlyList<IpAdapterAttention.Layer> layers;

    private IpAdapterKeys(OnnxModel model, UnetConfig config)
    {
        this.model = model;
        Config = config;
        layers = IpAdapterAttention.Layers(config);
    }

    /// <summary>The UNet the keys and values are for.</summary>
    public UnetConfig Config { get; }

    /// <summary>Reads ip_adapter.* from an IP-Adapter weights file (image_proj.* belong to <see cref="ImageProjection"/>).</summary>
    public static IpAdapterKeys Load(string adapterPath, UnetConfig config, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        using var weights = SafetensorsFile.Open(adapterPath);
        // With Int8 the projections read 8-bit weights, converted once into the cache.
        var graph = settings.Precision == WeightPrecision.Float32
            ? BuildGraph(config, weights, Path.GetDirectoryName(weights.Path))
            : ConvertedNetwork.Build(settings, [("ip-adapter-keys", weights)], (converted, folder) => BuildGraph(config, converted[0], folder),
                checkBeforeConverting: () => IpAdapterAttention.CheckNoOtherLayers(weights, config));
        return new IpAdapterKeys(OnnxModel.Create(graph, settings), config);
    }

    /// <summary>
    /// The graph: <c>ip_tokens</c> [B, tokens, cross_attention_dim] → <c>ip_key_{n}</c> and <c>ip_value_{n}</c> [B, tokens, C]
    /// for every cross-attention n of a UNet of <paramref name="config"/>. Asks <paramref name="adapterWeights"/> for
    /// every tensor with its shape and refuses a file with layers this UNet lacks, so an adapter made for another
    /// UNet is refused here, before any weight is read.
    /// </summary>
    public static OnnxGraph BuildGraph(UnetConfig config, IWeightSource adapterWeights, string? weightFolder)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(adapterWeights);
        if (adapterWeights is SafetensorsFile file) IpAdapterAttention.CheckNoOtherLayers(file, config);

        long cross = config.CrossAttentionDim;
        var g = new OnnxGraph("ip_adapter_keys", weightFolder);
        var tokens = g.Input(IpTokensInput, DataType.Float, "batch", "image_tokens", cross);
        foreach (var layer in IpAdapterAttention.Layers(config))
        {
            var key = g.Linear(tokens, adapterWeights, IpAdapterAttention.ProjectionName(layer.Number, "to_k_ip"), cross, layer.Channels, bias: false);
            var value = g.Linear(tokens, adapterWeights, IpAdapterAttention.ProjectionName(layer.Number, "to_v_ip"), cross, layer.Channels, bias: false);
            g.Output(key, IpAdapterAttention.KeyName(layer.Number), DataType.Float, "batch", "image_tokens", layer.Channels);
            g.Output(value, IpAdapterAttention.ValueName(layer.Number), DataType.Float, "batch", "image_tokens", layer.Channels);
        }
        return g;
    }

    /// <summary>Every cross-attention's key and value for ip tokens [B, tokens, cross_attention_dim].</summary>
    public IpAdapterKeyValues Run(FloatTensor ipTokens, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(ipTokens);
        if (ipTokens.Shape is not [> 0, > 0, var width] || width != Config.CrossAttentionDim)
            throw new ArgumentException(
                $"Ip tokens have shape [{string.Join(", ", ipTokens.Shape)}]; the adapter's projections take [B, tokens, {Config.CrossAttentionDim}] (the image projection's ip tokens).",
                nameof(ipTokens));
        var names = layers.SelectMany(l => new[] { IpAdapterAttention.KeyName(l.Number), IpAdapterAttention.ValueName(l.Number) }).ToArray();
        var outputs = model.Run([ModelInput.Float(IpTokensInput, ipTokens)], names, cancellation);
        return new IpAdapterKeyValues(layers.Select((l, i) => new IpAdapterLayerKeyValue(l.Number, outputs[2 * i], outputs[2 * i + 1])).ToList());
    }

    public void Dispose() => model.Dispose();
}
