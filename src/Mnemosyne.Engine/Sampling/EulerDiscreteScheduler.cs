namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// diffusers' EulerDiscreteScheduler (v0.30.0, s_churn 0): sigmas interpolated at the timesteps (or a
/// Karras ramp between the interpolated extremes, with fractional timesteps), a final sigma of 0,
/// x0 = x − σ·ε and x' = x + ((x − x0)/σ)·(σ_next − σ).
/// </summary>
public sealed class EulerDiscreteScheduler : SchedulerBase
{
    private readonly float[] timesteps;
    private readonly float[] sigmas;
    private readonly PredictionKind prediction;

    /// <param name="spacing">Overrides the config's timestep_spacing (e.g. Trailing for few-step UNets).</param>
    public EulerDiscreteScheduler(SchedulerConfig config, int steps, TimestepSpacing? spacing = null)
        : base(SchedulerKind.Euler, config, steps)
    {
        prediction = Prediction(PredictionKind.Epsilon, PredictionKind.VPrediction, PredictionKind.Sample);
        if (config.InterpolationType is not (null or "linear"))
            throw config.Unsupported("interpolation_type", config.InterpolationType, "linear");
        if (config.TimestepType is "continuous" && prediction == PredictionKind.VPrediction)
            throw config.Unsupported("timestep_type", config.TimestepType, "discrete with v_prediction");
        if (config.TimestepType is not (null or "discrete" or "continuous"))
            throw config.Unsupported("timestep_type", config.TimestepType, "discrete");

        var schedule = TrainingSchedule.From(config, pinTerminalAlphaCumprod: true);
        Spacing = spacing ?? config.SpacingOr(TimestepSpacing.Linspace);
        timesteps = InferenceTimesteps.ForEuler(Spacing, schedule.TrainTimesteps, steps, config.StepsOffset ?? 0);
        var sigmas = timesteps.Select(t => ReferenceArithmetic.NumpyInterp(t, schedule.Sigmas)).ToArray();
        if (config.UseKarrasSigmas == true)
        {
            // The ramp runs between the extremes of the interpolated inference sigmas, unless the config pins them.
            sigmas = KarrasSigmas.Ramp(config.SigmaMin ?? sigmas[^1], config.SigmaMax ?? sigmas[0], steps);
            timesteps = sigmas.Select(s => (float)KarrasSigmas.SigmaToTimestep(s, schedule.LogSigmas)).ToArray();
        }
        float finalSigma = config.FinalSigmasType switch
        {
            null or "zero" => 0f,
            "sigma_min" => schedule.Sigmas[0],
            var other => throw config.Unsupported("final_sigmas_type", other, "zero or sigma_min"),
        };
        this.sigmas = [.. sigmas.Select(s => (float)s), finalSigma];

        InitNoiseSigma = EulerMath.InitNoiseSigma(this.sigmas, Spacing);
    }

    public TimestepSpacing Spacing { get; }

    public override IReadOnlyList<float> Timesteps => timesteps;

    /// <summary>The sigma of each step, then the final one (0 by default).</summary>
    public IReadOnlyList<float> Sigmas => sigmas;

    public override float InitNoiseSigma { get; }

    private protected override void AddNoiseCore(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy) =>
        AddSigmaNoise(original, noise, sigmas[stepIndex], noisy);

    private protected override void ScaleModelInputCore(Span<float> sample, int stepIndex) =>
        EulerMath.DivideByInputScale(sample, sigmas[stepIndex]);

    private protected override float[] StepCore(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator)
    {
        // diffusers draws the churn noise on every step and, with s_churn 0, never uses it; drawing it
        // keeps the generator where diffusers leaves it.
        if (generator is not null) generator.FillNormal(new float[sample.Length]);

        float sigma = sigmas[stepIndex];
        float dt = sigmas[stepIndex + 1] - sigma;
        var original = new float[sample.Length];
        EulerMath.PredictOriginal(prediction, modelOutput, sample, sigma, original);
        for (int i = 0; i < sample.Length; i++)
        {
            float derivative = (sample[i] - original[i]) / sigma;
            sample[i] += derivative * dt;
        }
        return original;
    }
}

/// <summary>The arithmetic Euler and Euler ancestral share, in float32 and diffusers' operation order.</summary>
internal static class EulerMath
{
    /// <summary>diffusers' init_noise_sigma: the largest sigma, or √(σ_max² + 1) for leading spacing.</summary>
    public static float InitNoiseSigma(IReadOnlyList<float> sigmas, TimestepSpacing spacing)
    {
        float maxSigma = sigmas.Max();
        return spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? maxSigma : MathF.Sqrt(maxSigma * maxSigma + 1f);
    }

    /// <summary>x / √(σ² + 1).</summary>
    public static void DivideByInputScale(Span<float> sample, float sigma)
    {
        float scale = MathF.Sqrt(sigma * sigma + 1f);
        for (int i = 0; i < sample.Length; i++) sample[i] /= scale;
    }

    /// <summary>The denoised sample x0 the model output implies at <paramref name="sigma"/>.</summary>
    public static void PredictOriginal(PredictionKind prediction, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, float sigma, Span<float> original)
    {
        switch (prediction)
        {
            case PredictionKind.Epsilon:
                for (int i = 0; i < sample.Length; i++) original[i] = sample[i] - sigma * modelOutput[i];
                break;
            case PredictionKind.VPrediction:
                float squarePlusOne = sigma * sigma + 1f;
                float outputScale = -sigma / MathF.Sqrt(squarePlusOne);
                for (int i = 0; i < sample.Length; i++) original[i] = modelOutput[i] * outputScale + sample[i] / squarePlusOne;
                break;
            default:
                modelOutput.CopyTo(original);
                break;
        }
    }
}
