namespace Mnemosyne.Engine.Checkpoints;

/// <summary>The configs of SDXL's four generating networks.</summary>
public sealed record SdxlConfigs(UnetConfig Unet, VaeConfig Vae, ClipTextConfig TextEncoder, ClipTextConfig TextEncoder2)
{
    /// <summary>Stable Diffusion XL base 1.0's, which fine-tunes in the single-file layout share.</summary>
    public static SdxlConfigs Base { get; } = new(
        CheckpointShape.Full.Unet, CheckpointShape.Full.Vae, CheckpointShape.Full.TextEncoder, CheckpointShape.Full.TextEncoder2);
}
