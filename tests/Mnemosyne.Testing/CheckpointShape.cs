using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;

namespace Mnemosyne.Testing;

/// <summary>The configs of every network of an SDXL + IP-Adapter checkpoint, at one size.</summary>
public sealed record CheckpointShape(
    string Name, UnetConfig Unet, VaeConfig Vae, ClipTextConfig TextEncoder, ClipTextConfig TextEncoder2, ClipVisionConfig ImageEncoder)
{
    /// <summary>The IP-Adapter Plus resampler beside the base adapter: the image encoder's features in, the UNet's cross-attention width out.</summary>
    public required IpAdapterPlusImageProjectionConfig IpAdapterPlus { get; init; }

    /// <summary>A three-level miniature of SDXL (seconds to write and run), with its own small vocabulary.</summary>
    public static CheckpointShape Tiny { get; } = new(
        "tiny",
        new UnetConfig
        {
            BlockOutChannels = new[] { 32, 64, 64 },
            TransformerLayersPerBlock = new[] { 1, 1, 2 },
            AttentionHeadDim = new[] { 1, 2, 4 },
            CrossAttentionDim = 64,
            AdditionTimeEmbedDim = 8,
            ProjectionClassEmbeddingsInputDim = 32 + 6 * 8,
            NormNumGroups = 8,
            SampleSize = 16,
        },
        new VaeConfig { BlockOutChannels = new[] { 8, 16, 32, 32 }, NormNumGroups = 4, SampleSize = 128 },
        new ClipTextConfig
        {
            Architectures = ["CLIPTextModel"], VocabSize = SyntheticVocabulary.Size, HiddenSize = 32, IntermediateSize = 64,
            NumHiddenLayers = 3, NumAttentionHeads = 4, HiddenAct = "quick_gelu", ProjectionDim = 32,
            BosTokenId = SyntheticVocabulary.Bos, EosTokenId = SyntheticVocabulary.Eos,
        },
        new ClipTextConfig
        {
            Architectures = ["CLIPTextModelWithProjection"], VocabSize = SyntheticVocabulary.Size, HiddenSize = 32, IntermediateSize = 64,
            NumHiddenLayers = 3, NumAttentionHeads = 4, HiddenAct = "gelu", ProjectionDim = 32,
            BosTokenId = SyntheticVocabulary.Bos, EosTokenId = SyntheticVocabulary.Eos,
        },
        new ClipVisionConfig
        {
            Architectures = ["CLIPVisionModelWithProjection"], HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2,
            NumAttentionHeads = 4, ProjectionDim = 16,
        })
    {
        // One head of diffusers' fixed 64 (heads = to_q rows / 64); 16 queries as the SDXL Plus adapters.
        IpAdapterPlus = new(EmbedDims: 32, HiddenDims: 64, OutputDims: 64, Queries: 16, Heads: 1),
    };

    /// <summary>The sizes of Stable Diffusion XL base 1.0 with the IP-Adapter ViT-H image encoder.</summary>
    public static CheckpointShape Full { get; } = new(
        "sdxl-base-1.0-random",
        SdxlConfigs.Base.Unet, SdxlConfigs.Base.Vae, SdxlConfigs.Base.TextEncoder, SdxlConfigs.Base.TextEncoder2, SdxlConfigs.IpAdapterImageEncoder)
    {
        IpAdapterPlus = IpAdapterPlusImageProjectionConfig.SdxlVitH,
    };
}
