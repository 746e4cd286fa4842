using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>Text-to-image: the seed's noise (or the request's own) times the scheduler's initial sigma, from the first step.</summary>
internal sealed class NoiseStart(FloatTensor? initialNoise) : IDenoisingStart
{
    public (int FirstStep, float[] Latents) Begin(IScheduler scheduler, TorchGenerator generator, int[] latentShape)
    {
        var noise = initialNoise?.Data ?? generator.Randn(latentShape);
        var latents = new float[noise.Length];
        for (int i = 0; i < latents.Length; i++) latents[i] = noise[i] * scheduler.InitNoiseSigma;
        return (0, latents);
    }

    public void StepTaken(IScheduler scheduler, int stepIndex, Span<float> latents)
    {
    }
}
