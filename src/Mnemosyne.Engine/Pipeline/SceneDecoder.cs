namespace Mnemosyne.Engine.Pipeline;

/// <summary>Which network turns a scene's final latents into its picture.</summary>
public enum SceneDecoder
{
    /// <summary>The checkpoint's own VAE: the picture diffusers makes.</summary>
    Full,

    /// <summary>
    /// The tiny distilled decoder (TAESDXL, <see cref="EngineOptions.TinyDecoderPath"/>): a fraction of the VAE's time
    /// and memory, slightly softer and less exact in colour; for drafts.
    /// </summary>
    Tiny,
}
