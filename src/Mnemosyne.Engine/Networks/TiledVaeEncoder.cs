using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// The VAE's encoder run over overlapping tiles, as diffusers' AutoencoderKL.tiled_encode (enable_tiling, v0.30.0)
/// does: pictures wider or taller than sample_size are cut into tiles of sample_size pixels every ¾ of it, each tile
/// is encoded alone, and the tiles' moments (mean and log-variance) are blended over their first quarter (in latents)
/// with the tile above and the tile to the left, cropped to ¾ and joined (<see cref="OverlappingTiles"/>). Smaller
/// pictures are encoded whole. diffusers clamps the log-variance after joining, this encoder per tile before: the two
/// differ only where a log-variance leaves [−30, 20]. Borrows the encoder: its owner disposes it.
/// </summary>
public sealed class TiledVaeEncoder(VaeEncoder vae)
{
    /// <summary>A tile's side in pixels: the config's sample_size (1024 for SDXL).</summary>
    public int TileSampleSize => vae.Config.SampleSize;

    /// <summary>A tile's side in latents: int(sample_size / f).</summary>
    public int TileLatentSize => (int)(vae.Config.SampleSize / (double)(1 << (vae.Config.BlockOutChannels.Count - 1)));

    /// <summary>The latent distribution of an image [B, in_channels, H, W] in [-1, 1].</summary>
    public LatentDistribution Run(FloatTensor image, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        int tileSample = TileSampleSize, tileLatent = TileLatentSize;
        if (image.Shape.Length != 4 || (image.Shape[2] <= tileSample && image.Shape[3] <= tileSample)) return vae.Run(image, cancellation);
        int blend = (int)(tileLatent * TiledVaeDecoder.OverlapFactor);
        var moments = OverlappingTiles.Run(image, tileSample, (int)(tileSample * (1 - TiledVaeDecoder.OverlapFactor)), blend, tileLatent - blend, tile =>
        {
            var encoded = vae.Run(tile, cancellation);
            return ConcatChannels(encoded.Mean, encoded.LogVariance);
        });
        return new LatentDistribution(Channels(moments, 0), Channels(moments, moments.Shape[1] / 2), vae.Config);
    }

    /// <summary>[B, C, h, w] and [B, C, h, w] → [B, 2C, h, w], as diffusers' moments hold them.</summary>
    private static FloatTensor ConcatChannels(FloatTensor a, FloatTensor b)
    {
        int batch = a.Shape[0], item = a.Data.Length / batch;
        var data = new float[2 * a.Data.Length];
        for (int n = 0; n < batch; n++)
        {
            Array.Copy(a.Data, n * item, data, 2 * n * item, item);
            Array.Copy(b.Data, n * item, data, (2 * n + 1) * item, item);
        }
        return new FloatTensor(data, [batch, 2 * a.Shape[1], a.Shape[2], a.Shape[3]]);
    }

    /// <summary>The half of [B, 2C, h, w] whose channels start at <paramref name="first"/>.</summary>
    private static FloatTensor Channels(FloatTensor moments, int first)
    {
        int batch = moments.Shape[0], channels = moments.Shape[1] / 2, plane = moments.Shape[2] * moments.Shape[3];
        var data = new float[batch * channels * plane];
        for (int n = 0; n < batch; n++)
            Array.Copy(moments.Data, (n * 2 * channels + first) * plane, data, n * channels * plane, channels * plane);
        return new FloatTensor(data, [batch, channels, moments.Shape[2], moments.Shape[3]]);
    }
}
