namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// The few PyTorch 1.13 and NumPy routines diffusers builds its schedules with, reproduced with their
/// rounding, so the sigmas and timesteps here equal diffusers' values rather than the textbook ones.
/// </summary>
internal static class ReferenceArithmetic
{
    private const int TorchFloatLanes = 8;
    private const float SmallestNormal = 1.17549435e-38f;

    /// <summary>
    /// <c>torch.linspace(start, end, steps, dtype=float32)</c> as its AVX2 kernel computes it: the first
    /// half counts up from start, the second down from end; values come in vectors of 8 whose first lane
    /// is start + step·i (one rounding: GCC fuses it) and whose other lanes add k·step to that lane,
    /// two vectors at a time; a tail shorter than two vectors is computed value by value.
    /// </summary>
    public static float[] TorchLinspace(float start, float end, int steps)
    {
        var values = new float[steps];
        if (steps == 1)
        {
            values[0] = start;
            return values;
        }
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        float Scalar(int i) => i < halfway
            ? MathF.FusedMultiplyAdd(step, i, start)
            : MathF.FusedMultiplyAdd(-step, steps - i - 1, end);

        int index = 0;
        for (; index + 2 * TorchFloatLanes <= steps; index += 2 * TorchFloatLanes)
            for (int vector = index; vector < index + 2 * TorchFloatLanes; vector += TorchFloatLanes)
            {
                float first = Scalar(vector);
                values[vector] = first;
                for (int lane = 1; lane < TorchFloatLanes; lane++) values[vector + lane] = first + lane * step;
            }
        for (; index < steps; index++) values[index] = Scalar(index);
        return values;
    }

    /// <summary><c>torch.cumprod</c> of float32 on the CPU: a double running product, each output rounded to float.</summary>
    public static float[] TorchCumprod(ReadOnlySpan<float> values)
    {
        var result = new float[values.Length];
        double product = 1.0;
        for (int i = 0; i < values.Length; i++)
        {
            product *= values[i];
            result[i] = (float)product;
        }
        return result;
    }

    /// <summary><c>numpy.linspace(start, stop, num)</c> in float64: i·step + start, the last value exactly stop.</summary>
    public static double[] NumpyLinspace(double start, double stop, int num)
    {
        var values = new double[num];
        if (num == 0) return values;
        if (num == 1)
        {
            values[0] = start;
            return values;
        }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) values[i] = i * step + start;
        values[^1] = stop;
        return values;
    }

    /// <summary>
    /// <c>numpy.arange(start, stop, step)</c> in float64: ceil((stop − start)/step) values, the second
    /// being start + step and the rest start + i·(second − start). The count can exceed the intended one
    /// by rounding (arange(1000, 0, −1000/61) has 62 values), and diffusers inherits that.
    /// </summary>
    public static double[] NumpyArange(double start, double stop, double step)
    {
        double exactCount = Math.Ceiling((stop - start) / step);
        int count = exactCount > 0 ? checked((int)exactCount) : 0;
        var values = new double[count];
        if (count > 0) values[0] = start;
        if (count > 1) values[1] = start + step;
        double delta = count > 1 ? values[1] - start : 0;
        for (int i = 2; i < count; i++) values[i] = start + i * delta;
        return values;
    }

    /// <summary>
    /// NumPy's float32 <c>log</c> for positive normal x, as its AVX2/FMA3 and AVX-512F loops compute it
    /// (loops_exponent_log): x = m·2^e with m in (√½, √2], then a 5/5 rational approximation of
    /// log(m) with fused multiply-adds, plus e·ln 2. It is within 4 ulp but not correctly rounded, and
    /// the sigma-to-timestep map diffusers uses for Karras sigmas reads these values.
    /// </summary>
    public static float NumpyLog(float x)
    {
        if (!(x >= SmallestNormal) || float.IsInfinity(x)) return MathF.Log(x);
        int bits = BitConverter.SingleToInt32Bits(x);
        float exponent = (bits >> 23) - 126;
        float mantissa = BitConverter.Int32BitsToSingle((bits & 0x007fffff) | (126 << 23));
        if (mantissa <= 0.707106781186547524400844362104849039f)
        {
            mantissa += mantissa;
            exponent -= 1f;
        }
        float y = mantissa - 1f;
        float numerator = MathF.FusedMultiplyAdd(2.589979117907922693523e-02f, y, 3.808837741388407920751e-01f);
        numerator = MathF.FusedMultiplyAdd(numerator, y, 1.480000633576506585156e+00f);
        numerator = MathF.FusedMultiplyAdd(numerator, y, 2.112677543073053063722e+00f);
        numerator = MathF.FusedMultiplyAdd(numerator, y, 9.999999999999998702752e-01f);
        numerator = MathF.FusedMultiplyAdd(numerator, y, 0f);
        float denominator = MathF.FusedMultiplyAdd(5.875095403124574342950e-03f, y, 1.546476374983906719538e-01f);
        denominator = MathF.FusedMultiplyAdd(denominator, y, 9.864942958519418960339e-01f);
        denominator = MathF.FusedMultiplyAdd(denominator, y, 2.453006071784736363091e+00f);
        denominator = MathF.FusedMultiplyAdd(denominator, y, 2.612677543073109236779e+00f);
        denominator = MathF.FusedMultiplyAdd(denominator, y, 1f);
        return MathF.FusedMultiplyAdd(exponent, 0.693147180559945309417232121458176568f, numerator / denominator);
    }

    /// <summary>NumPy's round (half to even).</summary>
    public static double Round(double value) => Math.Round(value, MidpointRounding.ToEven);

    /// <summary><c>numpy.interp(x, arange(len(fp)), fp)</c>: clamped at both ends, linear between.</summary>
    public static double NumpyInterp(double x, ReadOnlySpan<float> fp)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x <= 0) return fp[0];
        int last = fp.Length - 1;
        if (x >= last) return fp[last];
        int j = (int)Math.Floor(x);
        if (j == x) return fp[j];
        double slope = (double)fp[j + 1] - fp[j];
        return slope * (x - j) + fp[j];
    }
}
