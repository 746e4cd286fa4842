namespace Mnemosyne.Engine.Tensors;

/// <summary>A float32 tensor with its shape, in C order.</summary>
public sealed record FloatTensor(float[] Data, int[] Shape)
{
    public long Length => Data.LongLength;
}
