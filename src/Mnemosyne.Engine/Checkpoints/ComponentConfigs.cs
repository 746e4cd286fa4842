using System.Text.Json.Serialization;

namespace Mnemosyne.Engine.Checkpoints;

// Typed views of the config.json files of an SDXL diffusers checkpoint. Only the keys the engine
// reads are named; others are ignored on read. Names follow the files (snake_case in JSON).

/// <summary>unet/config.json (diffusers UNet2DConditionModel).</summary>
public sealed record UnetConfig
{
    [JsonPropertyName("_class_name")] public string ClassName { get; init; } = "UNet2DConditionModel";
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public IntList BlockOutChannels { get; init; } = new int[] { 320, 640, 1280 };
    public string[] DownBlockTypes { get; init; } = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"];
    public string[] UpBlockTypes { get; init; } = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"];
    public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    public IntList LayersPerBlock { get; init; } = 2;
    public IntList TransformerLayersPerBlock { get; init; } = new int[] { 1, 2, 10 };
    /// <summary>Historically misnamed: in SDXL this is the number of heads per level.</summary>
    public IntList AttentionHeadDim { get; init; } = new int[] { 5, 10, 20 };
    public IntList? NumAttentionHeads { get; init; }
    public int CrossAttentionDim { get; init; } = 2048;
    public bool UseLinearProjection { get; init; } = true;
    public string? AdditionEmbedType { get; init; } = "text_time";
    public int AdditionTimeEmbedDim { get; init; } = 256;
    public int ProjectionClassEmbeddingsInputDim { get; init; } = 2816;
    public bool FlipSinToCos { get; init; } = true;
    public int FreqShift { get; init; }
    public int NormNumGroups { get; init; } = 32;
    public float NormEps { get; init; } = 1e-5f;
    public string ActFn { get; init; } = "silu";
    public int DownsamplePadding { get; init; } = 1;
    public float MidBlockScaleFactor { get; init; } = 1;
    public string ResnetTimeScaleShift { get; init; } = "default";
    public bool? UpcastAttention { get; init; }
    public bool CenterInputSample { get; init; }
    public int SampleSize { get; init; } = 128;
    public int ConvInKernel { get; init; } = 3;
    public int ConvOutKernel { get; init; } = 3;
    public string TimeEmbeddingType { get; init; } = "positional";
    public int? TimeCondProjDim { get; init; }

    /// <summary>Heads per level: num_attention_heads when given, else attention_head_dim (diffusers' rule).</summary>
    public int HeadsAt(int level) => (NumAttentionHeads ?? AttentionHeadDim)[level];
}

/// <summary>vae/config.json (diffusers AutoencoderKL).</summary>
public sealed record VaeConfig
{
    [JsonPropertyName("_class_name")] public string ClassName { get; init; } = "AutoencoderKL";
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public IntList BlockOutChannels { get; init; } = new int[] { 128, 256, 512, 512 };
    public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"];
    public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"];
    public int LayersPerBlock { get; init; } = 2;
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public string ActFn { get; init; } = "silu";
    public float ScalingFactor { get; init; } = 0.13025f;
    public bool ForceUpcast { get; init; } = true;
    public int SampleSize { get; init; } = 1024;
    public float[]? LatentsMean { get; init; }
    public float[]? LatentsStd { get; init; }
    public bool UseQuantConv { get; init; } = true;
    public bool UsePostQuantConv { get; init; } = true;
    public bool MidBlockAddAttention { get; init; } = true;
}

/// <summary>
/// A tiny autoencoder's config.json (diffusers AutoencoderTiny: madebyollin/taesdxl). The defaults are TAESDXL's;
/// its file leaves out scaling_factor, which is then 1: it decodes the UNet's latents as they are.
/// </summary>
public sealed record TinyAutoencoderConfig
{
    [JsonPropertyName("_class_name")] public string ClassName { get; init; } = "AutoencoderTiny";
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public IntList EncoderBlockOutChannels { get; init; } = new int[] { 64, 64, 64, 64 };
    public IntList DecoderBlockOutChannels { get; init; } = new int[] { 64, 64, 64, 64 };
    public string ActFn { get; init; } = "relu";
    public string UpsampleFn { get; init; } = "nearest";
    public int LatentChannels { get; init; } = 4;
    public int UpsamplingScalingFactor { get; init; } = 2;
    public IntList NumEncoderBlocks { get; init; } = new int[] { 1, 3, 3, 3 };
    public IntList NumDecoderBlocks { get; init; } = new int[] { 3, 3, 3, 1 };
    public float LatentMagnitude { get; init; } = 3;
    public float LatentShift { get; init; } = 0.5f;
    public bool ForceUpcast { get; init; }
    public float ScalingFactor { get; init; } = 1;
}

/// <summary>text_encoder*/config.json (transformers CLIPTextModel / CLIPTextModelWithProjection).</summary>
public sealed record ClipTextConfig
{
    public string[]? Architectures { get; init; }
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int MaxPositionEmbeddings { get; init; } = 77;
    public string HiddenAct { get; init; } = "quick_gelu";
    public float LayerNormEps { get; init; } = 1e-5f;
    public int ProjectionDim { get; init; } = 768;
    public int BosTokenId { get; init; } = 49406;
    public int EosTokenId { get; init; } = 49407;
    public int PadTokenId { get; init; } = 1;
    public string? ModelType { get; init; } = "clip_text_model";

    [JsonIgnore] public bool HasProjection => Architectures?.Contains("CLIPTextModelWithProjection") == true;
}

/// <summary>The image encoder's config.json (transformers CLIPVisionModelWithProjection).</summary>
public sealed record ClipVisionConfig
{
    public string[]? Architectures { get; init; }
    public int HiddenSize { get; init; } = 1280;
    public int IntermediateSize { get; init; } = 5120;
    public int NumHiddenLayers { get; init; } = 32;
    public int NumAttentionHeads { get; init; } = 16;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 14;
    public int ProjectionDim { get; init; } = 1024;
    public int NumChannels { get; init; } = 3;
    public string HiddenAct { get; init; } = "gelu";
    public float LayerNormEps { get; init; } = 1e-5f;
    public string? ModelType { get; init; } = "clip_vision_model";
}
