namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// Reproduces PyTorch's CPU generator (<c>torch.Generator('cpu').manual_seed(seed)</c>) and its
/// float32 <c>torch.randn</c>, bit for bit (PyTorch 1.13 running its AVX2 kernels, as the reference
/// runs did), so noise drawn here equals the noise diffusers draws from the same seed. Successive
/// draws continue one stream, as successive torch calls on one generator do: diffusers draws the
/// initial latents first, then (Euler, Euler ancestral) one latent-shaped tensor per step.
/// </summary>
/// <remarks>
/// torch takes one of two paths by element count. Under 16 elements it draws double-precision
/// Box–Muller pairs from 53-bit uniforms, returns the cosine half and keeps the sine half for the
/// next value (a cache that outlives the call, as in torch). From 16 up it fills the tensor with
/// 24-bit float uniforms, turns each block of 16 into normals (first 8 give the radius, last 8 the
/// angle), and, when the count is not a multiple of 16, redraws 16 fresh uniforms for the last 16
/// values. Not thread-safe: one generator per generation.
/// </remarks>
public sealed class TorchGenerator
{
    private const int BlockSize = 16;
    private const int HalfBlock = BlockSize / 2;
    private const float TwoPi = (float)(2.0 * Math.PI);

    private readonly Mt19937 engine;
    private double? nextDoubleNormal;

    /// <param name="seed">As given to torch's <c>manual_seed</c>; a negative torch seed is its
    /// two's-complement value. Only the low 32 bits reach the Mersenne Twister, as in torch.</param>
    public TorchGenerator(ulong seed)
    {
        Seed = seed;
        engine = new Mt19937(seed);
    }

    public ulong Seed { get; }

    /// <summary><c>torch.randn(shape, generator=g, dtype=torch.float32)</c>, in C order.</summary>
    public float[] Randn(params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int dimension in shape)
        {
            if (dimension < 0)
                throw new ArgumentException($"Shape [{string.Join(", ", shape)}] has a negative dimension.", nameof(shape));
            count *= dimension;
            if (count > Array.MaxLength)
                throw new ArgumentException($"Shape [{string.Join(", ", shape)}] has more elements than one array can hold.", nameof(shape));
        }
        var values = new float[count];
        FillNormal(values);
        return values;
    }

    /// <summary>
    /// Fills <paramref name="destination"/> as torch fills a contiguous float32 tensor of that many
    /// elements with standard normals (the shape does not matter, only the count).
    /// </summary>
    public void FillNormal(Span<float> destination)
    {
        if (destination.Length >= BlockSize) FillNormalInBlocks(destination);
        else
            for (int i = 0; i < destination.Length; i++) destination[i] = (float)NextDoubleNormal();
    }

    /// <summary>One 32-bit draw, torch's <c>random()</c>.</summary>
    internal uint NextUInt32() => engine.Next();

    /// <summary>torch's <c>random64()</c>: the first draw is the high word.</summary>
    internal ulong NextUInt64()
    {
        ulong high = engine.Next();
        return (high << 32) | engine.Next();
    }

    private float NextFloatUniform() => (NextUInt32() & ((1u << 24) - 1)) * (1.0f / (1 << 24));

    private double NextDoubleUniform() => (NextUInt64() & ((1UL << 53) - 1)) * (1.0 / (1UL << 53));

    private double NextDoubleNormal()
    {
        // As in the block path, torch adds the mean (0) last.
        if (nextDoubleNormal is double cached)
        {
            nextDoubleNormal = null;
            return cached + 0.0;
        }
        double u1 = NextDoubleUniform();
        double u2 = NextDoubleUniform();
        double radius = Math.Sqrt(-2.0 * Math.Log(1.0 - u2));
        double theta = 2.0 * Math.PI * u1;
        nextDoubleNormal = radius * Math.Sin(theta);
        return radius * Math.Cos(theta) + 0.0;
    }

    private void FillNormalInBlocks(Span<float> values)
    {
        for (int i = 0; i < values.Length; i++) values[i] = NextFloatUniform();
        for (int start = 0; start + BlockSize <= values.Length; start += BlockSize)
            BoxMuller(values.Slice(start, BlockSize));
        if (values.Length % BlockSize != 0)
        {
            var tail = values[^BlockSize..];
            for (int i = 0; i < BlockSize; i++) tail[i] = NextFloatUniform();
            BoxMuller(tail);
        }
    }

    private static void BoxMuller(Span<float> block)
    {
        for (int j = 0; j < HalfBlock; j++)
        {
            // 1 − u maps [0, 1) to (0, 1] so the logarithm stays finite.
            float radius = MathF.Sqrt(-2f * TorchAvx2Math.AvxMathfunLog(1f - block[j]));
            TorchAvx2Math.AvxMathfunSinCos(TwoPi * block[j + HalfBlock], out float sin, out float cos);
            // torch adds the mean (0) last, which turns a −0 into +0.
            block[j] = radius * cos + 0f;
            block[j + HalfBlock] = radius * sin + 0f;
        }
    }
}
