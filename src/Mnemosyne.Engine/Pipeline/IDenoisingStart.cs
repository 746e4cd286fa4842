using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// Where a scene's denoising begins and what happens between its steps: from the seed's noise (text-to-image,
/// <see cref="NoiseStart"/>), or part-way down the schedule from a picture (<see cref="ImageToImage"/>,
/// <see cref="Inpainting"/>). <see cref="SdxlPipeline.Denoise"/> runs the same loop for all of them.
/// </summary>
internal interface IDenoisingStart
{
    /// <summary>
    /// The index of the first step to take and the latents [1, C, h, w] to enter it with; sets the scheduler's begin
    /// index when it is not 0. Draws from <paramref name="generator"/> in the order diffusers' pipeline draws.
    /// </summary>
    (int FirstStep, float[] Latents) Begin(IScheduler scheduler, TorchGenerator generator, int[] latentShape);

    /// <summary>Called once the scheduler has taken step <paramref name="stepIndex"/>, with the latents it left.</summary>
    void StepTaken(IScheduler scheduler, int stepIndex, Span<float> latents);
}

/// <summary>The start of a scene made from a picture (and a mask), chosen by what the request holds.</summary>
internal static class PictureStart
{
    /// <summary>
    /// Null for a text-to-image request; otherwise img2img (from the picture, or from latents), or inpainting when the
    /// request has a mask.
    /// </summary>
    /// <param name="encode">The VAE encoder's latent distribution of an image [1, 3, H, W] in [-1, 1].</param>
    public static IDenoisingStart? For(SceneRequest request, Func<FloatTensor, LatentDistribution> encode)
    {
        if (request.InitLatents is { } latents) return new ImageToImage(_ => latents.Data, request.Strength, request.Steps);
        if (request.InitImage is not { } picture) return null;
        var distribution = encode(ImageToImage.Pixels(picture));
        return request.Mask is { } mask
            ? new Inpainting(distribution, Inpainting.LatentMask(mask, picture.Width / distribution.Mean.Shape[3]), request.Strength, request.Steps)
            // Drawn in diffusers' order: the encoder's sample, then (in Begin) the noise.
            : new ImageToImage(generator => distribution.Scaled(generator, useLatentsMeanStd: true).Data, request.Strength, request.Steps);
    }
}
