using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// Sizes of IP-Adapter Plus's perceiver resampler. As diffusers' _convert_ip_adapter_image_proj_to_diffusers
/// does, they are read from the adapter file's shapes (latents [1, queries, hidden], proj_in [hidden, embed],
/// proj_out [output, hidden], to_q [heads·64, hidden]); the depth, head size and feed-forward ratio are
/// diffusers' fixed defaults.
/// </summary>
public sealed record IpAdapterPlusImageProjectionConfig(int EmbedDims, int HiddenDims, int OutputDims, int Queries, int Heads)
{
    public const int Depth = 4;
    public const int HeadDim = 64;
    public const int FeedForwardRatio = 4;

    /// <summary>ip-adapter-plus(-face)_sdxl_vit-h: ViT-H's 1280 features → 16 tokens of SDXL's 2048.</summary>
    public static IpAdapterPlusImageProjectionConfig SdxlVitH { get; } = new(1280, 1280, 2048, 16, 20);

    public int InnerDims => Heads * HeadDim;

    /// <summary>The sizes an adapter file's tensors give, checked against the image encoder and the UNet they must fit.</summary>
    public static IpAdapterPlusImageProjectionConfig Read(SafetensorsFile file, ClipVisionConfig imageEncoder, UnetConfig unet)
    {
        ArgumentNullException.ThrowIfNull(file);
        long[] Shape(string name) => file.Contains(name) ? file[name].Shape
            : throw new CheckpointException($"{file.Path}: tensor '{name}' is missing, so it is no IP-Adapter Plus file. Download or copy it again.", file.Path, name);
        var latents = Shape(Prefix + ".latents");
        var projIn = Shape(Prefix + ".proj_in.weight");
        var projOut = Shape(Prefix + ".proj_out.weight");
        var toQ = Shape(Prefix + ".layers.0.0.to_q.weight");
        if (latents is not [1, > 0, > 0] || projIn.Length != 2 || projOut.Length != 2 || toQ.Length != 2 || toQ[0] % HeadDim != 0)
            throw new CheckpointException(
                $"{file.Path}: the resampler's shapes (latents [{string.Join(", ", latents)}], to_q [{string.Join(", ", toQ)}]) are not IP-Adapter Plus's; the file is damaged. Download or copy it again.",
                file.Path, Prefix + ".latents");
        var config = new IpAdapterPlusImageProjectionConfig((int)projIn[1], (int)latents[2], (int)projOut[0], (int)latents[1], (int)(toQ[0] / HeadDim));
        if (config.EmbedDims != imageEncoder.HiddenSize || config.OutputDims != unet.CrossAttentionDim)
            throw new CheckpointException(
                $"{file.Path}: this IP-Adapter Plus reads {config.EmbedDims} image features and makes tokens of {config.OutputDims}, but the image encoder has {imageEncoder.HiddenSize} " +
                $"and the UNet's cross-attention takes {unet.CrossAttentionDim}: it belongs to another model (the SDXL ViT-H adapters are ip-adapter-plus_sdxl_vit-h and ip-adapter-plus-face_sdxl_vit-h).",
                file.Path, Prefix + ".proj_in.weight");
        return config;
    }

    internal const string Prefix = "image_proj";
}

/// <summary>
/// IP-Adapter Plus's image projection (diffusers IPAdapterPlusImageProjection, a perceiver resampler): the
/// image encoder's penultimate hidden states [B, patches + 1, embed] → proj_in; learned latents [B, queries, hidden]
/// pass <see cref="IpAdapterPlusImageProjectionConfig.Depth"/> blocks (attention of the latents over the
/// normed features and latents, then a feed-forward, each added to its input) → proj_out → LayerNorm: the
/// adapter's key/value tokens. Names are the adapter file's (layers.i.0 attention with norm1/norm2, to_q,
/// fused to_kv and to_out; layers.i.1 the LayerNorm–Linear–GELU–Linear feed-forward), not diffusers' renamed ones.
/// </summary>
public sealed class IpAdapterPlusImageProjection : IDisposable
{
    public const string HiddenStatesInput = "image_hidden_states";
    public const string IpTokensOutput = ImageProjection.IpTokensOutput;

    private const float LayerNormEpsilon = 1e-5f;
    private const string Prefix = IpAdapterPlusImageProjectionConfig.Prefix;
    private readonly OnnxModel model;

    private IpAdapterPlusImageProjection(OnnxModel model, IpAdapterPlusImageProjectionConfig config)
    {
        this.model = model;
        Config = config;
    }

    public IpAdapterPlusImageProjectionConfig Config { get; }

