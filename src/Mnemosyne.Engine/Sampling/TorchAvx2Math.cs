namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// Float transcendental functions as PyTorch 1.13's AVX2 kernels compute them, one lane at a time, so
/// results match torch bit for bit rather than to the last ulp or so of a C runtime:
/// the Cephes polynomials of avx_mathfun.h that the <c>normal_</c> kernel uses, and SLEEF's u10 log
/// and exp behind <c>torch.log</c> / <c>torch.exp</c> on float32 tensors (scalar tensors included).
/// </summary>
internal static class TorchAvx2Math
{
    private const float SqrtHalf = 0.707106781186547524f;
    private const float LogQ1 = -2.12194440e-4f;
    private const float LogQ2 = 0.693359375f;
    private const float FourOverPi = 1.27323954473516f;
    private const float MinusDp1 = -0.78515625f;
    private const float MinusDp2 = -2.4187564849853515625e-4f;
    private const float MinusDp3 = -3.77489497744594108e-8f;

    private const float SleefLn2High = 0.693145751953125f;
    private const float SleefLn2Low = 1.428606765330187045e-06f;
    private const float SmallestNormal = 1.17549435e-38f;

    /// <summary>
    /// avx_mathfun's log256_ps for x in (0, 1], the range Box–Muller feeds it. The fused multiply-adds
    /// stand where GCC contracts the header's separate multiply and add (torch builds its AVX2 kernels
    /// with FMA); without them about one value in a thousand is an ulp off torch.randn.
    /// </summary>
    public static float AvxMathfunLog(float x)
    {
        if (!(x > 0)) return float.NaN;
        x = MathF.Max(x, BitConverter.Int32BitsToSingle(0x00800000));
        int bits = BitConverter.SingleToInt32Bits(x);
        float e = (int)((uint)bits >> 23) - 0x7f;
        // Mantissa scaled into [0.5, 1).
        x = BitConverter.Int32BitsToSingle((bits & ~0x7f800000) | 0x3f000000);
        e += 1f;
        if (x < SqrtHalf)
        {
            e -= 1f;
            x = x - 1f + x;
        }
        else x -= 1f;

        float z = x * x;
        float y = 7.0376836292E-2f;
        y = MathF.FusedMultiplyAdd(y, x, -1.1514610310E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 1.1676998740E-1f);
        y = MathF.FusedMultiplyAdd(y, x, -1.2420140846E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 1.4249322787E-1f);
        y = MathF.FusedMultiplyAdd(y, x, -1.6668057665E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 2.0000714765E-1f);
        y = MathF.FusedMultiplyAdd(y, x, -2.4999993993E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 3.3333331174E-1f);
        y *= x;
        y = MathF.FusedMultiplyAdd(y, z, e * LogQ1);
        y = MathF.FusedMultiplyAdd(z, -0.5f, y);
        return MathF.FusedMultiplyAdd(e, LogQ2, x + y);
    }

