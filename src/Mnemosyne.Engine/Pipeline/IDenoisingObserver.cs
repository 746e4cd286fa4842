using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// Watches a scene's denoising loop: after each step it is given the sampler's estimate of the denoised latents,
/// before that step's progress is reported (<see cref="LivePreview"/> draws it).
/// </summary>
internal interface IDenoisingObserver
{
    /// <param name="report">The step's progress report.</param>
    /// <param name="denoised">The step's estimate of the final latents, [1, 4, h, w] (the scheduler's x0 prediction), a copy of its own.</param>
    /// <returns>The report, with what the observer adds to it.</returns>
    SceneProgress StepTaken(SceneProgress report, FloatTensor denoised, CancellationToken cancellation);
}
