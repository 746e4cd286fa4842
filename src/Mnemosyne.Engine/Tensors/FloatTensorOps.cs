namespace Mnemosyne.Engine.Tensors;

/// <summary>The few tensor operations the pipeline does outside the graphs.</summary>
public static class FloatTensorOps
{
    /// <summary>The index of the first NaN or infinity, or null when every value is finite.</summary>
    public static int? FirstNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return null;
    }

    public static FloatTensor Zeros(params int[] shape) => new(new float[shape.Aggregate(1L, (a, b) => a * b)], shape);

    /// <summary>Stacks tensors of the same shape [1, …] along the first (batch) axis.</summary>
    public static FloatTensor ConcatBatch(params FloatTensor[] parts)
    {
        var inner = parts[0].Shape[1..];
        if (parts.Any(p => p.Shape[0] != 1 || !p.Shape[1..].SequenceEqual(inner)))
            throw new ArgumentException("Only tensors of one shape with batch 1 can be stacked.", nameof(parts));
        var data = new float[parts.Sum(p => p.Data.LongLength)];
        long offset = 0;
        foreach (var p in parts)
        {
            p.Data.CopyTo(data, offset);
            offset += p.Data.LongLength;
        }
        return new FloatTensor(data, [parts.Length, .. inner]);
    }

    /// <summary>Batch item <paramref name="index"/> as a tensor with batch 1.</summary>
    public static FloatTensor BatchItem(FloatTensor tensor, int index)
    {
        long size = tensor.Data.LongLength / tensor.Shape[0];
        var data = new float[size];
        Array.Copy(tensor.Data, index * size, data, 0, size);
        return new FloatTensor(data, [1, .. tensor.Shape[1..]]);
    }

    public static FloatTensor Mean(IReadOnlyList<FloatTensor> tensors)
    {
        var data = new float[tensors[0].Data.Length];
        foreach (var t in tensors)
            for (int i = 0; i < data.Length; i++) data[i] += t.Data[i];
        for (int i = 0; i < data.Length; i++) data[i] /= tensors.Count;
        return new FloatTensor(data, tensors[0].Shape);
    }
}
