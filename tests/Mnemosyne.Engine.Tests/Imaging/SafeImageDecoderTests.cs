using System.Buffers.Binary;
using Mnemosyne.Engine.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace Mnemosyne.Engine.Tests.Imaging;

/// <summary>Expected pixels come from Pillow 9.4 (convert('RGB'), ImageOps.exif_transpose) on the same bytes.</summary>
public class SafeImageDecoderTests
{
    private static readonly SafeImageDecoder Decoder = SafeImageDecoder.Default;

    private static ImageDecodeException Refused(byte[] data, ImageDecodeFailure failure, SafeImageDecoder? decoder = null)
    {
        var e = Assert.Throws<ImageDecodeException>(() => (decoder ?? Decoder).Decode(data, "ref.img"));
        Assert.Equal(failure, e.Failure);
        Assert.Equal("ref.img", e.FilePath);
        Assert.StartsWith("ref.img: ", e.Message);
        return e;
    }

    [Fact]
    public void DecodesAOnePixelPng()
    {
        using var image = new Image<Rgb24>(1, 1, new Rgb24(9, 8, 7));
        var decoded = Decoder.Decode(TestImages.Png(image), "one.png");
        Assert.Equal((1, 1), (decoded.Width, decoded.Height));
        Assert.Equal([9, 8, 7], decoded.Rgb);
    }

    [Fact]
    public void DropsAlphaWithoutCompositing()
    {
        using var image = new Image<Rgba32>(3, 1);
        image[0, 0] = new Rgba32(200, 100, 50, 0);
        image[1, 0] = new Rgba32(60, 70, 80, 128);
        image[2, 0] = new Rgba32(1, 2, 3, 255);
        var decoded = Decoder.Decode(TestImages.Png(image), "alpha.png");
        Assert.Equal([200, 100, 50, 60, 70, 80, 1, 2, 3], decoded.Rgb);
    }

    [Fact]
    public void KeepsTheHighByteOfSixteenBitSamplesAsPillowDoes()
    {
        using var image = new Image<Rgb48>(2, 1);
        image[0, 0] = new Rgb48(0x12FF, 0x8080, 0xFFFF);
        image[1, 0] = new Rgb48(0x1280, 0x7F80, 0x00FF);
        var png = TestImages.Encode(image, new PngEncoder { BitDepth = PngBitDepth.Bit16, ColorType = PngColorType.Rgb });
        // Rounding (ImageSharp's own conversion) would give 19 for 0x12FF; Pillow truncates to 18.
        Assert.Equal([18, 128, 255, 18, 127, 0], Decoder.Decode(png, "deep.png").Rgb);
    }

    [Fact]
    public void GivesPaletteColoursWhateverTheirTransparency()
    {
        var png = TestImages.PalettePng(3, 1, [[10, 20, 30], [200, 100, 0], [1, 2, 3]], [0, 128, 255], [0, 1, 2]);
        Assert.Equal([10, 20, 30, 200, 100, 0, 1, 2, 3], Decoder.Decode(png, "palette.png").Rgb);
    }

    [Theory]
    [InlineData(200, 100, 50, 255, 200, 100, 50)]
    [InlineData(200, 100, 50, 128, 100, 50, 25)]
    [InlineData(0, 255, 17, 3, 0, 3, 0)]
    public void ConvertsAdobeCmykJpegAsPillowDoes(byte c, byte m, byte y, byte k, byte r, byte g, byte b)
    {
        var decoded = Decoder.Decode(TestImages.CmykJpeg(c, m, y, k), "cmyk.jpg");
        Assert.Equal((8, 8), (decoded.Width, decoded.Height));
        Assert.All(Enumerable.Range(0, 64), i => Assert.Equal((r, g, b), TestImages.Pixel(decoded, i % 8, i / 8)));
    }

