namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// The float logarithm and sine/cosine that PyTorch 1.13's AVX2 <c>normal_</c> kernel uses (the Cephes
/// polynomials of avx_mathfun.h), one lane at a time. The fused multiply-adds stand where GCC contracts
/// the header's separate multiply and add (it builds the AVX2 kernels with FMA enabled); with them the
/// results equal torch.randn bit for bit, without them about one value in a thousand is off by an ulp.
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

    /// <summary>Natural logarithm for x in (0, 1], the range Box–Muller feeds it.</summary>
    public static float Log(float x)
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

    /// <summary>Sine and cosine for x in [0, 2π), the range Box–Muller feeds them.</summary>
    public static void SinCos(float x, out float sin, out float cos)
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
}
