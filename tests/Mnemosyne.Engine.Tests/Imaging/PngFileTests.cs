using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Mnemosyne.Engine.Imaging;

namespace Mnemosyne.Engine.Tests.Imaging;

public class PngFileTests
{
    private const string Settings =
        "a lighthouse at dusk, oil painting\nNegative prompt: blurry, lowres\n" +
        "Steps: 30, Sampler: Euler, CFG scale: 7, Seed: 1234, Size: 1024x1024, Model: sdxl-base-1.0, IP-Adapter weight: 0.6";

    private static RgbImage Gradient(int width = 5, int height = 3)
    {
        var rgb = new byte[3 * width * height];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 7);
        return new RgbImage(width, height, rgb);
    }

    /// <summary>The chunk types of a PNG, in order.</summary>
    private static List<string> ChunkTypes(byte[] png)
    {
        var types = new List<string>();
        for (int position = 8; position < png.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(position));
            types.Add(Encoding.ASCII.GetString(png, position + 4, 4));
            position += 12 + length;
        }
        return types;
    }

    [Fact]
    public void WritesTheSettingsAsAParametersTextChunkAndReadsThemBack()
    {
        var png = PngFile.Encode(Gradient(), [PngTextEntry.Parameters(Settings)]);

        Assert.True(png.AsSpan().IndexOf([.. "tEXtparameters\0"u8, .. Encoding.Latin1.GetBytes(Settings)]) > 0);
        var text = Assert.Single(PngFile.ReadText(new MemoryStream(png), "memory"));
        Assert.Equal(("parameters", Settings), (text.Keyword, text.Text));
    }

    [Fact]
    public void KeepsThePixels()
    {
        var image = Gradient(7, 4);
        var decoded = SafeImageDecoder.Default.Decode(PngFile.Encode(image, [PngTextEntry.Parameters(Settings)]), "out.png");
        Assert.Equal((7, 4), (decoded.Width, decoded.Height));
        Assert.Equal(image.Rgb, decoded.Rgb);
    }

    [Fact]
    public void WritesTextBeyondLatin1AsUtf8InternationalText()
    {
        const string prompt = "a cat 猫 under cherry blossoms — «très» ✓";
        var png = PngFile.Encode(Gradient(), [PngTextEntry.Parameters(prompt)]);

        Assert.Contains("iTXt", ChunkTypes(png));
        Assert.True(png.AsSpan().IndexOf(Encoding.UTF8.GetBytes(prompt)) > 0);
        Assert.Equal(prompt, Assert.Single(PngFile.ReadText(new MemoryStream(png), "memory")).Text);
    }

    [Fact]
    public void KeepsSeveralEntriesInOrderAndLongTextUncompressed()
    {
        var longText = string.Concat(Enumerable.Repeat("masterpiece, ", 400));
        PngTextEntry[] entries = [new("Software", "Mnemosyne"), PngTextEntry.Parameters(longText), new("Seed", "42")];

        var png = PngFile.Encode(Gradient(), entries);

        Assert.Equal(["IHDR", "tEXt", "tEXt", "tEXt", "IDAT", "IEND"], ChunkTypes(png));
        Assert.Equal(entries, PngFile.ReadText(new MemoryStream(png), "memory"));
    }

    [Fact]
    public void SamePixelsAndTextGiveTheSameBytes()
    {
        var first = PngFile.Encode(Gradient(), [PngTextEntry.Parameters(Settings)]);
        var second = PngFile.Encode(Gradient(), [PngTextEntry.Parameters(Settings)]);
        var other = PngFile.Encode(Gradient(), [PngTextEntry.Parameters(Settings + " ")]);

        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
        // Nothing that varies with the time or the machine: no tIME, pHYs, gAMA or eXIf chunk.
        Assert.Equal(["IHDR", "tEXt", "IDAT", "IEND"], ChunkTypes(first));
    }

    [Fact]
    public void ReadsCompressedTextWrittenByOtherTools()
    {
        static byte[] Deflate(byte[] data)
        {
            using var output = new MemoryStream();
            using (var zlib = new ZLibStream(output, CompressionLevel.Optimal, leaveOpen: true)) zlib.Write(data);
            return output.ToArray();
        }
        var plain = PngFile.Encode(Gradient());
        using var png = new MemoryStream();
        png.Write(plain.AsSpan(0, 33));
        TestImages.WritePngChunk(png, "zTXt", [.. "parameters\0\0"u8, .. Deflate(Encoding.Latin1.GetBytes(Settings))]);
        TestImages.WritePngChunk(png, "iTXt", [.. "Comment\0\u0001\0en\0Kommentar\0"u8, .. Deflate(Encoding.UTF8.GetBytes("ünïcödé ✓"))]);
        png.Write(plain.AsSpan(33));

        var entries = PngFile.ReadText(new MemoryStream(png.ToArray()), "memory");

        Assert.Equal([new("parameters", Settings), new PngTextEntry("Comment", "ünïcödé ✓")], entries);
    }

    [Fact]
    public void RefusesACompressedTextBomb()
    {
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(new byte[17 * 1024 * 1024]);
        var plain = PngFile.Encode(Gradient());
        using var png = new MemoryStream();
        png.Write(plain.AsSpan(0, 33));
        TestImages.WritePngChunk(png, "zTXt", [.. "parameters\0\0"u8, .. compressed.ToArray()]);
        png.Write(plain.AsSpan(33));

        var e = Assert.Throws<InvalidDataException>(() => PngFile.ReadText(new MemoryStream(png.ToArray()), "bomb.png"));
        Assert.Contains("bomb.png", e.Message);
    }

    [Fact]
    public void RefusesToReadTextFromWhatIsNotACompletePng()
    {
        Assert.Throws<InvalidDataException>(() => PngFile.ReadText(new MemoryStream("GIF89a"u8.ToArray()), "x.gif"));
        var png = PngFile.Encode(Gradient(), [PngTextEntry.Parameters(Settings)]);
        var e = Assert.Throws<InvalidDataException>(() => PngFile.ReadText(new MemoryStream(png[..^20]), "cut.png"));
        Assert.Contains("cut.png", e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" leading")]
    [InlineData("trailing ")]
    [InlineData("double  space")]
    [InlineData("tab\there")]
    [InlineData("猫")]
    [InlineData("this keyword is eighty characters long, one more than PNG allows for a keyword!!")]
    public void RefusesKeywordsPngDoesNotAllow(string keyword)
    {
        var e = Assert.Throws<ArgumentException>(() => new PngTextEntry(keyword, "text"));
        Assert.Contains("1 to 79 printable Latin-1", e.Message);
    }

    [Fact]
    public void RefusesTextWithANul()
    {
        Assert.Throws<ArgumentException>(() => PngTextEntry.Parameters("a\0b"));
    }

    [Fact]
    public void SavesAtomicallyAndOnlyOverwritesWhenAsked()
    {
        using var folder = new TempFolder();
        var path = folder.File("scene.png");

        PngFile.Save(path, Gradient(), [PngTextEntry.Parameters(Settings)]);
        Assert.Equal(Settings, Assert.Single(PngFile.ReadText(path)).Text);

        var e = Assert.Throws<IOException>(() => PngFile.Save(path, Gradient(), [PngTextEntry.Parameters("other")]));
        Assert.Contains("already exists", e.Message);
        Assert.Equal(Settings, Assert.Single(PngFile.ReadText(path)).Text);

        PngFile.Save(path, Gradient(), [PngTextEntry.Parameters("other")], overwrite: true);
        Assert.Equal("other", Assert.Single(PngFile.ReadText(path)).Text);
        Assert.Equal(["scene.png"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
    }
}
