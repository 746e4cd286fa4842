namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// diffusers' LCMScheduler (v0.30.0), the sampler of latent consistency models and LCM-LoRA. Its timesteps are picked
/// from the original_inference_steps (50) of the distillation schedule (every num_train_timesteps // 50, ending at
/// 999), evenly by index; timestep_spacing does not enter. Each step turns the model output into the consistency
/// function's estimate, c_skip·x + c_out·x0 with the boundary scalings of the timestep × timestep_scaling (10), and
/// re-noises that to the next timestep with fresh noise from the generator (all steps but the last).
/// </summary>
public sealed class LcmScheduler : SchedulerBase
{
    private const int DefaultOriginalInferenceSteps = 50;
    private const double DefaultTimestepScaling = 10.0;
    /// <summary>σ_data of the consistency model's boundary condition, as diffusers fixes it.</summary>
    private const float SigmaDataSquared = 0.25f;

    private readonly float[] timesteps;
    private readonly float[] alphasCumprod;
    private readonly float? clipRange;
    private readonly float timestepScaling;
    private readonly PredictionKind prediction;

    public LcmScheduler(SchedulerConfig config, int steps)
        : base(SchedulerKind.Lcm, config, steps)
    {
        prediction = Prediction(PredictionKind.Epsilon, PredictionKind.VPrediction, PredictionKind.Sample);
        Refuse(config.Thresholding, "thresholding");
        // Unlike Euler's, the schedule keeps a zero terminal ᾱ after the zero-SNR rescale.
        var schedule = TrainingSchedule.From(config, pinTerminalAlphaCumprod: false);
        alphasCumprod = schedule.AlphasCumprod;
        clipRange = config.ClipSample == true ? (float)(config.ClipSampleRange ?? 1.0) : null;
        timestepScaling = (float)(config.TimestepScaling ?? DefaultTimestepScaling);
        OriginalSteps = config.OriginalInferenceSteps ?? DefaultOriginalInferenceSteps;
        timesteps = [.. Select(schedule.TrainTimesteps, OriginalSteps, steps).Select(t => (float)t)];
    }

    /// <summary>The distillation schedule's step count the timesteps are taken from (original_inference_steps).</summary>
    public int OriginalSteps { get; }

    public override IReadOnlyList<float> Timesteps => timesteps;

    public override float InitNoiseSigma => 1f;

    /// <summary>
    /// diffusers' set_timesteps without custom timesteps or strength (the SDXL pipelines pass neither): the distillation
    /// timesteps k·i − 1 (k = T // original steps), descending, at the indices ⌊i · original / steps⌋ (NumPy's linspace
    /// without its endpoint).
    /// </summary>
    private static long[] Select(int trainTimesteps, int originalSteps, int steps)
    {
        if (originalSteps < 1 || originalSteps > trainTimesteps)
            throw new InvalidDataException($"LCM's original_inference_steps is {originalSteps}; it must be from 1 to the model's {trainTimesteps} training timesteps.");
        if (steps > originalSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"LCM takes its timesteps from the {originalSteps} of its distillation schedule, so it cannot take {steps} steps; use at most {originalSteps} (LCM is meant for 2 to 8).");
        long k = trainTimesteps / originalSteps;
        double step = originalSteps / (double)steps;
        var selected = new long[steps];
        for (int i = 0; i < steps; i++)
        {
            long index = (long)Math.Floor(i * step);
            selected[i] = (originalSteps - index) * k - 1;
        }
        return selected;
    }

    /// <summary>√ᾱ_t·x + √(1 − ᾱ_t)·ε at the step's timestep.</summary>
    private protected override void AddNoiseCore(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy)
    {
        float alphaProduct = alphasCumprod[(int)timesteps[stepIndex]];
        float originalScale = MathF.Sqrt(alphaProduct), noiseScale = MathF.Sqrt(1f - alphaProduct);
        for (int i = 0; i < original.Length; i++) noisy[i] = originalScale * original[i] + noiseScale * noise[i];
    }

    /// <returns>The consistency estimate (diffusers' denoised), which the last step returns as the sample.</returns>
    private protected override float[] StepCore(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator)
    {
        bool last = stepIndex == timesteps.Length - 1;
        if (!last && generator is null)
            throw new ArgumentNullException(nameof(generator), "LCM adds fresh noise after every step but the last and needs the generator the initial noise came from.");
        int timestep = (int)timesteps[stepIndex];
        float alphaProduct = alphasCumprod[timestep];
        float rootAlpha = MathF.Sqrt(alphaProduct), rootBeta = MathF.Sqrt(1f - alphaProduct);

        // In float32 as torch computes them; 0.25 / x is torch's reciprocal(x) · 0.25.
        float scaled = timestep * timestepScaling;
        float denominator = scaled * scaled + SigmaDataSquared;
        float skip = 1f / denominator * SigmaDataSquared;
        float output = scaled / MathF.Sqrt(denominator);

        var denoised = new float[sample.Length];
        for (int i = 0; i < sample.Length; i++)
        {
            float original = prediction switch
            {
                PredictionKind.Epsilon => (sample[i] - rootBeta * modelOutput[i]) / rootAlpha,
                PredictionKind.VPrediction => rootAlpha * sample[i] - rootBeta * modelOutput[i],
                _ => modelOutput[i],
            };
            if (clipRange is float range) original = Math.Clamp(original, -range, range);
            denoised[i] = output * original + skip * sample[i];
        }
        if (last)
        {
            denoised.CopyTo(sample);
            return denoised;
        }
        float alphaProductNext = alphasCumprod[(int)timesteps[stepIndex + 1]];
        float nextOriginalScale = MathF.Sqrt(alphaProductNext), nextNoiseScale = MathF.Sqrt(1f - alphaProductNext);
        var noise = new float[sample.Length];
        generator!.FillNormal(noise);
        for (int i = 0; i < sample.Length; i++) sample[i] = nextOriginalScale * denoised[i] + nextNoiseScale * noise[i];
        return denoised;
    }
}
