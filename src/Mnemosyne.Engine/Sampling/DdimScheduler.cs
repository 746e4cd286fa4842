namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// diffusers' DDIMScheduler (v0.30.0) with eta 0: x0 from the model output, clipped to
/// ±clip_sample_range when clip_sample, then x' = √ᾱ_prev·x0 + √(1 − ᾱ_prev)·ε, where prev is the
/// timestep num_train_timesteps // steps earlier (ᾱ_prev is 1, or ᾱ_0 without set_alpha_to_one, past the start).
/// Its class defaults differ from Euler's: leading spacing, and clip_sample and set_alpha_to_one true
/// where the config lacks them.
/// </summary>
public sealed class DdimScheduler : SchedulerBase
{
    private const double DefaultClipSampleRange = 1.0;

    private readonly float[] timesteps;
    private readonly float[] alphasCumprod;
    private readonly float finalAlphaCumprod;
    private readonly int stepRatio;
    private readonly float? clipRange;
    private readonly PredictionKind prediction;

    /// <param name="spacing">Overrides the config's timestep_spacing.</param>
    public DdimScheduler(SchedulerConfig config, int steps, TimestepSpacing? spacing = null)
        : base(SchedulerKind.Ddim, config, steps)
    {
        prediction = Prediction(PredictionKind.Epsilon, PredictionKind.VPrediction, PredictionKind.Sample);
        Refuse(config.Thresholding, "thresholding");
        var schedule = TrainingSchedule.From(config, pinTerminalAlphaCumprod: false);
        alphasCumprod = schedule.AlphasCumprod;
        finalAlphaCumprod = config.SetAlphaToOne ?? true ? 1f : alphasCumprod[0];
        clipRange = config.ClipSample ?? true ? (float)(config.ClipSampleRange ?? DefaultClipSampleRange) : null;
        Spacing = spacing ?? config.SpacingOr(TimestepSpacing.Leading);
        stepRatio = schedule.TrainTimesteps / steps;
        var integerTimesteps = InferenceTimesteps.ForDdim(Spacing, schedule.TrainTimesteps, steps, config.StepsOffset ?? 0);
        CheckTimesteps(integerTimesteps, schedule.TrainTimesteps, steps, Spacing);
        timesteps = integerTimesteps.Select(t => (float)t).ToArray();
    }

    public TimestepSpacing Spacing { get; }

    public override IReadOnlyList<float> Timesteps => timesteps;

    public override float InitNoiseSigma => 1f;

    /// <summary>Whether x0 is clipped, and to what range (null: not clipped).</summary>
    public float? ClipSampleRange => clipRange;

    /// <summary>ᾱ used past the first training step: 1 with set_alpha_to_one, else ᾱ_0.</summary>
    public float FinalAlphaCumprod => finalAlphaCumprod;

    /// <summary>√ᾱ_t·x + √(1 − ᾱ_t)·ε at the step's timestep.</summary>
    private protected override void AddNoiseCore(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy)
    {
        float alphaProduct = AlphaCumprodAt((int)timesteps[stepIndex]);
        float originalScale = MathF.Sqrt(alphaProduct), noiseScale = MathF.Sqrt(1f - alphaProduct);
        for (int i = 0; i < original.Length; i++) noisy[i] = originalScale * original[i] + noiseScale * noise[i];
    }

    private protected override float[] StepCore(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator)
    {
        int timestep = (int)timesteps[stepIndex];
        int previous = timestep - stepRatio;
        float alphaProduct = AlphaCumprodAt(timestep);
        float alphaProductPrevious = previous >= 0 ? AlphaCumprodAt(previous) : finalAlphaCumprod;
        float betaProduct = 1f - alphaProduct;
        float rootAlpha = MathF.Sqrt(alphaProduct), rootBeta = MathF.Sqrt(betaProduct);
        float originalScale = MathF.Sqrt(alphaProductPrevious);
        float directionScale = MathF.Sqrt(1f - alphaProductPrevious);

        var originals = new float[sample.Length];
        for (int i = 0; i < sample.Length; i++)
        {
            float original, epsilon;
            switch (prediction)
            {
                case PredictionKind.Epsilon:
                    original = (sample[i] - rootBeta * modelOutput[i]) / rootAlpha;
                    epsilon = modelOutput[i];
                    break;
                case PredictionKind.VPrediction:
                    original = rootAlpha * sample[i] - rootBeta * modelOutput[i];
                    epsilon = rootAlpha * modelOutput[i] + rootBeta * sample[i];
                    break;
                default:
                    original = modelOutput[i];
                    epsilon = (sample[i] - rootAlpha * original) / rootBeta;
                    break;
            }
            if (clipRange is float range) original = Math.Clamp(original, -range, range);
            originals[i] = original;
            sample[i] = originalScale * original + directionScale * epsilon;
        }
        return originals;
    }

    /// <summary>ᾱ at a timestep, a negative one counting from the end as Python indexing does (trailing spacing can yield −1).</summary>
    private float AlphaCumprodAt(int timestep) => alphasCumprod[timestep >= 0 ? timestep : alphasCumprod.Length + timestep];
}
