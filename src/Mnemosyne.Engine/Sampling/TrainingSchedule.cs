namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// The training noise schedule every scheduler starts from, in float32 as diffusers' torch code holds
/// it: betas from torch.linspace, ᾱ from torch.cumprod (double running product) and the training
/// sigmas √((1 − ᾱ)/ᾱ), rounded at each operation as torch rounds.
/// </summary>
internal sealed class TrainingSchedule
{
    // diffusers' class defaults, the same for the four schedulers here.
    private const int DefaultTrainTimesteps = 1000;
    private const double DefaultBetaStart = 0.0001;
    private const double DefaultBetaEnd = 0.02;
    private const string DefaultBetaSchedule = "linear";
    private const float ZeroSnrTerminalAlphaCumprod = 1f / (1 << 24);

    private TrainingSchedule(float[] betas, float[] alphasCumprod)
    {
        Betas = betas;
        AlphasCumprod = alphasCumprod;
        Sigmas = new float[alphasCumprod.Length];
        LogSigmas = new float[alphasCumprod.Length];
        for (int t = 0; t < alphasCumprod.Length; t++)
        {
            Sigmas[t] = MathF.Sqrt((1f - alphasCumprod[t]) / alphasCumprod[t]);
            LogSigmas[t] = ReferenceArithmetic.NumpyLog(Sigmas[t]);
        }
    }

    public int TrainTimesteps => AlphasCumprod.Length;

    /// <summary>β_t, t = 0 … T−1 (after any zero-terminal-SNR rescale).</summary>
    public float[] Betas { get; }

    /// <summary>ᾱ_t, t = 0 … T−1.</summary>
    public float[] AlphasCumprod { get; }

    /// <summary>σ_t = √((1 − ᾱ_t)/ᾱ_t), ascending in t.</summary>
    public float[] Sigmas { get; }

    /// <summary>ln σ_t in float32 (NumPy's log of the float32 sigmas), for mapping sigmas back to timesteps.</summary>
    public float[] LogSigmas { get; }

    /// <param name="pinTerminalAlphaCumprod">Euler, Euler ancestral and DPM-Solver set ᾱ_{T−1} to 2⁻²⁴ after a
    /// zero-terminal-SNR rescale (so σ stays finite); DDIM keeps the 0.</param>
    public static TrainingSchedule From(SchedulerConfig config, bool pinTerminalAlphaCumprod)
    {
        var betas = BetasFrom(config);
        if (config.RescaleBetasZeroSnr == true) betas = RescaleToZeroTerminalSnr(betas);
        var alphas = new float[betas.Length];
        for (int i = 0; i < betas.Length; i++) alphas[i] = 1f - betas[i];
        var alphasCumprod = ReferenceArithmetic.TorchCumprod(alphas);
        if (config.RescaleBetasZeroSnr == true && pinTerminalAlphaCumprod) alphasCumprod[^1] = ZeroSnrTerminalAlphaCumprod;
        return new TrainingSchedule(betas, alphasCumprod);
    }

    private static float[] BetasFrom(SchedulerConfig config)
    {
        if (config.TrainedBetas is { } trained)
        {
            if (trained.Count < 2)
                throw new InvalidDataException($"{config.Source}: trained_betas has {trained.Count} values; a schedule needs at least 2.");
            return trained.Select(b => (float)b).ToArray();
        }
        int count = config.NumTrainTimesteps ?? DefaultTrainTimesteps;
        if (count < 2)
            throw new InvalidDataException($"{config.Source}: num_train_timesteps {count} is too small; a schedule needs at least 2.");
        double start = config.BetaStart ?? DefaultBetaStart;
        double end = config.BetaEnd ?? DefaultBetaEnd;
        switch (config.BetaSchedule ?? DefaultBetaSchedule)
        {
            case "linear":
                return ReferenceArithmetic.TorchLinspace((float)start, (float)end, count);
            case "scaled_linear":
                var roots = ReferenceArithmetic.TorchLinspace((float)Math.Sqrt(start), (float)Math.Sqrt(end), count);
                for (int i = 0; i < count; i++) roots[i] *= roots[i];
                return roots;
            case "squaredcos_cap_v2":
                return CosineBetas(count);
            case var other:
                throw config.Unsupported("beta_schedule", other, "linear, scaled_linear or squaredcos_cap_v2");
        }
    }

    /// <summary>The "cosine" schedule (Nichol and Dhariwal), in double as diffusers' Python computes it, capped at 0.999.</summary>
    private static float[] CosineBetas(int count)
    {
        static double AlphaBar(double t)
        {
            double c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2);
            return c * c;
        }
        var betas = new float[count];
        for (int i = 0; i < count; i++)
            betas[i] = (float)Math.Min(1 - AlphaBar((i + 1) / (double)count) / AlphaBar(i / (double)count), 0.999);
        return betas;
    }

    /// <summary>Lin et al.'s rescale to zero terminal SNR (arXiv 2305.08891, algorithm 1), in float32 as diffusers does it.</summary>
    private static float[] RescaleToZeroTerminalSnr(float[] betas)
    {
        var alphas = new float[betas.Length];
        for (int i = 0; i < betas.Length; i++) alphas[i] = 1f - betas[i];
        var roots = ReferenceArithmetic.TorchCumprod(alphas);
        for (int i = 0; i < roots.Length; i++) roots[i] = MathF.Sqrt(roots[i]);
        float first = roots[0], last = roots[^1];
        float scale = first / (first - last);
        var alphasBar = new float[roots.Length];
        for (int i = 0; i < roots.Length; i++)
        {
            float shifted = (roots[i] - last) * scale;
            alphasBar[i] = shifted * shifted;
        }
        var rescaled = new float[betas.Length];
        rescaled[0] = 1f - alphasBar[0];
        for (int i = 1; i < rescaled.Length; i++) rescaled[i] = 1f - alphasBar[i] / alphasBar[i - 1];
        return rescaled;
    }
}
