namespace Mnemosyne.Engine.Conversion;

/// <summary>
/// Symmetric 8-bit block quantisation of a linear layer's weight matrix [out, in], in the layout of ONNX
/// Runtime's com.microsoft MatMulNBits (bits 8, no zero-point input): each row is cut along the input
/// features into blocks of <see cref="BlockSize"/>; a block's scale is its largest magnitude / 127 and each
/// weight is stored as round(w / scale) + <see cref="ZeroPoint"/> in a byte, so it reads back as
/// (q − 128) · scale. The last block of a row whose length is not a multiple of the block size is padded
/// with the zero point, i.e. zeros.
/// </summary>
public static class Int8BlockQuantiser
{
    public const int Bits = 8;
    public const int BlockSize = 32;

    /// <summary>MatMulNBits' default zero point for 8 bits, 2^(bits−1), used when the node has no zero_points input.</summary>
    public const int ZeroPoint = 128;

    private const float Levels = 127f;

    /// <summary>Blocks per row: ⌈columns / <see cref="BlockSize"/>⌉.</summary>
    public static int BlockCount(long columns) => (int)((columns + BlockSize - 1) / BlockSize);

    /// <summary>
    /// Quantises <paramref name="matrix"/> [<paramref name="rows"/>, <paramref name="columns"/>] (row-major) into
    /// <paramref name="blocks"/> [rows, blockCount, <see cref="BlockSize"/>] and <paramref name="scales"/> [rows, blockCount].
    /// </summary>
    /// <param name="name">The weight's name, for the error a non-finite value raises.</param>
    /// <exception cref="InvalidDataException">The matrix holds an infinite or NaN value, which no scale represents.</exception>
    public static void Quantise(ReadOnlySpan<float> matrix, int rows, int columns, Span<byte> blocks, Span<float> scales, string name)
    {
        int blockCount = BlockCount(columns);
        if (rows < 0 || columns <= 0 || matrix.Length != (long)rows * columns)
            throw new ArgumentException($"'{name}': {matrix.Length} values do not make a [{rows}, {columns}] matrix.", nameof(matrix));
        if (blocks.Length != (long)rows * blockCount * BlockSize || scales.Length != (long)rows * blockCount)
            throw new ArgumentException($"'{name}': the destinations need {rows * blockCount * BlockSize} bytes and {rows * blockCount} scales.", nameof(blocks));

        for (int row = 0; row < rows; row++)
        {
            var values = matrix.Slice(row * columns, columns);
            for (int block = 0; block < blockCount; block++)
            {
                int start = block * BlockSize;
                var part = values.Slice(start, Math.Min(BlockSize, columns - start));
                var destination = blocks.Slice((row * blockCount + block) * BlockSize, BlockSize);
                scales[row * blockCount + block] = QuantiseBlock(part, destination, name);
            }
        }
    }

    /// <summary>The float32 matrix the quantised form stands for: (q − 128) · scale per block.</summary>
    public static float[] Dequantise(ReadOnlySpan<byte> blocks, ReadOnlySpan<float> scales, int rows, int columns)
    {
        int blockCount = BlockCount(columns);
        var matrix = new float[(long)rows * columns];
        for (int row = 0; row < rows; row++)
            for (int column = 0; column < columns; column++)
            {
                int block = column / BlockSize;
                int stored = blocks[(row * blockCount + block) * BlockSize + column % BlockSize];
                matrix[(long)row * columns + column] = (stored - ZeroPoint) * scales[row * blockCount + block];
            }
        return matrix;
    }

    private static float QuantiseBlock(ReadOnlySpan<float> values, Span<byte> destination, string name)
    {
        float largest = 0;
        foreach (var v in values)
        {
            if (!float.IsFinite(v))
                throw new InvalidDataException($"Weight '{name}' holds {v}: a checkpoint with infinite or NaN weights cannot be quantised (is the file damaged?).");
            largest = Math.Max(largest, Math.Abs(v));
        }
        destination.Fill(ZeroPoint);
        if (largest == 0) return 0;

        float scale = largest / Levels;
        for (int i = 0; i < values.Length; i++)
        {
            // Round to nearest (ties to even); the clamp only guards against the last ulp of the division.
            int level = (int)MathF.Round(values[i] / scale);
            destination[i] = (byte)(Math.Clamp(level, -(int)Levels, (int)Levels) + ZeroPoint);
        }
        return scale;
    }
}
