namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// diffusers' DPMSolverMultistepScheduler (v0.30.0) as DPM++ 2M: algorithm dpmsolver++, solver order 2,
/// midpoint, on a data (x0) prediction. The first step is first order, so is the last where the final
/// sigma is 0 (or with lower_order_final under 15 steps, or euler_at_final); the others use the
/// previous step's x0 as well. Karras sigmas span the whole training range and the UNet then gets the
/// rounded timesteps of those sigmas. No noise is drawn.
/// </summary>
public sealed class DpmSolverMultistepScheduler : SchedulerBase
{
    private const int SolverOrder = 2;
    private const int LowerOrderFinalBelowSteps = 15;

    private readonly float[] timesteps;
    private readonly float[] sigmas;
    private readonly PredictionKind prediction;
    private readonly bool firstOrderAtLastStep;
    private float[]? previousOriginal;

    /// <param name="karras">Karras sigmas (DpmPlusPlus2MKarras) whatever the config says.</param>
    /// <param name="spacing">Overrides the config's timestep_spacing.</param>
    public DpmSolverMultistepScheduler(SchedulerConfig config, int steps, bool karras, TimestepSpacing? spacing = null)
        : base(karras ? SchedulerKind.DpmPlusPlus2MKarras : SchedulerKind.DpmPlusPlus2M, config, steps)
    {
        prediction = Prediction(PredictionKind.Epsilon, PredictionKind.VPrediction, PredictionKind.Sample);
        Refuse(config.Thresholding, "thresholding");
        Refuse(config.UseLuLambdas, "use_lu_lambdas");
        if (config.VarianceType is "learned" or "learned_range")
            throw config.Unsupported("variance_type", config.VarianceType, "null (a UNet that predicts only the noise)");

        var schedule = TrainingSchedule.From(config, pinTerminalAlphaCumprod: true);
        Spacing = spacing ?? config.SpacingOr(TimestepSpacing.Linspace);
        int lastTimestep = schedule.TrainTimesteps - ClippedSteps(schedule, config.LambdaMinClipped ?? double.NegativeInfinity);
        var integerTimesteps = InferenceTimesteps.ForDpmSolver(Spacing, schedule.TrainTimesteps, lastTimestep, steps, config.StepsOffset ?? 0);

        double[] sigmas;
        if (karras)
        {
            sigmas = KarrasSigmas.Ramp(config.SigmaMin ?? schedule.Sigmas[0], config.SigmaMax ?? schedule.Sigmas[^1], steps);
            integerTimesteps = sigmas.Select(s => (long)ReferenceArithmetic.Round(KarrasSigmas.SigmaToTimestep(s, schedule.LogSigmas))).ToArray();
        }
        else
        {
            CheckTimesteps(integerTimesteps, schedule.TrainTimesteps, steps, Spacing);
            sigmas = integerTimesteps.Select(t => ReferenceArithmetic.NumpyInterp(t, schedule.Sigmas)).ToArray();
        }

        float finalSigma = config.FinalSigmasType switch
        {
            null or "zero" => 0f,
            "sigma_min" => schedule.Sigmas[0],
            var other => throw config.Unsupported("final_sigmas_type", other, "zero or sigma_min"),
        };
        this.sigmas = [.. sigmas.Select(s => (float)s), finalSigma];
        timesteps = integerTimesteps.Select(t => (float)t).ToArray();
        firstOrderAtLastStep = config.EulerAtFinal == true
            || (config.LowerOrderFinal != false && timesteps.Length < LowerOrderFinalBelowSteps)
            || finalSigma == 0f;
    }

    public TimestepSpacing Spacing { get; }

    public override IReadOnlyList<float> Timesteps => timesteps;

    /// <summary>The sigma of each step, then the final one (0 by default).</summary>
    public IReadOnlyList<float> Sigmas => sigmas;

    public override float InitNoiseSigma => 1f;

    /// <summary>α_t·x + σ_t·ε at the step's sigma.</summary>
    private protected override void AddNoiseCore(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy)
    {
        var (alpha, sigma) = AlphaSigma(sigmas[stepIndex]);
        for (int i = 0; i < original.Length; i++) noisy[i] = alpha * original[i] + sigma * noise[i];
    }

    private protected override float[] StepCore(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator)
    {
        var (alpha, sigma) = AlphaSigma(sigmas[stepIndex]);
        var original = new float[sample.Length];
        switch (prediction)
        {
            case PredictionKind.Epsilon:
                for (int i = 0; i < sample.Length; i++) original[i] = (sample[i] - sigma * modelOutput[i]) / alpha;
                break;
            case PredictionKind.VPrediction:
                for (int i = 0; i < sample.Length; i++) original[i] = alpha * sample[i] - sigma * modelOutput[i];
                break;
            default:
                modelOutput.CopyTo(original);
                break;
        }

        var (alphaNext, sigmaNext) = AlphaSigma(sigmas[stepIndex + 1]);
        float lambdaNext = TorchAvx2Math.SleefLog(alphaNext) - TorchAvx2Math.SleefLog(sigmaNext);
        float lambda = TorchAvx2Math.SleefLog(alpha) - TorchAvx2Math.SleefLog(sigma);
        float h = lambdaNext - lambda;
        float sampleScale = sigmaNext / sigma;
        float originalScale = alphaNext * (TorchAvx2Math.SleefExp(-h) - 1f);

        bool lastStep = stepIndex == timesteps.Length - 1;
        if (previousOriginal is null || (lastStep && firstOrderAtLastStep))
        {
            for (int i = 0; i < sample.Length; i++)
                sample[i] = sampleScale * sample[i] - originalScale * original[i];
        }
        else
        {
            var (alphaPrevious, sigmaPrevious) = AlphaSigma(sigmas[stepIndex - 1]);
            float lambdaPrevious = TorchAvx2Math.SleefLog(alphaPrevious) - TorchAvx2Math.SleefLog(sigmaPrevious);
            float ratio = (lambda - lambdaPrevious) / h;
            float differenceScale = 1f / ratio;
            float halfOriginalScale = 0.5f * originalScale;
            for (int i = 0; i < sample.Length; i++)
            {
                float difference = differenceScale * (original[i] - previousOriginal[i]);
                sample[i] = sampleScale * sample[i] - originalScale * original[i] - halfOriginalScale * difference;
            }
        }
        previousOriginal = original;
        return original;
    }

    /// <summary>α = 1/√(σ² + 1) and σ·α for a schedule sigma.</summary>
    private static (float Alpha, float Sigma) AlphaSigma(float scheduleSigma)
    {
        float alpha = 1f / MathF.Sqrt(scheduleSigma * scheduleSigma + 1f);
        return (alpha, scheduleSigma * alpha);
    }

    /// <summary>
    /// How many of the noisiest training steps lambda_min_clipped cuts off: torch.searchsorted (left) of
    /// the value in the ascending, flipped λ_t = ln √ᾱ_t − ln √(1 − ᾱ_t).
    /// </summary>
    private static int ClippedSteps(TrainingSchedule schedule, double lambdaMinClipped)
    {
        var alphasCumprod = schedule.AlphasCumprod;
        int clipped = 0;
        for (int t = alphasCumprod.Length - 1; t >= 0; t--)
        {
            float lambda = TorchAvx2Math.SleefLog(MathF.Sqrt(alphasCumprod[t])) - TorchAvx2Math.SleefLog(MathF.Sqrt(1f - alphasCumprod[t]));
            if (lambda >= lambdaMinClipped) break;
            clipped++;
        }
        return clipped;
    }
}
