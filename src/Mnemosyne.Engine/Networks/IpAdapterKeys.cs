using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
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

    /// <summary>Several sets' tokens side by side in every layer (diffusers' several images of one adapter): [B, Σ tokens, C].</summary>
    public static IpAdapterKeyValues ConcatTokens(IEnumerable<IpAdapterKeyValues> sets)
    {
        var all = sets.ToList();
        if (all.Count == 1) return all[0];
        return new(all[0].Layers.Select((layer, i) => new IpAdapterLayerKeyValue(layer.Number,
            ConcatTokens(all.Select(s => s.Layers[i].Key).ToList()), ConcatTokens(all.Select(s => s.Layers[i].Value).ToList()))).ToList());
    }

    /// <summary>These tokens <paramref name="times"/> times side by side.</summary>
    public IpAdapterKeyValues RepeatTokens(int times) => ConcatTokens(Enumerable.Repeat(this, times));

    private static FloatTensor ConcatTokens(IReadOnlyList<FloatTensor> tensors)
    {
        int batch = tensors[0].Shape[0], channels = tensors[0].Shape[2];
        if (tensors.Any(t => t.Shape is not [var b, _, var c] || b != batch || c != channels))
            throw new ArgumentException("Only keys and values of one batch and width can be laid side by side.", nameof(tensors));
        int tokens = tensors.Sum(t => t.Shape[1]);
        var data = new float[batch * tokens * channels];
        for (int b = 0, at = 0; b < batch; b++)
            foreach (var t in tensors)
            {
                int length = t.Shape[1] * channels;
                Array.Copy(t.Data, b * length, data, at, length);
                at += length;
            }
        return new FloatTensor(data, [batch, tokens, channels]);
    }

    /// <summary>Batch item <paramref name="index"/> of every layer, as keys and values with batch 1.</summary>
    public IpAdapterKeyValues BatchItem(int index)
        => new(Layers.Select(l => new IpAdapterLayerKeyValue(l.Number, FloatTensorOps.BatchItem(l.Key, index), FloatTensorOps.BatchItem(l.Value, index))).ToList());
}

/// <summary>
/// The IP-Adapter's key and value projections of every UNet cross-attention (ip_adapter.{n}.to_k_ip and
/// to_v_ip): ip tokens [B, tokens, cross_attention_dim] → tokens·Wᵀ per layer. The tokens are fixed per
/// reference, so these run once per reference rather than in every UNet step, and the UNet holds none of
/// the adapter's weights.
/// </summary>
/// <remarks>
/// The projections run beside the loaded UNet, so they are never in memory all at once (1.4 GB in float32 at
/// SDXL sizes, more while ONNX Runtime widens an fp16 file): <see cref="Run"/> makes a session for
/// <see cref="LayersPerSession"/> layers at a time, runs it and releases it, and the sessions multiply the
/// weights where they lie rather than pre-packing a copy (a few token rows are multiplied once). Loading holds
/// only the graphs (and the file open, for the sessions to read).
/// </remarks>
public sealed class IpAdapterKeys : IDisposable
{
    public const string IpTokensInput = "ip_tokens";

    /// <summary>At SDXL sizes at most 210 MB of float32 weights per session.</summary>
    public const int LayersPerSession = 10;

    private readonly SafetensorsFile weights;
    private readonly IReadOnlyList<(IReadOnlyList<IpAdapterAttention.Layer> Layers, OnnxGraph Graph)> parts;
    private readonly SessionSettings settings;

    private IpAdapterKeys(UnetConfig config, SafetensorsFile weights, IReadOnlyList<(IReadOnlyList<IpAdapterAttention.Layer>, OnnxGraph)> parts, SessionSettings settings)
    {
        Config = config;
        this.weights = weights;
        this.parts = parts;
        this.settings = settings;
    }

    /// <summary>The UNet the keys and values are for.</summary>
    public UnetConfig Config { get; }

