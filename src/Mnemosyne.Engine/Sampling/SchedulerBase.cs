namespace Mnemosyne.Engine.Sampling;

/// <summary>What the model predicts (diffusers' prediction_type).</summary>
internal enum PredictionKind
{
    Epsilon,
    VPrediction,
    Sample,
}

/// <summary>Step bookkeeping and argument checks shared by the schedulers.</summary>
public abstract class SchedulerBase : IScheduler
{
    private int nextStep;
    private float[] predictedOriginal = [];

    private protected SchedulerBase(SchedulerKind kind, SchedulerConfig config, int steps)
    {
        ArgumentNullException.ThrowIfNull(config);
        int trainTimesteps = config.TrainedBetas?.Count ?? config.NumTrainTimesteps ?? 1000;
        if (steps < 1 || steps > trainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, $"Steps must be between 1 and the model's {trainTimesteps} training timesteps.");
        Kind = kind;
        Config = config;
    }

    public SchedulerKind Kind { get; }

    public abstract IReadOnlyList<float> Timesteps { get; }

    public abstract float InitNoiseSigma { get; }

    private protected SchedulerConfig Config { get; }

    public void ScaleModelInput(Span<float> sample, int stepIndex)
    {
        CheckStepIndex(stepIndex);
        ScaleModelInputCore(sample, stepIndex);
    }

    public void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator)
    {
        CheckStepIndex(stepIndex);
        if (stepIndex != nextStep)
            throw new InvalidOperationException($"{Kind}: step {stepIndex} was asked for, but the next step is {nextStep}; take the steps in order, each once.");
        if (modelOutput.Length != sample.Length)
            throw new ArgumentException($"The model output has {modelOutput.Length} values but the sample has {sample.Length}.", nameof(modelOutput));
        predictedOriginal = StepCore(modelOutput, stepIndex, sample, generator);
        nextStep++;
    }

    public ReadOnlySpan<float> PredictedOriginal => predictedOriginal;

    public void BeginAt(int stepIndex)
    {
        CheckStepIndex(stepIndex);
        if (predictedOriginal.Length > 0)
            throw new InvalidOperationException($"{Kind}: the schedule can only be entered part-way before the first step.");
        nextStep = stepIndex;
    }

    public void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy)
    {
        CheckStepIndex(stepIndex);
        if (noise.Length != original.Length || noisy.Length != original.Length)
            throw new ArgumentException($"The noise ({noise.Length} values) and the result ({noisy.Length}) must be the size of the sample ({original.Length}).", nameof(noise));
        AddNoiseCore(original, noise, stepIndex, noisy);
    }

    private protected abstract void AddNoiseCore(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> noisy);

    /// <summary>x + σ·ε, the Euler family's add_noise (in float32, as torch computes it).</summary>
    private protected static void AddSigmaNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, float sigma, Span<float> noisy)
    {
        for (int i = 0; i < original.Length; i++) noisy[i] = original[i] + noise[i] * sigma;
    }

    /// <summary>
    /// Refuses a step count whose timesteps (descending) leave the trained ones or repeat: diffusers then indexes past
    /// the schedule's end, or takes a step of zero length and divides by it.
    /// </summary>
    private protected void CheckTimesteps(IReadOnlyList<long> timesteps, int trainTimesteps, int steps, TimestepSpacing spacing)
    {
        for (int i = 0; i < timesteps.Count; i++)
        {
            bool outside = timesteps[i] < 0 || timesteps[i] >= trainTimesteps;
            if (!outside && (i == 0 || timesteps[i] < timesteps[i - 1])) continue;
            var problem = outside ? $"reach timestep {timesteps[i]}, outside the model's 0 to {trainTimesteps - 1}" : $"take timestep {timesteps[i]} twice";
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"{Kind} with {spacing} timestep spacing and steps_offset {Config.StepsOffset ?? 0} cannot take {steps} steps: its timesteps would {problem}. " +
                "Use fewer steps or another scheduler.");
        }
    }

    private protected virtual void ScaleModelInputCore(Span<float> sample, int stepIndex)
    {
    }

    /// <returns>The denoised sample x0 the step estimated (not changed afterwards).</returns>
    private protected abstract float[] StepCore(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, TorchGenerator? generator);

    private protected PredictionKind Prediction(params PredictionKind[] supported)
    {
        var kind = Config.PredictionType switch
        {
            null or "epsilon" => PredictionKind.Epsilon,
            "v_prediction" => PredictionKind.VPrediction,
            "sample" => PredictionKind.Sample,
            var other => throw Config.Unsupported("prediction_type", other, "epsilon, v_prediction or sample"),
        };
        if (!supported.Contains(kind))
            throw Config.Unsupported("prediction_type", Config.PredictionType, $"{string.Join(" or ", supported.Select(Name))} with {Kind}");
        return kind;

        static string Name(PredictionKind k) => k switch
        {
            PredictionKind.Epsilon => "epsilon",
            PredictionKind.VPrediction => "v_prediction",
            _ => "sample",
        };
    }

    private protected void Refuse(bool? flag, string key)
    {
        if (flag == true) throw Config.Unsupported(key, true, $"{key} false with {Kind}");
    }

    private void CheckStepIndex(int stepIndex)
    {
        if ((uint)stepIndex >= (uint)Timesteps.Count)
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"{Kind} has {Timesteps.Count} steps (0 to {Timesteps.Count - 1}).");
    }
}
