namespace Mnemosyne.Engine.Checkpoints;

/// <summary>The configs of SDXL's four generating networks.</summary>
public sealed record SdxlConfigs(UnetConfig Unet, VaeConfig Vae, ClipTextConfig TextEncoder, ClipTextConfig TextEncoder2)
{
    /// <summary>
    /// Stable Diffusion XL base 1.0's (the config records' defaults, with OpenCLIP ViT-bigG as the second text
    /// encoder), which fine-tunes in the single-file layout share.
    /// </summary>
    public static SdxlConfigs Base { get; } = new(
        new UnetConfig(),
        new VaeConfig(),
        new ClipTextConfig { Architectures = ["CLIPTextModel"] },
        new ClipTextConfig
        {
            Architectures = ["CLIPTextModelWithProjection"], HiddenSize = 1280, IntermediateSize = 5120, NumHiddenLayers = 32,
            NumAttentionHeads = 20, HiddenAct = "gelu", ProjectionDim = 1280,
        });

    /// <summary>The CLIP ViT-H image encoder of h94/IP-Adapter's SDXL ViT-H adapter (models/image_encoder; the record's defaults).</summary>
    public static ClipVisionConfig IpAdapterImageEncoder { get; } = new() { Architectures = ["CLIPVisionModelWithProjection"] };
}
