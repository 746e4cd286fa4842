namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// The 32-bit Mersenne Twister in the form PyTorch's CPU generator uses: seeded from the low 32 bits
/// of a 64-bit seed with the 2002 initialisation, the state regenerated lazily on the first draw.
/// </summary>
internal sealed class Mt19937
{
    private const int StateSize = 624;
    private const int ShiftSize = 397;
    private const uint MatrixA = 0x9908b0df;
    private const uint UpperMask = 0x80000000;
    private const uint LowerMask = 0x7fffffff;

    private readonly uint[] state = new uint[StateSize];
    private int left;
    private int next;

    public Mt19937(ulong seed)
    {
        state[0] = (uint)seed;
        for (int i = 1; i < StateSize; i++)
            state[i] = 1812433253u * (state[i - 1] ^ (state[i - 1] >> 30)) + (uint)i;
        // torch starts with one value "left", so the first draw regenerates the whole state.
        left = 1;
        next = 0;
    }

    public uint Next()
    {
        if (--left == 0) Regenerate();
        uint y = state[next++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >> 18;
        return y;
    }

    private void Regenerate()
    {
        left = StateSize;
        next = 0;
        for (int i = 0; i < StateSize; i++)
        {
            uint mixed = (state[i] & UpperMask) | (state[(i + 1) % StateSize] & LowerMask);
            state[i] = state[(i + ShiftSize) % StateSize] ^ (mixed >> 1) ^ ((state[(i + 1) % StateSize] & 1) != 0 ? MatrixA : 0u);
        }
    }
}
