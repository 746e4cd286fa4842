namespace Mnemosyne.Engine.Sampling;

/// <summary>The inference timesteps each diffusers scheduler family derives from the spacing, in its own dtype.</summary>
internal static class InferenceTimesteps
{
    /// <summary>Euler and Euler ancestral: float32 timesteps, descending.</summary>
    public static float[] ForEuler(TimestepSpacing spacing, int trainTimesteps, int steps, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                var evenly = ReferenceArithmetic.NumpyLinspace(0, trainTimesteps - 1, steps);
                return evenly.Select(t => (float)t).Reverse().ToArray();
            case TimestepSpacing.Leading:
                int ratio = trainTimesteps / steps;
                return Enumerable.Range(0, steps).Reverse().Select(k => (float)(k * ratio) + stepsOffset).ToArray();
            default:
                return TrailingValues(trainTimesteps, trainTimesteps, steps).Select(t => (float)t - 1f).ToArray();
        }
    }

    /// <summary>DPM-Solver: int64 timesteps from <paramref name="steps"/> + 1 points with the last (lowest) dropped.</summary>
    public static long[] ForDpmSolver(TimestepSpacing spacing, int trainTimesteps, int lastTimestep, int steps, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                var evenly = ReferenceArithmetic.NumpyLinspace(0, lastTimestep - 1, steps + 1);
                return evenly.Select(ReferenceArithmetic.Round).Reverse().Take(steps).Select(t => (long)t).ToArray();
            case TimestepSpacing.Leading:
                long ratio = lastTimestep / (steps + 1);
                return Enumerable.Range(1, steps).Reverse().Select(k => k * ratio + stepsOffset).ToArray();
            default:
                return TrailingValues(lastTimestep, trainTimesteps, steps).Select(t => (long)t - 1).ToArray();
        }
    }

    /// <summary>DDIM: int64 timesteps, descending.</summary>
    public static long[] ForDdim(TimestepSpacing spacing, int trainTimesteps, int steps, int stepsOffset)
    {
        switch (spacing)
        {
            case TimestepSpacing.Linspace:
                var evenly = ReferenceArithmetic.NumpyLinspace(0, trainTimesteps - 1, steps);
                return evenly.Select(ReferenceArithmetic.Round).Reverse().Select(t => (long)t).ToArray();
            case TimestepSpacing.Leading:
                long ratio = trainTimesteps / steps;
                return Enumerable.Range(0, steps).Reverse().Select(k => k * ratio + stepsOffset).ToArray();
            default:
                return TrailingValues(trainTimesteps, trainTimesteps, steps).Select(t => (long)t - 1).ToArray();
        }
    }

    /// <summary><c>round(arange(start, 0, −trainTimesteps/steps))</c>, before diffusers subtracts 1.</summary>
    private static IEnumerable<double> TrailingValues(int start, int trainTimesteps, int steps) =>
        ReferenceArithmetic.NumpyArange(start, 0, -(trainTimesteps / (double)steps)).Select(ReferenceArithmetic.Round);
}
