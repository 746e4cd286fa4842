using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// Sizes of the base IP-Adapter image projection. The adapter file carries no config: the sizes come
/// from the image encoder (its projection_dim) and the UNet (its cross_attention_dim).
/// </summary>
public sealed record ImageProjectionConfig(int ImageEmbedDim, int CrossAttentionDim, int Tokens = ImageProjectionConfig.BaseAdapterTokens)
{
    /// <summary>The base (non-Plus) SDXL adapters always make 4 tokens.</summary>
    public const int BaseAdapterTokens = 4;

    public static ImageProjectionConfig For(ClipVisionConfig imageEncoder, UnetConfig unet)
        => new(imageEncoder.ProjectionDim, unet.CrossAttentionDim);
}

/// <summary>
/// The base IP-Adapter's image projection (diffusers ImageProjection): image_embeds [B, E] →
/// LayerNorm(reshape(Linear(E → tokens·cross)(x), [B, tokens, cross])), the key/value tokens of the
/// adapter's cross-attention.
/// </summary>
public sealed class ImageProjection : IDisposable
{
    public const string ImageEmbedsInput = "image_embeds";
    public const string IpTokensOutput = "ip_tokens";

    private const float LayerNormEpsilon = 1e-5f;
    private readonly OnnxModel model;

    private ImageProjection(OnnxModel model, ImageProjectionConfig config)
    {
        this.model = model;
        Config = config;
    }

    public ImageProjectionConfig Config { get; }

    /// <summary>Reads image_proj.* from an IP-Adapter weights file (the ip_adapter.* tensors belong to <see cref="IpAdapterKeys"/>).</summary>
    public static ImageProjection Load(string adapterPath, ImageProjectionConfig config, SessionSettings settings)
    {
        using var weights = SafetensorsFile.Open(adapterPath);
        var graph = BuildGraph(config, weights, Path.GetDirectoryName(weights.Path));
        return new ImageProjection(OnnxModel.Create(graph, settings), config);
    }

    /// <summary>The projection's graph: <c>image_embeds</c> [B, E] → <c>ip_tokens</c> [B, tokens, cross_attention_dim].</summary>
    public static OnnxGraph BuildGraph(ImageProjectionConfig config, IWeightSource weights, string? weightFolder)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        if (config.ImageEmbedDim <= 0 || config.CrossAttentionDim <= 0 || config.Tokens <= 0)
            throw new ArgumentException(
                $"Image projection sizes must be positive: image embeds {config.ImageEmbedDim}, cross-attention dim {config.CrossAttentionDim}, tokens {config.Tokens}.",
                nameof(config));
        if (weights is SafetensorsFile file && file.Contains("image_proj.latents"))
            throw new CheckpointException(
                $"{file.Path} is an IP-Adapter Plus file (it has image_proj.latents): its resampler is IpAdapterPlusImageProjection, not the base adapter's projection.",
                file.Path, "image_proj.latents");

        long cross = config.CrossAttentionDim;
        var g = new OnnxGraph("ip_adapter_image_projection", weightFolder);
        var embeds = g.Input(ImageEmbedsInput, DataType.Float, "batch", config.ImageEmbedDim);
        var projected = g.Linear(embeds, weights, "image_proj.proj", config.ImageEmbedDim, config.Tokens * cross);
        var tokens = g.Reshape(projected, -1, config.Tokens, cross);
        tokens = g.LayerNorm(tokens, weights, "image_proj.norm", cross, LayerNormEpsilon);
        g.Output(tokens, IpTokensOutput, DataType.Float, "batch", config.Tokens, cross);
        return g;
    }

    /// <summary>Projects image_embeds [B, E] to ip tokens [B, tokens, cross_attention_dim].</summary>
    public FloatTensor Run(FloatTensor imageEmbeds, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(imageEmbeds);
        if (imageEmbeds.Shape is not [> 0, var width] || width != Config.ImageEmbedDim || imageEmbeds.Data.LongLength != (long)imageEmbeds.Shape[0] * width)
            throw new ArgumentException(
                $"Image embeds have shape [{string.Join(", ", imageEmbeds.Shape)}]; the projection takes [B, {Config.ImageEmbedDim}] (the image encoder's image_embeds).",
                nameof(imageEmbeds));
        return model.Run([ModelInput.Float(ImageEmbedsInput, imageEmbeds)], [IpTokensOutput], cancellation)[0];
    }

    /// <summary>
    /// The unconditional branch's tokens [1, tokens, cross_attention_dim]: the projection of zero
    /// embeds (so LayerNorm of the projection bias, not zeros).
    /// </summary>
    public FloatTensor UnconditionalTokens(CancellationToken cancellation = default)
        => Run(new FloatTensor(new float[Config.ImageEmbedDim], [1, Config.ImageEmbedDim]), cancellation);

    public void Dispose() => model.Dispose();
}
