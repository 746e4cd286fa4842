namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// diffusers' EulerAncestralDiscreteScheduler (v0.30.0): Euler's sigmas and input scaling; each step
/// goes deterministically down to σ_down and adds σ_up times fresh noise from the generator.
/// </summary>
public sealed class EulerAncestralScheduler : SchedulerBase
{
    private readonly float[] timesteps;
    private readonly float[] sigmas;
    private readonly PredictionKind prediction;

    /// <param name="spacing">Overrides the config's timestep_spacing (SDXL-Turbo uses Trailing).</param>
    public EulerAncestralScheduler(SchedulerConfig config, int steps, TimestepSpacing? spacing = null)
        : base(SchedulerKind.EulerAncestral, config, steps)
    {
        prediction = Prediction(PredictionKind.Epsilon, PredictionKind.VPrediction);
        var schedule = TrainingSchedule.From(config, pinTerminalAlphaCumprod: true);
        Spacing = spacing ?? config.SpacingOr(TimestepSpacing.Linspace);
        timesteps = InferenceTimesteps.ForEuler(Spacing, schedule.TrainTimesteps, steps, config.StepsOffset ?? 0);
        sigmas = [.. timesteps.Select(t => (float)ReferenceArithmetic.NumpyInterp(t, schedule.Sigmas)), 0f];
        InitNoiseSigma = EulerMath.InitNoiseSigma(sigmas, Spacing);
    }

    public TimestepSpacing Spacing { get; }

    public override IReadOnlyList<float> Timesteps => timesteps;

    /// <summary>The sigma of each step, then the final 0.</summary>
    public IReadOnlyList<float> Sigmas => sigmas;

    public override float InitNoiseSigma { get; }

    private protected override void AddNoiseCore(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy) =>
        AddSigmaNoise(original, noise, sigmas[stepIndex], noisy);

    private protected override void ScaleModelInputCore(Span<float> sample, int stepIndex) =>
        EulerMath.DivideByInputScale(sample, sigmas[stepIndex]);

    private protected override float[] StepCore(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator)
    {
        if (generator is null)
            throw new ArgumentNullException(nameof(generator), "Euler ancestral adds fresh noise at every step and needs the generator the initial noise came from.");
        float sigma = sigmas[stepIndex];
        float next = sigmas[stepIndex + 1];
        float sigmaSquared = sigma * sigma, nextSquared = next * next;
        float sigmaUp = MathF.Sqrt(nextSquared * (sigmaSquared - nextSquared) / sigmaSquared);
        float sigmaDown = MathF.Sqrt(nextSquared - sigmaUp * sigmaUp);
        float dt = sigmaDown - sigma;

        var original = new float[sample.Length];
        EulerMath.PredictOriginal(prediction, modelOutput, sample, sigma, original);
        for (int i = 0; i < sample.Length; i++)
        {
            float derivative = (sample[i] - original[i]) / sigma;
            sample[i] += derivative * dt;
        }
        // Drawn after the deterministic part, on every step including the last (where σ_up is 0).
        var noise = new float[sample.Length];
        generator.FillNormal(noise);
        for (int i = 0; i < sample.Length; i++) sample[i] += noise[i] * sigmaUp;
        return original;
    }
}
