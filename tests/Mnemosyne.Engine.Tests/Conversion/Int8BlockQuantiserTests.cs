using Mnemosyne.Engine.Conversion;

namespace Mnemosyne.Engine.Tests.Conversion;

public sealed class Int8BlockQuantiserTests
{
    private static (byte[] Blocks, float[] Scales) Quantise(float[] matrix, int rows, int columns)
    {
        int blockCount = Int8BlockQuantiser.BlockCount(columns);
        var blocks = new byte[rows * blockCount * Int8BlockQuantiser.BlockSize];
        var scales = new float[rows * blockCount];
        Int8BlockQuantiser.Quantise(matrix, rows, columns, blocks, scales, "test.weight");
        return (blocks, scales);
    }

    [Fact]
    public void ABlockIsScaledByItsLargestMagnitudeAndPaddedWithTheZeroPoint()
    {
        // One row of 3: a block of 32 with 29 padding values.
        var (blocks, scales) = Quantise([0.5f, -1.27f, 0.01f], 1, 3);
        Assert.Equal(0.01f, Assert.Single(scales), 1e-7f);
        Assert.Equal(32, blocks.Length);
        Assert.Equal(128 + 50, blocks[0]);
        Assert.Equal(128 - 127, blocks[1]);
        Assert.Equal(128 + 1, blocks[2]);
        Assert.All(blocks[3..], b => Assert.Equal(128, b));
    }

    [Fact]
    public void EachBlockOfEachRowHasItsOwnScale()
    {
        // Rows of 40 values: a full block of 32 and one of 8; each block's largest magnitude differs.
        const int rows = 3, columns = 40;
        var matrix = new float[rows * columns];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                matrix[r * columns + c] = (c < 32 ? 1f : 10f) * (r + 1) * (c % 2 == 0 ? 1 : -1) * (c % 7 + 1) / 7f;
        var (blocks, scales) = Quantise(matrix, rows, columns);
        Assert.Equal(rows * 2, scales.Length);
        for (int r = 0; r < rows; r++)
        {
            Assert.Equal((r + 1) / 127f, scales[r * 2], 6);
            Assert.Equal(10f * (r + 1) / 127f, scales[r * 2 + 1], 5);
        }
        Assert.Equal(rows * 2 * 32, blocks.Length);
    }

    [Fact]
    public void ReadsBackWithinHalfAStepOfEveryWeight()
    {
        const int rows = 7, columns = 100;
        var random = new Random(5);
        var matrix = new float[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (float)((random.NextDouble() * 2 - 1) * Math.Exp(random.NextDouble() * 4 - 2));
        var (blocks, scales) = Quantise(matrix, rows, columns);
        var restored = Int8BlockQuantiser.Dequantise(blocks, scales, rows, columns);
        int blockCount = Int8BlockQuantiser.BlockCount(columns);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
            {
                float scale = scales[r * blockCount + c / 32];
                float largest = Enumerable.Range(c / 32 * 32, Math.Min(32, columns - c / 32 * 32)).Max(k => Math.Abs(matrix[r * columns + k]));
                Assert.Equal(largest / 127, scale, 1e-6f);
                Assert.True(Math.Abs(restored[r * columns + c] - matrix[r * columns + c]) <= scale / 2 * 1.0001f,
                    $"[{r}, {c}]: {matrix[r * columns + c]} read back as {restored[r * columns + c]} (step {scale})");
            }
    }

    [Fact]
    public void AZeroBlockHasScaleZero()
    {
        var (blocks, scales) = Quantise(new float[64], 2, 32);
        Assert.Equal([0f, 0f], scales);
        Assert.All(blocks, b => Assert.Equal(128, b));
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void RefusesANonFiniteWeight(float bad)
    {
        var e = Assert.Throws<InvalidDataException>(() => Quantise([1f, bad, 2f, 3f], 2, 2));
        Assert.Contains("test.weight", e.Message);
    }
}
