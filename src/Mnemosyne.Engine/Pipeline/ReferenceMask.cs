using Mnemosyne.Engine.Imaging;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// Where in a scene a reference acts: 1 inside, 0 outside, one value per pixel of the scene. Made from a black-and-white
/// picture as diffusers' <c>IPAdapterMaskProcessor.preprocess</c> makes it (grey as PIL's "L", then 0 below half, 1 from
/// half), or from a rectangle. Each cross-attention reads it at its own resolution (<see cref="Downsample"/>).
/// </summary>
public sealed class ReferenceMask
{
    private readonly float[] values;

    private ReferenceMask(int width, int height, float[] values, string source)
    {
        Width = width;
        Height = height;
        this.values = values;
        Source = source;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>The picture file, or the rectangle ("x,y,w,h"), for messages and the picture's parameters.</summary>
    public string Source { get; }

    /// <summary>Whether no pixel is inside: such a reference would act nowhere.</summary>
    public bool IsEmpty => Array.IndexOf(values, 1f) < 0;

    /// <summary>A picture's mask: white (grey from 128) is inside. <paramref name="source"/> names it in messages.</summary>
    public static ReferenceMask FromPicture(RgbImage picture, string source)
    {
        ArgumentNullException.ThrowIfNull(picture);
        var rgb = picture.Rgb;
        var values = new float[picture.Width * picture.Height];
        for (int i = 0; i < values.Length; i++)
        {
            // PIL's convert("L"): ITU-R 601-2 luma in 16-bit fixed point, rounded.
            int grey = (rgb[3 * i] * 19595 + rgb[3 * i + 1] * 38470 + rgb[3 * i + 2] * 7471 + 0x8000) >> 16;
            values[i] = grey / 255f < 0.5f ? 0f : 1f;
        }
        return new ReferenceMask(picture.Width, picture.Height, values, source);
    }

    /// <summary>A <paramref name="width"/> × <paramref name="height"/> mask that is inside on the rectangle at (x, y) of w × h pixels (clipped to the scene).</summary>
    public static ReferenceMask Rectangle(int width, int height, int x, int y, int w, int h)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var values = new float[width * height];
        for (int row = Math.Max(y, 0); row < Math.Min((long)y + h, height); row++)
            for (int column = Math.Max(x, 0); column < Math.Min((long)x + w, width); column++)
                values[row * width + column] = 1f;
        return new ReferenceMask(width, height, values, $"{x},{y},{w},{h}");
    }

    /// <summary>The mask at <paramref name="width"/> × <paramref name="height"/>, each pixel the nearest of this one's (the hires fix's second pass).</summary>
    public ReferenceMask Enlarged(int width, int height)
    {
        var values = new float[width * height];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                values[y * width + x] = this.values[(int)((long)y * Height / height) * Width + (int)((long)x * Width / width)];
        return new ReferenceMask(width, height, values, Source);
    }

    /// <summary>
    /// The mask for an attention over <paramref name="queries"/> positions, as diffusers' <c>IPAdapterMaskProcessor.downsample</c>:
    /// a grid of ⌊√(queries / ratio)⌋ rows (one more when that does not divide the queries) by queries / rows columns,
    /// resized to it with torch's bicubic interpolation (A = −0.75, align_corners false), read row by row, zero-padded or cut
    /// to <paramref name="queries"/>. For a scene whose sides are multiples of 8·2^level that grid is the attention's own.
    /// </summary>
    public float[] Downsample(int queries)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(queries);
        double ratio = (double)Width / Height;
        int rows = (int)Math.Sqrt(queries / ratio);
        rows += queries % rows != 0 ? 1 : 0;
        int columns = queries / rows;
        var resized = Bicubic(values, Height, Width, rows, columns);
        var result = new float[queries];
        Array.Copy(resized, result, Math.Min(resized.Length, queries));
        return result;
    }

    /// <summary>torch 1.13's upsample_bicubic2d on one channel (align_corners false, no antialias), in float32.</summary>
    private static float[] Bicubic(float[] input, int inHeight, int inWidth, int outHeight, int outWidth)
    {
        var (rowIndex, rowWeight) = Taps(inHeight, outHeight);
        var (columnIndex, columnWeight) = Taps(inWidth, outWidth);
        var output = new float[outHeight * outWidth];
        for (int y = 0; y < outHeight; y++)
            for (int x = 0; x < outWidth; x++)
            {
                float sum = 0;
                for (int i = 0; i < 4; i++)
                {
                    float row = 0;
                    for (int j = 0; j < 4; j++)
                        row += columnWeight[4 * x + j] * input[rowIndex[4 * y + i] * inWidth + columnIndex[4 * x + j]];
                    sum += rowWeight[4 * y + i] * row;
                }
                output[y * outWidth + x] = sum;
            }
        return output;
    }

    /// <summary>For each output position, the four input positions (clamped to the edge) and their cubic convolution weights.</summary>
    private static (int[] Index, float[] Weight) Taps(int inSize, int outSize)
    {
        const float A = -0.75f;
        float scale = (float)inSize / outSize;
        var index = new int[4 * outSize];
        var weight = new float[4 * outSize];
        for (int o = 0; o < outSize; o++)
        {
            float real = scale * (o + 0.5f) - 0.5f;
            int start = (int)MathF.Floor(real);
            float t = real - start;
            float Near(float x) => ((A + 2) * x - (A + 3)) * x * x + 1;
            float Far(float x) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
            float[] w = [Far(t + 1), Near(t), Near(1 - t), Far(2 - t)];
            for (int k = 0; k < 4; k++)
            {
                index[4 * o + k] = Math.Clamp(start - 1 + k, 0, inSize - 1);
                weight[4 * o + k] = w[k];
            }
        }
        return (index, weight);
    }
}
