using Mnemosyne.Engine.Imaging;

namespace Mnemosyne.Tools;

/// <summary>
/// Draws "Kira", the sample character shipped with the module: a flat, front-facing portrait
/// (teal hair, amber eyes, red jacket) made of simple shapes, so the repository owns every pixel.
/// </summary>
internal static class SampleCharacter
{
    private readonly record struct Colour(float R, float G, float B);

    private static readonly Colour Background = new(0.93f, 0.90f, 0.84f);
    private static readonly Colour Skin = new(0.96f, 0.80f, 0.69f);
    private static readonly Colour Hair = new(0.10f, 0.55f, 0.58f);
    private static readonly Colour Jacket = new(0.78f, 0.16f, 0.18f);
    private static readonly Colour Collar = new(0.15f, 0.15f, 0.20f);
    private static readonly Colour EyeWhite = new(0.98f, 0.98f, 0.98f);
    private static readonly Colour Iris = new(0.85f, 0.55f, 0.10f);
    private static readonly Colour Pupil = new(0.08f, 0.06f, 0.05f);
    private static readonly Colour Mouth = new(0.72f, 0.30f, 0.32f);

    public static RgbImage Draw(int size)
    {
        var rgb = new byte[size * size * 3];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                // Coordinates in [-1, 1], y down; the colour is the top-most shape covering the pixel.
                float u = (x + 0.5f) / size * 2 - 1, v = (y + 0.5f) / size * 2 - 1;
                var c = Background;
                if (Ellipse(u, v + 0.05f, 0.62f, 0.70f) && v > -0.1f) c = Hair; // hair behind the head
                if (Ellipse(u, v - 1.05f, 0.85f, 0.55f)) c = Jacket;
                if (Ellipse(u, v - 0.55f, 0.14f, 0.12f) || (Math.Abs(u) < 0.13f && v > 0.35f && v < 0.62f)) c = Skin; // neck
                if (Triangle(u, v, 0.55f, 0.62f)) c = Collar;
                if (Ellipse(u, v - 0.05f, 0.42f, 0.52f)) c = Skin; // face
                if (Ellipse(u, v + 0.38f, 0.50f, 0.30f) && v < -0.12f) c = Hair; // fringe
                foreach (var side in new[] { -1f, 1f })
                {
                    float ex = u - side * 0.17f, ey = v + 0.02f;
                    if (Ellipse(ex, ey, 0.10f, 0.065f)) c = EyeWhite;
                    if (Ellipse(ex, ey, 0.05f, 0.06f)) c = Iris;
                    if (Ellipse(ex, ey, 0.022f, 0.03f)) c = Pupil;
                }
                if (Ellipse(u, v - 0.30f, 0.12f, 0.035f) && v > 0.29f) c = Mouth;
                int i = (y * size + x) * 3;
                rgb[i] = ToByte(c.R);
                rgb[i + 1] = ToByte(c.G);
                rgb[i + 2] = ToByte(c.B);
            }
        return new RgbImage(size, size, rgb);
    }

    private static bool Ellipse(float x, float y, float rx, float ry) => x * x / (rx * rx) + y * y / (ry * ry) <= 1;

    /// <summary>A V-shaped collar opening downwards from the neck.</summary>
    private static bool Triangle(float u, float v, float top, float depth) => v > top && v < top + depth && Math.Abs(u) < (v - top) * 0.6f + 0.05f && Math.Abs(u) > (v - top) * 0.45f;

    private static byte ToByte(float value) => (byte)Math.Clamp(MathF.Round(value * 255), 0, 255);
}
