namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// One denoising schedule, set up for a number of steps, used the way diffusers' SDXL pipeline uses
/// its scheduler: multiply the initial noise by <see cref="InitNoiseSigma"/>; then for each step i,
/// scale a copy of the latents with <see cref="ScaleModelInput"/>, run the UNet at
/// <c>Timesteps[i]</c>, apply guidance, and call <see cref="Step"/> with the guided output. Steps must
/// be taken in order, each once: the multistep solvers remember earlier outputs.
/// </summary>
public interface IScheduler
{
    SchedulerKind Kind { get; }

    /// <summary>
    /// The UNet's timestep input for each step, as the float value diffusers feeds it: fractional for
    /// Euler with Karras sigmas or linspace spacing, whole numbers (int64 in diffusers) for DPM-Solver
    /// and DDIM. Usually one per requested step; NumPy's arange can add one (trailing spacing at some
    /// step counts), and then diffusers runs that extra step too.
    /// </summary>
    IReadOnlyList<float> Timesteps { get; }

    /// <summary>The factor diffusers multiplies the initial noise by.</summary>
    float InitNoiseSigma { get; }

    /// <summary>Scales latents in place into the UNet input for step <paramref name="stepIndex"/> (identity for DPM-Solver and DDIM).</summary>
    void ScaleModelInput(Span<float> sample, int stepIndex);

    /// <summary>
    /// Advances <paramref name="sample"/> in place from step <paramref name="stepIndex"/> to the next,
    /// given the (guided) model output for it. Euler and Euler ancestral draw one sample-sized normal
    /// tensor from <paramref name="generator"/> per step, as diffusers does (Euler discards it); Euler
    /// ancestral needs the generator, the others take null.
    /// </summary>
    void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator);

    /// <summary>
    /// Enters the schedule part-way, as diffusers' set_begin_index does for img2img and inpainting: the first step
    /// taken is then <paramref name="stepIndex"/>. Only before any step.
    /// </summary>
    void BeginAt(int stepIndex);

    /// <summary>
    /// <paramref name="original"/> noised to the level of step <paramref name="stepIndex"/> (the latents that step
    /// expects), with <paramref name="noise"/>: diffusers' add_noise at that step's timestep.
    /// </summary>
    void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy);

    /// <summary>
    /// The denoised sample x0 that the step last taken estimated from the model output, in the latents' scale:
    /// diffusers' pred_original_sample (Euler, Euler ancestral, DDIM after clipping), DPM-Solver's data prediction.
    /// Empty before the first step.
    /// </summary>
    ReadOnlySpan<float> PredictedOriginal { get; }
}