    /// <summary>avx_mathfun's sincos256_ps for x in [0, 2π), the range Box–Muller feeds it (FMA as above).</summary>
    public static void AvxMathfunSinCos(float x, out float sin, out float cos)
    {
        uint sinSign = BitConverter.SingleToUInt32Bits(x) & 0x80000000u;
        x = MathF.Abs(x);
        // Octant, rounded up to even (Cephes' j = (j + 1) & ~1).
        int octant = ((int)(x * FourOverPi) + 1) & ~1;
        float y = octant;
        sinSign ^= (uint)(octant & 4) << 29;
        uint cosSign = (uint)(~(octant - 2) & 4) << 29;
        bool sinUsesSinePolynomial = (octant & 2) == 0;

        // Extended-precision reduction x − y·π/4 in three parts.
        x = MathF.FusedMultiplyAdd(y, MinusDp1, x);
        x = MathF.FusedMultiplyAdd(y, MinusDp2, x);
        x = MathF.FusedMultiplyAdd(y, MinusDp3, x);

        float z = x * x;
        float cosine = 2.443315711809948E-005f;
        cosine = MathF.FusedMultiplyAdd(cosine, z, -1.388731625493765E-003f);
        cosine = MathF.FusedMultiplyAdd(cosine, z, 4.166664568298827E-002f);
        cosine *= z;
        cosine = MathF.FusedMultiplyAdd(cosine, z, -(z * 0.5f));
        cosine += 1f;

        float sine = -1.9515295891E-4f;
        sine = MathF.FusedMultiplyAdd(sine, z, 8.3321608736E-3f);
        sine = MathF.FusedMultiplyAdd(sine, z, -1.6666654611E-1f);
        sine *= z;
        sine = MathF.FusedMultiplyAdd(sine, x, x);

        float sinValue = sinUsesSinePolynomial ? sine : cosine;
        float cosValue = sinUsesSinePolynomial ? cosine : sine;
        sin = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(sinValue) ^ sinSign);
        cos = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(cosValue) ^ cosSign);
    }

    /// <summary>SLEEF's expf (u10, FMA build): Cody–Waite reduction by ln 2 and a degree-6 polynomial.</summary>
    public static float SleefExp(float x)
    {
        if (x < -104f) return 0f;
        if (x > 100f) return float.PositiveInfinity;
        if (float.IsNaN(x)) return x;
        float q = MathF.Round(x * 1.442695040888963407359924681001892137426645954152985934135449406931f, MidpointRounding.ToEven);
        float s = MathF.FusedMultiplyAdd(q, -SleefLn2High, x);
        s = MathF.FusedMultiplyAdd(q, -SleefLn2Low, s);
        float u = 0.000198527617612853646278381f;
        u = MathF.FusedMultiplyAdd(u, s, 0.00139304355252534151077271f);
        u = MathF.FusedMultiplyAdd(u, s, 0.00833336077630519866943359f);
        u = MathF.FusedMultiplyAdd(u, s, 0.0416664853692054748535156f);
        u = MathF.FusedMultiplyAdd(u, s, 0.166666671633720397949219f);
        u = MathF.FusedMultiplyAdd(u, s, 0.5f);
        u = 1f + MathF.FusedMultiplyAdd(s * s, u, s);
        int exponent = (int)q;
        // Two half scalings, as SLEEF's ldexp2 does, so 2^q never overflows on its own.
        return MathF.ScaleB(MathF.ScaleB(u, exponent >> 1), exponent - (exponent >> 1));
    }

    /// <summary>
    /// SLEEF's logf_u1 (FMA build): x = m·2^e with m in [0.75, 1.5), log m = 2·atanh((m−1)/(m+1)) with
    /// the quotient and the sum carried in double-float (pairs of floats), plus e·ln 2.
    /// </summary>
    public static float SleefLog(float x)
    {
        if (float.IsNaN(x) || x < 0f) return float.NaN;
        if (x == 0f) return float.NegativeInfinity;
        if (float.IsPositiveInfinity(x)) return x;
        bool subnormal = x < SmallestNormal;
        if (subnormal) x *= 18446744073709551616f;
        int exponent = (int)((BitConverter.SingleToUInt32Bits(x * (1f / 0.75f)) >> 23) & 0xff) - 0x7f;
        float mantissa = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) - (exponent << 23));
        if (subnormal) exponent -= 64;

        float e = exponent;
        float sumHigh = 0.69314718246459960938f * e;
        float sumLow = MathF.FusedMultiplyAdd(-1.904654323148236017e-09f, e, MathF.FusedMultiplyAdd(0.69314718246459960938f, e, -sumHigh));

        var (numeratorHigh, numeratorLow) = TwoSum(-1f, mantissa);
        var (denominatorHigh, denominatorLow) = TwoSum(1f, mantissa);
        float reciprocal = 1f / denominatorHigh;
        float quotientHigh = numeratorHigh * reciprocal;
        float quotientLow = MathF.FusedMultiplyAdd(-denominatorLow, reciprocal, MathF.FusedMultiplyAdd(-denominatorHigh, reciprocal, 1f));
        quotientLow = MathF.FusedMultiplyAdd(quotientHigh, quotientLow,
            MathF.FusedMultiplyAdd(numeratorLow, reciprocal, MathF.FusedMultiplyAdd(reciprocal, numeratorHigh, -quotientHigh)));

        float square = quotientHigh * quotientHigh;
        float t = 0.3027294874f;
        t = MathF.FusedMultiplyAdd(t, square, 0.3996108174f);
        t = MathF.FusedMultiplyAdd(t, square, 0.6666694880f);

        float twiceHigh = quotientHigh * 2f, twiceLow = quotientLow * 2f;
        float high = sumHigh + twiceHigh;
        float low = (((sumHigh - high) + twiceHigh) + sumLow) + twiceLow;
        float tail = square * quotientHigh * t;
        float resultHigh = high + tail;
        float resultLow = ((high - resultHigh) + tail) + low;
        return resultHigh + resultLow;
    }

    /// <summary>x + y as a rounded sum and its exact error (SLEEF's dfadd2).</summary>
    private static (float High, float Low) TwoSum(float x, float y)
    {
        float sum = x + y;
        float v = sum - x;
        return (sum, (x - (sum - v)) + (y - v));
    }
}
