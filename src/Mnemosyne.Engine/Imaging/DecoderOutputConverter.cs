using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// The latent decoder's output to 8-bit pixels, as diffusers' image processor does it:
/// clamp(x/2 + 0.5, 0, 1) in float, × 255, round half to even, to byte.
/// </summary>
public static class DecoderOutputConverter
{
    /// <param name="output">Channels-first RGB in [−1, 1]: shape [1, 3, H, W] or [3, H, W].</param>
    /// <exception cref="ArgumentException">The shape is not one RGB image, or a value is NaN.</exception>
    public static RgbImage ToRgbImage(FloatTensor output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var shape = output.Shape;
        bool batched = shape.Length == 4 && shape[0] == 1;
        if (!(batched || shape.Length == 3) || shape[^3] != 3)
            throw new ArgumentException($"The decoder output must be one RGB image, [1, 3, H, W] or [3, H, W], not [{string.Join(", ", shape)}].", nameof(output));
        int height = shape[^2], width = shape[^1], plane = height * width;

        var rgb = new byte[3 * plane];
        var data = output.Data;
        for (int c = 0; c < 3; c++)
        {
            for (int i = 0; i < plane; i++)
            {
                float x = data[c * plane + i];
                if (float.IsNaN(x))
                    throw new ArgumentException($"The decoder output holds NaN at channel {c}, pixel ({i % width}, {i / width}); the decoding went wrong (float16 overflow?), so there is no image to save.", nameof(output));
                rgb[3 * i + c] = ToByte(x / 2 + 0.5f);
            }
        }
        return new RgbImage(width, height, rgb);
    }

    /// <summary>One value in [0, 1] (clamped) to a byte: × 255 in float, then NumPy's round half to even.</summary>
    internal static byte ToByte(float unit) => (byte)MathF.Round(Math.Clamp(unit, 0f, 1f) * 255f, MidpointRounding.ToEven);
}
