namespace Mnemosyne.Engine.Sampling;

/// <summary>Karras et al.'s (2022) sigma ramp and diffusers' map from a sigma back to a fractional timestep, in float64 as NumPy computes them.</summary>
internal static class KarrasSigmas
{
    private const double Rho = 7.0;

    /// <summary>σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7, i = 0 … n−1.</summary>
    public static double[] Ramp(double sigmaMin, double sigmaMax, int count)
    {
        var ramp = ReferenceArithmetic.NumpyLinspace(0, 1, count);
        double minInverseRho = Math.Pow(sigmaMin, 1 / Rho);
        double maxInverseRho = Math.Pow(sigmaMax, 1 / Rho);
        var sigmas = new double[count];
        for (int i = 0; i < count; i++) sigmas[i] = Math.Pow(maxInverseRho + ramp[i] * (minInverseRho - maxInverseRho), Rho);
        return sigmas;
    }

    /// <summary>
    /// The fractional training timestep of <paramref name="sigma"/>: the last index whose log-sigma is at
    /// most ln σ (at most T−2), plus the clamped linear weight towards the next one. NumPy 1.x's
    /// value-based casting keeps the float32 log-sigmas float32 against the float64 ln σ, so the
    /// comparison and the weight are float32; only the final blend of the two indices is float64.
    /// </summary>
    public static double SigmaToTimestep(double sigma, ReadOnlySpan<float> logSigmas)
    {
        float logSigma = (float)Math.Log(Math.Max(sigma, 1e-10));
        int low = 0;
        for (int i = 0; i < logSigmas.Length; i++)
            if (logSigmas[i] <= logSigma) low = i;
        low = Math.Min(low, logSigmas.Length - 2);
        float lowLog = logSigmas[low], highLog = logSigmas[low + 1];
        float weight = Math.Clamp((lowLog - logSigma) / (lowLog - highLog), 0f, 1f);
        return (double)(1f - weight) * low + (double)weight * (low + 1);
    }
}
