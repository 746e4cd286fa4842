using Newtonsoft.Json;

namespace Mnemosyne.Engine.Tensors;

/// <summary>A float32 tensor with its shape, in C order. Its JSON (ConvertTo-Json) holds the shape, not the values.</summary>
public sealed record FloatTensor([property: JsonIgnore] float[] Data, int[] Shape)
{
    public long Length => Data.LongLength;
}