    /// <summary>
    /// Checks ip_adapter.* of an IP-Adapter weights file against the UNet (image_proj.* belong to <see cref="ImageProjection"/>)
    /// and builds the graphs that read them; no weight is read until <see cref="Run"/>.
    /// </summary>
    public static IpAdapterKeys Load(string adapterPath, UnetConfig config, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(settings);
        var weights = SafetensorsFile.Open(adapterPath);
        try
        {
            IpAdapterAttention.CheckNoOtherLayers(weights, config);
            var folder = Path.GetDirectoryName(weights.Path);
            var layers = IpAdapterAttention.Layers(config).ToList();
            IReadOnlyList<(IReadOnlyList<IpAdapterAttention.Layer>, OnnxGraph)> parts = settings.Precision == WeightPrecision.Float32
                ? layers.Chunk(LayersPerSession)
                    .Select(chunk => ((IReadOnlyList<IpAdapterAttention.Layer>)chunk, BuildGraph(config, chunk, weights, folder)))
                    .ToList()
                // With Int8 the projections read 8-bit weights converted once into the cache (0.38 GB at SDXL sizes): one session.
                : [(layers, ConvertedNetwork.Build(settings, [("ip-adapter-keys", weights)], (converted, convertedFolder) => BuildGraph(config, converted[0], convertedFolder)))];
            // A session per run, unpacked: an optimised copy kept on disk would save nothing but would duplicate the weights.
            return new IpAdapterKeys(config, weights, parts, settings with { PrePackWeights = false, SessionCache = null });
        }
        catch
        {
            weights.Dispose();
            throw;
        }
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
        return BuildGraph(config, IpAdapterAttention.Layers(config), adapterWeights, weightFolder);
    }

    private static OnnxGraph BuildGraph(UnetConfig config, IEnumerable<IpAdapterAttention.Layer> layers, IWeightSource adapterWeights, string? weightFolder)
    {
        long cross = config.CrossAttentionDim;
        var g = new OnnxGraph("ip_adapter_keys", weightFolder);
        var tokens = g.Input(IpTokensInput, DataType.Float, "batch", "image_tokens", cross);
        foreach (var layer in layers)
        {
            var key = g.Linear(tokens, adapterWeights, IpAdapterAttention.ProjectionName(layer.Number, "to_k_ip"), cross, layer.Channels, bias: false);
            var value = g.Linear(tokens, adapterWeights, IpAdapterAttention.ProjectionName(layer.Number, "to_v_ip"), cross, layer.Channels, bias: false);
            g.Output(key, IpAdapterAttention.KeyName(layer.Number), DataType.Float, "batch", "image_tokens", layer.Channels);
            g.Output(value, IpAdapterAttention.ValueName(layer.Number), DataType.Float, "batch", "image_tokens", layer.Channels);
        }
        return g;
    }

    /// <summary>
    /// Every cross-attention's key and value for ip tokens [B, tokens, cross_attention_dim]. Each run reads the
    /// weights again (about a second at SDXL sizes): give all the tokens needed at once, as one batch.
    /// </summary>
    public IpAdapterKeyValues Run(FloatTensor ipTokens, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(ipTokens);
        if (ipTokens.Shape is not [> 0, > 0, var width] || width != Config.CrossAttentionDim)
            throw new ArgumentException(
                $"Ip tokens have shape [{string.Join(", ", ipTokens.Shape)}]; the adapter's projections take [B, tokens, {Config.CrossAttentionDim}] (the image projection's ip tokens).",
                nameof(ipTokens));
        var keyValues = new List<IpAdapterLayerKeyValue>();
        foreach (var (layers, graph) in parts)
        {
            cancellation.ThrowIfCancellationRequested();
            var names = layers.SelectMany(l => new[] { IpAdapterAttention.KeyName(l.Number), IpAdapterAttention.ValueName(l.Number) }).ToArray();
            FloatTensor[] outputs;
            using (var model = OnnxModel.Create(graph, settings))
                outputs = model.Run([ModelInput.Float(IpTokensInput, ipTokens)], names, cancellation);
            NativeHeap.Trim();
            keyValues.AddRange(layers.Select((l, i) => new IpAdapterLayerKeyValue(l.Number, outputs[2 * i], outputs[2 * i + 1])));
        }
        return new IpAdapterKeyValues(keyValues);
    }

    public void Dispose() => weights.Dispose();
}