    /// <summary>Source coordinates of each output pixel, row by row, for a 3×2 image with each EXIF orientation.</summary>
    [Theory]
    [InlineData(1, 3, 2, "0,0 1,0 2,0 0,1 1,1 2,1")]
    [InlineData(2, 3, 2, "2,0 1,0 0,0 2,1 1,1 0,1")]
    [InlineData(3, 3, 2, "2,1 1,1 0,1 2,0 1,0 0,0")]
    [InlineData(4, 3, 2, "0,1 1,1 2,1 0,0 1,0 2,0")]
    [InlineData(5, 2, 3, "0,0 0,1 1,0 1,1 2,0 2,1")]
    [InlineData(6, 2, 3, "0,1 0,0 1,1 1,0 2,1 2,0")]
    [InlineData(7, 2, 3, "2,1 2,0 1,1 1,0 0,1 0,0")]
    [InlineData(8, 2, 3, "2,0 2,1 1,0 1,1 0,0 0,1")]
    public void AppliesTheExifOrientation(ushort orientation, int width, int height, string sources)
    {
        using var image = TestImages.Positional(3, 2);
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);

        var decoded = Decoder.Decode(TestImages.Png(image), "turned.png");

        Assert.Equal((width, height), (decoded.Width, decoded.Height));
        var expected = sources.Split(' ').Select(s => s.Split(',').Select(int.Parse).ToArray())
            .SelectMany(p => new[] { (byte)(40 * p[0] + 1), (byte)(40 * p[1] + 2), (byte)7 });
        Assert.Equal(expected, decoded.Rgb);
    }

    [Fact]
    public void TurnsAnExifRotatedJpeg()
    {
        // Left half red, right half blue; orientation 6 (rotate 90° clockwise) puts the left half on top.
        using var image = new Image<Rgb24>(32, 16);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 32; x++)
                image[x, y] = x < 16 ? new Rgb24(255, 0, 0) : new Rgb24(0, 0, 255);
        image.Metadata.ExifProfile = new ExifProfile();
        image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);

        var decoded = Decoder.Decode(TestImages.Encode(image, new JpegEncoder { Quality = 95 }), "photo.jpg");

        Assert.Equal((16, 32), (decoded.Width, decoded.Height));
        var top = TestImages.Pixel(decoded, 8, 4);
        var bottom = TestImages.Pixel(decoded, 8, 28);
        Assert.True(top.R > 200 && top.B < 50, $"top {top}");
        Assert.True(bottom.B > 200 && bottom.R < 50, $"bottom {bottom}");
    }

    [Fact]
    public void TakesTheFirstFrameOfAnAnimatedGif()
    {
        using var gif = new Image<Rgba32>(8, 8, new Rgba32(255, 0, 0));
        using var second = new Image<Rgba32>(8, 8, new Rgba32(0, 0, 255));
        gif.Frames.AddFrame(second.Frames.RootFrame);
        var decoded = Decoder.Decode(TestImages.Encode(gif, new GifEncoder()), "anim.gif");
        Assert.Equal((8, 8), (decoded.Width, decoded.Height));
        Assert.All(Enumerable.Range(0, 64), i => Assert.Equal((255, 0, 0), TestImages.Pixel(decoded, i % 8, i / 8)));
    }

    [Fact]
    public void TakesTheFirstFrameOfAnAnimatedWebpAsPillowDoes()
    {
        // A 4×3 first frame at (2, 2) on an 8×6 canvas, with a transparent and a half-transparent pixel.
        using var first = new Image<Rgba32>(4, 3, new Rgba32(250, 10, 20, 255));
        first[1, 1] = new Rgba32(30, 40, 50, 0);
        first[2, 1] = new Rgba32(60, 70, 80, 128);
        using var second = new Image<Rgba32>(8, 6, new Rgba32(0, 0, 255, 255));
        var webp = TestImages.AnimatedWebp(8, 6, (first, 2, 2, true), (second, 0, 0, true));

        var decoded = Decoder.Decode(webp, "anim.webp");

        Assert.Equal((8, 6), (decoded.Width, decoded.Height));
        for (int y = 0; y < 6; y++)
        {
            for (int x = 0; x < 8; x++)
            {
                var expected = (x, y) switch
                {
                    (3, 3) => (30, 40, 50),
                    (4, 3) => (60, 70, 80),
                    ( >= 2 and < 6, >= 2 and < 5) => (250, 10, 20),
                    _ => (0, 0, 0),
                };
                Assert.Equal<(byte, byte, byte)>(((byte)expected.Item1, (byte)expected.Item2, (byte)expected.Item3), TestImages.Pixel(decoded, x, y));
            }
        }
    }

    [Fact]
    public void GoesByContentNotExtension()
    {
        using var folder = new TempFolder();
        using var image = new Image<Rgb24>(2, 2, new Rgb24(5, 6, 7));
        File.WriteAllBytes(folder.File("really-a-png.jpg"), TestImages.Png(image));
        Assert.Equal(Enumerable.Repeat(new byte[] { 5, 6, 7 }, 4).SelectMany(p => p), Decoder.Decode(folder.File("really-a-png.jpg")).Rgb);
    }

    [Fact]
    public void RefusesAnEmptyFileNamingIt()
    {
        using var folder = new TempFolder();
        var path = folder.File("empty.png");
        File.WriteAllBytes(path, []);
        var e = Assert.Throws<ImageDecodeException>(() => Decoder.Decode(path));
        Assert.Equal(ImageDecodeFailure.Empty, e.Failure);
        Assert.Equal(path, e.FilePath);
        Assert.Contains(path, e.Message);
        Assert.Contains("empty", e.Message);
    }

    [Fact]
    public void RefusesAMissingFile()
    {
        using var folder = new TempFolder();
        var e = Assert.Throws<FileNotFoundException>(() => Decoder.Decode(folder.File("nowhere.png")));
        Assert.Contains("nowhere.png", e.Message);
    }

    [Fact]
    public void RefusesWhatIsNotAnImage()
    {
        var e = Refused("these are my notes, not a picture\n"u8.ToArray(), ImageDecodeFailure.NotAnImage);
        Assert.Contains("convert it to PNG or JPEG", e.Message);
    }

    [Fact]
    public void RefusesATruncatedPng()
    {
        var png = TestImages.Png(TestImages.Positional(64, 64));
        Refused(png[..(png.Length / 2)], ImageDecodeFailure.Truncated);
        Refused(png[..^12], ImageDecodeFailure.Truncated);
    }

    [Fact]
    public void RefusesATruncatedJpegThatImageSharpWouldFillWithBlack()
    {
        using var image = TestImages.Positional(64, 64);
        var jpeg = TestImages.Encode(image, new JpegEncoder());
        var e = Refused(jpeg[..(jpeg.Length * 6 / 10)], ImageDecodeFailure.Truncated);
        Assert.Contains("complete copy", e.Message);
        Refused(jpeg[..^2], ImageDecodeFailure.Truncated);
    }

    [Fact]
    public void AcceptsBytesAfterTheEndOfAJpeg()
    {
        using var image = new Image<Rgb24>(8, 8, new Rgb24(0, 128, 0));
        var jpeg = TestImages.Encode(image, new JpegEncoder());
        var decoded = Decoder.Decode([.. jpeg, .. "trailing junk"u8], "tail.jpg");
        Assert.Equal((8, 8), (decoded.Width, decoded.Height));
    }

    [Fact]
    public void RefusesAPngBombFromItsHeaderAlone()
    {
        using var image = new Image<Rgb24>(1, 1);
        var bomb = TestImages.WithPngSize(TestImages.Png(image), 100000, 100000);
        var e = Refused(bomb, ImageDecodeFailure.TooLarge);
        Assert.Contains("100000×100000", e.Message);
    }

    [Theory]
    [InlineData(20000, 100)]
    [InlineData(10000, 8000)]
    public void RefusesAJpegDeclaringTooManyPixels(int width, int height)
    {
        using var image = new Image<Rgb24>(8, 8);
        var jpeg = TestImages.Encode(image, new JpegEncoder());
        int frame = jpeg.AsSpan().IndexOf([(byte)0xFF, (byte)0xC0]);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(frame + 5), (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(frame + 7), (ushort)width);
        Refused(jpeg, ImageDecodeFailure.TooLarge);
    }

    [Fact]
    public void AppliesConfiguredLimits()
    {
        var strict = new SafeImageDecoder(new ImageDecodeLimits { MaxSide = 8, MaxPixels = 40, MaxFileBytes = 4096 });
        using var wide = new Image<Rgb24>(9, 1);
        using var many = new Image<Rgb24>(7, 6);
        using var fits = new Image<Rgb24>(8, 5);
        Refused(TestImages.Png(wide), ImageDecodeFailure.TooLarge, strict);
        Refused(TestImages.Png(many), ImageDecodeFailure.TooLarge, strict);
        Assert.Equal(8, strict.Decode(TestImages.Png(fits), "fits.png").Width);
        Refused(new byte[4097], ImageDecodeFailure.TooLarge, strict);
    }

    [Fact]
    public void RefusesLimitsThatAreNotPositive()
    {
        Assert.Throws<ArgumentException>(() => new SafeImageDecoder(new ImageDecodeLimits { MaxPixels = 0 }));
    }

    [Fact]
    public void RefusesDamagedPixelData()
    {
        // A well-formed chunk sequence whose IDAT is not zlib data.
        using var png = new MemoryStream();
        png.Write(TestImages.Png(new Image<Rgb24>(4, 4)).AsSpan(0, 33));
        TestImages.WritePngChunk(png, "IDAT", "definitely not deflate"u8.ToArray());
        TestImages.WritePngChunk(png, "IEND", []);
        var e = Refused(png.ToArray(), ImageDecodeFailure.Corrupt);
        Assert.Contains("re-save it", e.Message);
    }

    [Fact]
    public void IsAnIOExceptionForCallersThatCatchThose()
    {
        Assert.IsAssignableFrom<IOException>(Refused([], ImageDecodeFailure.Empty));
    }

    public static TheoryData<int, int, PngColorType, PngBitDepth, bool> PngLayouts()
    {
        var layouts = new TheoryData<int, int, PngColorType, PngBitDepth, bool>();
        foreach (var (width, height) in new[] { (5, 3), (13, 9), (9, 2) })
            foreach (var (colorType, depth) in new[]
                     {
                         (PngColorType.Grayscale, PngBitDepth.Bit1), (PngColorType.Palette, PngBitDepth.Bit4),
                         (PngColorType.Rgb, PngBitDepth.Bit16), (PngColorType.RgbWithAlpha, PngBitDepth.Bit8),
                         (PngColorType.GrayscaleWithAlpha, PngBitDepth.Bit8),
                     })
                foreach (var interlaced in new[] { false, true })
                    layouts.Add(width, height, colorType, depth, interlaced);
        return layouts;
    }

    /// <summary>The pixel-data length check counts every layout's rows (Adam7 passes, sub-byte pixels) as the decoder does.</summary>
    [Theory]
    [MemberData(nameof(PngLayouts))]
    public void TakesCompletePngsOfEveryLayout(int width, int height, PngColorType colorType, PngBitDepth depth, bool interlaced)
    {
        using var image = TestImages.Positional(width, height);
        var png = TestImages.Encode(image, new PngEncoder
        {
            ColorType = colorType, BitDepth = depth,
            InterlaceMethod = interlaced ? PngInterlaceMode.Adam7 : PngInterlaceMode.None,
        });
        var decoded = Decoder.Decode(png, "layout.png");
        Assert.Equal((width, height), (decoded.Width, decoded.Height));
    }

    [Fact]
    public void RefusesPixelDataOneRowShortAsTruncated()
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, 8);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), 8);
        header[8] = 8;
        header[9] = 2;
        TestImages.WritePngChunk(png, "IHDR", header);
        using var scanlines = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(scanlines, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(new byte[7 * (1 + 24)]);
        TestImages.WritePngChunk(png, "IDAT", scanlines.ToArray());
        TestImages.WritePngChunk(png, "IEND", []);
        var e = Refused(png.ToArray(), ImageDecodeFailure.Truncated);
        Assert.Contains("inflates to 175 bytes, fewer than the 200", e.Message);
    }
}
