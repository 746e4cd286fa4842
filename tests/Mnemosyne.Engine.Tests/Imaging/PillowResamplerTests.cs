using System.Security.Cryptography;
using Mnemosyne.Engine.Imaging;

namespace Mnemosyne.Engine.Tests.Imaging;

public class PillowResamplerTests
{
    /// <summary>Noise-like bytes (Knuth's multiplicative hash), the same in the Python that made the expected hashes.</summary>
    private static RgbImage Pattern(int width, int height)
    {
        var rgb = new byte[3 * width * height];
        for (uint i = 0; i < rgb.Length; i++) rgb[i] = (byte)(unchecked(i * 2654435761u) >> 24);
        return new RgbImage(width, height, rgb);
    }

    // SHA-256 of the RGB bytes from Pillow 9.4.0: Image.frombytes('RGB', size, pattern).resize(out, Image.BICUBIC).tobytes().
    // Noise overshoots, so the clipping after each pass is exercised; the cases cover shrinking (widened kernel),
    // enlarging, one axis only (the other pass skipped) and 1-pixel extremes.
    [Theory]
    [InlineData(37, 23, 10, 7, "127f96092aa74f3120981cfc5de39afab119ad2908d9a75a2a4b555c569e940e")]
    [InlineData(37, 23, 37, 50, "d450a3041406312b613a77ae93c5faff9f03ed5994dd1056f05e3a9455815fd2")]
    [InlineData(37, 23, 80, 23, "fe1d0a9088683da0498861d49c4f70be470ef693330908063f71a0801d871eb8")]
    [InlineData(300, 200, 336, 224, "b07354f20cf25be61f1fccf1ce3269f3b9e7fb1e91b2655c0fe3b4960326e1c9")]
    [InlineData(640, 480, 299, 224, "a00b78b29f95a493268e4b20cf5d9cd529c0cf4e7197d5d86af10fb2e1a70c22")]
    [InlineData(5, 3, 224, 224, "b12df1c03e533f3d4196a0f44b4df48bd4e119f362c387e0e31d3bd20b0ef908")]
    [InlineData(1, 1, 224, 224, "45a90ae412d4cbef0f87a6242145b64697d494d30d4b251c9cb05fc0633e43c3")]
    [InlineData(13, 17, 1, 1, "5284ca4f0ff3cb1ad98c575a952f18a79f137aba7625a5ce30ce759198b1d58e")]
    [InlineData(401, 97, 224, 54, "57b01f019750f06e430a280348bc60e0dbffb259b48c0d4b099ce8862e764d1f")]
    [InlineData(97, 401, 3, 1000, "5e949acd9ba5262581719104f27b645d8ff6617e4ca309a8102f24e5b9e696e7")]
    public void MatchesPillowBicubicToTheByte(int width, int height, int outWidth, int outHeight, string expectedSha256)
    {
        var resized = PillowResampler.ResizeBicubic(Pattern(width, height), outWidth, outHeight);

        Assert.Equal((outWidth, outHeight), (resized.Width, resized.Height));
        Assert.Equal(expectedSha256, Convert.ToHexStringLower(SHA256.HashData(resized.Rgb)));
    }

    [Theory]
    [InlineData(300, 200, 336, 224, 56, 0)]
    [InlineData(300, 7, 9600, 224, 4688, 0)]
    [InlineData(37, 23, 37, 50, 5, 13)]
    [InlineData(37, 23, 80, 23, 11, 3)]
    [InlineData(640, 480, 299, 224, 40, 17)]
    [InlineData(12, 12, 12, 12, 2, 3)]
    public void AWindowIsTheSameBytesAsTheResizeCropped(int width, int height, int outWidth, int outHeight, int left, int top)
    {
        var image = Pattern(width, height);
        int windowWidth = Math.Min(224, outWidth - left), windowHeight = Math.Min(224, outHeight - top) - 1;

        var full = PillowResampler.ResizeBicubic(image, outWidth, outHeight);
        var window = PillowResampler.ResizeBicubic(image, outWidth, outHeight, left, top, windowWidth, windowHeight);

        Assert.Equal((windowWidth, windowHeight), (window.Width, window.Height));
        for (int y = 0; y < windowHeight; y++)
            Assert.Equal(full.Rgb.AsSpan(3 * ((top + y) * outWidth + left), 3 * windowWidth).ToArray(),
                window.Rgb.AsSpan(3 * y * windowWidth, 3 * windowWidth).ToArray());
    }

    [Fact]
    public void RefusesAWindowOutsideTheImage()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => PillowResampler.ResizeBicubic(Pattern(4, 4), 10, 10, 5, 0, 6, 2));
        Assert.Contains("not inside the 10×10", e.Message);
    }

    [Fact]
    public void SameSizeGivesAnEqualCopy()
    {
        var image = Pattern(9, 4);
        var resized = PillowResampler.ResizeBicubic(image, 9, 4);
        Assert.Equal(image.Rgb, resized.Rgb);
        Assert.NotSame(image.Rgb, resized.Rgb);
    }

    [Fact]
    public void KeepsAUniformImageUniform()
    {
        var image = new RgbImage(7, 5, Enumerable.Repeat((byte)255, 3 * 7 * 5).ToArray());
        Assert.All(PillowResampler.ResizeBicubic(image, 31, 2).Rgb, b => Assert.Equal(255, b));
    }

    [Fact]
    public void RefusesAnEmptyTargetSize()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PillowResampler.ResizeBicubic(Pattern(2, 2), 0, 5));
    }
}
