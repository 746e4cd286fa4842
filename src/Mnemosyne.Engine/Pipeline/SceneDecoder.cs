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

    /// <summary>
    /// The VAE over overlapping tiles of the config's sample_size (1024² for SDXL), as diffusers' enable_tiling: the
    /// memory of one tile whatever the picture's size; pictures larger than a tile differ a little from Full's where
    /// the tiles meet. Pictures of one tile or less are Full's. A scene's starting picture (img2img, inpainting) is
    /// encoded in tiles too (diffusers' tiled_encode).
    /// </summary>
    Tiled,
}
