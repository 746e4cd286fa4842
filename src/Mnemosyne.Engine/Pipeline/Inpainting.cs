using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// Inpainting with a 4-channel UNet (SDXL base) as diffusers' StableDiffusionXLInpaintPipeline (v0.30.0) does it: the
/// schedule is entered as in img2img (at strength 1 from the seed's noise alone); after every step, the latents outside
/// the mask are replaced by the picture's latents noised, with the same noise, to the next step's level (the unnoised
/// latents after the last step), so only the masked region is redrawn.
/// </summary>
internal sealed class Inpainting(LatentDistribution picture, bool[] latentMask, double strength, int steps) : IDenoisingStart
{
    private float[] original = [];
    private float[] noise = [];

    public (int FirstStep, float[] Latents) Begin(IScheduler scheduler, TorchGenerator generator, int[] latentShape)
    {
        int first = ImageToImage.FirstStep(steps, strength);
        scheduler.BeginAt(first);
        // diffusers draws the picture's sample, the noise, and then a sample for the masked picture's latents, which
        // only a 9-channel inpainting UNet reads: that draw is made (and discarded) so that later draws match.
        original = picture.Scaled(generator, useLatentsMeanStd: false).Data;
        noise = generator.Randn(latentShape);
        generator.Randn(latentShape);
        var latents = new float[original.Length];
        if (strength == 1)
            for (int i = 0; i < latents.Length; i++) latents[i] = noise[i] * scheduler.InitNoiseSigma;
        else scheduler.AddNoise(original, noise, first, latents);
        return (first, latents);
    }

    public void StepTaken(IScheduler scheduler, int stepIndex, Span<float> latents)
    {
        var proper = original;
        if (stepIndex < scheduler.Timesteps.Count - 1)
        {
            proper = new float[original.Length];
            scheduler.AddNoise(original, noise, stepIndex + 1, proper);
        }
        int plane = latentMask.Length;
        for (int i = 0; i < latents.Length; i++)
            if (!latentMask[i % plane]) latents[i] = proper[i];
    }

    /// <summary>
    /// The mask at the latents' size, true where the picture is redrawn: VaeImageProcessor's mask (grey as PIL's
    /// convert("L"), v/255 ≥ 0.5 binarised) taken by nearest interpolation, i.e. the pixel at (f·y, f·x).
    /// </summary>
    public static bool[] LatentMask(RgbImage mask, int factor)
    {
        int width = mask.Width / factor, height = mask.Height / factor;
        var bits = new bool[width * height];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int p = 3 * ((y * factor) * mask.Width + x * factor);
                int grey = (mask.Rgb[p] * 19595 + mask.Rgb[p + 1] * 38470 + mask.Rgb[p + 2] * 7471 + 0x8000) >> 16;
                bits[y * width + x] = grey >= 128;
            }
        return bits;
    }
}
