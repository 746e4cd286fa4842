using Newtonsoft.Json;

namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// An 8-bit RGB image, rows top to bottom, pixels interleaved as R, G, B. The engine's own image
/// type, so that nothing past decoding depends on ImageSharp.
/// </summary>
public sealed record RgbImage
{
    public RgbImage(int width, int height, byte[] rgb)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentNullException.ThrowIfNull(rgb);
        if (rgb.LongLength != 3L * width * height)
            throw new ArgumentException($"An RGB image of {width}×{height} needs {3L * width * height} bytes, not {rgb.LongLength}.", nameof(rgb));
        Width = width;
        Height = height;
        Rgb = rgb;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Width × Height × 3 bytes; left out of JSON (PowerShell's ConvertTo-Json honours Newtonsoft's attribute), where each would be a number.</summary>
    [JsonIgnore]
    public byte[] Rgb { get; }
}
