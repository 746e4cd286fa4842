using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// img2img as diffusers' StableDiffusionXLImg2ImgPipeline (v0.30.0, no denoising_start) does it: the schedule of
/// <c>Steps</c> is entered at step Steps − ⌊Steps·strength⌋ (get_timesteps), and the picture's latents (a sample of
/// the encoder's distribution, scaled, or latents given as the image) are noised to that step's level with fresh noise
/// (prepare_latents, add_noise). The steps after it are text-to-image's.
/// </summary>
/// <param name="original">The unnoised latents; may draw from the generator (the encoder's sample) before the noise is drawn.</param>
internal sealed class ImageToImage(Func<TorchGenerator, float[]> original, double strength, int steps) : IDenoisingStart
{
    public (int FirstStep, float[] Latents) Begin(IScheduler scheduler, TorchGenerator generator, int[] latentShape)
    {
        int first = FirstStep(steps, strength);
        scheduler.BeginAt(first);
        var start = original(generator);
        var noise = generator.Randn(latentShape);
        var latents = new float[start.Length];
        scheduler.AddNoise(start, noise, first, latents);
        return (first, latents);
    }

    public void StepTaken(IScheduler scheduler, int stepIndex, Span<float> latents)
    {
    }

    /// <summary>
    /// get_timesteps: ⌊steps·strength⌋ steps are run (in double precision, as Python computes int(steps * strength)),
    /// so the first is steps minus that. Every scheduler here is first order: one timestep per step.
    /// </summary>
    public static int FirstStep(int steps, double strength) => Math.Max(steps - StepsRun(steps, strength), 0);

    /// <summary>How many steps a strength leaves of <paramref name="steps"/>: min(⌊steps·strength⌋, steps).</summary>
    public static int StepsRun(int steps, double strength) => Math.Min((int)(steps * strength), steps);

    /// <summary>The picture as the VAE takes it: [1, 3, H, W], each 8-bit value v as v/255·2 − 1 (float32, as VaeImageProcessor).</summary>
    public static FloatTensor Pixels(RgbImage image)
    {
        int plane = image.Width * image.Height;
        var data = new float[3 * plane];
        for (int p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                data[c * plane + p] = image.Rgb[3 * p + c] / 255f * 2f - 1f;
        return new FloatTensor(data, [1, 3, image.Height, image.Width]);
    }
}
