namespace Mnemosyne.Engine.Safetensors;

/// <summary>One tensor's place in a safetensors file. <see cref="Offset"/> is absolute in the file.</summary>
public sealed record TensorInfo(string Name, TensorDType DType, long[] Shape, long Offset, long ByteLength)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