    /// <summary>Reads image_proj.* from an IP-Adapter Plus file; with Int8 its linear layers read 8-bit weights, converted once into the cache.</summary>
    public static IpAdapterPlusImageProjection Load(string adapterPath, ClipVisionConfig imageEncoder, UnetConfig unet, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        using var weights = SafetensorsFile.Open(adapterPath);
        var config = IpAdapterPlusImageProjectionConfig.Read(weights, imageEncoder, unet);
        var graph = settings.Precision == WeightPrecision.Float32
            ? BuildGraph(config, weights, Path.GetDirectoryName(weights.Path))
            : ConvertedNetwork.Build(settings, [("ip-adapter-plus-projection", weights)], (converted, folder) => BuildGraph(config, converted[0], folder));
        return new IpAdapterPlusImageProjection(OnnxModel.Create(graph, settings), config);
    }

    /// <summary>The resampler's graph: <c>image_hidden_states</c> [B, T, embed] → <c>ip_tokens</c> [B, queries, output].</summary>
    public static OnnxGraph BuildGraph(IpAdapterPlusImageProjectionConfig config, IWeightSource weights, string? weightFolder)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        if (config.EmbedDims <= 0 || config.HiddenDims <= 0 || config.OutputDims <= 0 || config.Queries <= 0 || config.Heads <= 0)
            throw new ArgumentException($"Resampler sizes must be positive: {config}.", nameof(config));
        long hidden = config.HiddenDims, inner = config.InnerDims;

        var g = new OnnxGraph("ip_adapter_plus_image_projection", weightFolder);
        var states = g.Input(HiddenStatesInput, DataType.Float, "batch", "image_tokens", config.EmbedDims);
        var batch = g.Slice(g.Shape(states), [0], [1], [0]);
        var latents = g.Node("Expand", [g.Weight(weights, Prefix + ".latents", 1, config.Queries, hidden), g.Concat(0, batch, g.Int64s(config.Queries, hidden))]);
        var x = g.Linear(states, weights, Prefix + ".proj_in", config.EmbedDims, hidden);
        for (int i = 0; i < IpAdapterPlusImageProjectionConfig.Depth; i++)
        {
            var attention = $"{Prefix}.layers.{i}.0";
            var features = g.LayerNorm(x, weights, attention + ".norm1", hidden, LayerNormEpsilon);
            var normed = g.LayerNorm(latents, weights, attention + ".norm2", hidden, LayerNormEpsilon);
            var q = g.Linear(normed, weights, attention + ".to_q", hidden, inner, bias: false);
            // The latents attend over the features and themselves; to_kv holds the key's rows, then the value's.
            var kv = g.Split(g.Linear(g.Concat(1, features, normed), weights, attention + ".to_kv", hidden, 2 * inner, bias: false), -1, 2);
            var attended = g.Linear(g.Attention(q, kv[0], kv[1], config.Heads), weights, attention + ".to_out", inner, hidden, bias: false);
            latents = g.Add(attended, latents);

            var feedForward = $"{Prefix}.layers.{i}.1";
            var h = g.LayerNorm(latents, weights, feedForward + ".0", hidden, LayerNormEpsilon);
            h = g.Gelu(g.Linear(h, weights, feedForward + ".1", hidden, hidden * IpAdapterPlusImageProjectionConfig.FeedForwardRatio, bias: false));
            h = g.Linear(h, weights, feedForward + ".3", hidden * IpAdapterPlusImageProjectionConfig.FeedForwardRatio, hidden, bias: false);
            latents = g.Add(h, latents);
        }
        var tokens = g.Linear(latents, weights, Prefix + ".proj_out", hidden, config.OutputDims);
        tokens = g.LayerNorm(tokens, weights, Prefix + ".norm_out", config.OutputDims, LayerNormEpsilon);
        g.Output(tokens, IpTokensOutput, DataType.Float, "batch", config.Queries, config.OutputDims);
        return g;
    }

    /// <summary>Resamples penultimate hidden states [B, T, embed] to ip tokens [B, queries, output].</summary>
    public FloatTensor Run(FloatTensor hiddenStates, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(hiddenStates);
        if (hiddenStates.Shape is not [> 0, > 0, var width] || width != Config.EmbedDims
            || hiddenStates.Data.LongLength != (long)hiddenStates.Shape[0] * hiddenStates.Shape[1] * width)
            throw new ArgumentException(
                $"Hidden states have shape [{string.Join(", ", hiddenStates.Shape)}]; the resampler takes [B, tokens, {Config.EmbedDims}] (the image encoder's penultimate hidden states).",
                nameof(hiddenStates));
        return model.Run([ModelInput.Float(HiddenStatesInput, hiddenStates)], [IpTokensOutput], cancellation)[0];
    }

    public void Dispose() => model.Dispose();
}
