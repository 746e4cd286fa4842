using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// The VAE's decoder run over overlapping tiles, as diffusers' AutoencoderKL.tiled_decode (enable_tiling, v0.30.0)
/// does: latents wider or taller than sample_size/f are cut into tiles of that size every ¾ of it, each tile is
/// decoded alone, each tile's first quarter (in pixels) is blended linearly with the tile above and the tile to its
/// left, in place and in order, and the tiles are cropped to ¾ and joined. Memory is one tile's, whatever the
/// picture's size; the picture differs slightly from the whole decode's (the tiles' group norms see only their tile).
/// Smaller latents are decoded whole. Borrows the decoder: its owner disposes it.
/// </summary>
public sealed class TiledVaeDecoder(VaeDecoder vae) : ILatentDecoder
{
    /// <summary>diffusers' tile_overlap_factor.</summary>
    internal const double OverlapFactor = 0.25;

    public int LatentChannels => vae.LatentChannels;

    public int UpscaleFactor => vae.UpscaleFactor;

    public string Source => vae.Source;

    /// <summary>A tile's side in pixels: the config's sample_size (1024 for SDXL).</summary>
    public int TileSampleSize => vae.Config.SampleSize;

    /// <summary>A tile's side in latents: int(sample_size / f).</summary>
    public int TileLatentSize => (int)(vae.Config.SampleSize / (double)UpscaleFactor);

    public FloatTensor Run(FloatTensor latents, CancellationToken cancellation = default)
    {
        LatentInput.Check(latents, LatentChannels, "VAE");
        int tileLatent = TileLatentSize, tileSample = TileSampleSize;
        if (latents.Shape[2] <= tileLatent && latents.Shape[3] <= tileLatent) return vae.Run(latents, cancellation);
        int blend = (int)(tileSample * OverlapFactor);
        return OverlappingTiles.Run(latents, tileLatent, (int)(tileLatent * (1 - OverlapFactor)), blend, tileSample - blend, tile => vae.Run(tile, cancellation));
    }

    /// <summary>The decoder belongs to the engine, which disposes it.</summary>
    public void Dispose()
    {
    }
}
