using System.Buffers.Binary;
using System.Numerics;
using System.IO.Compression;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace Mnemosyne.Engine.Tests.Imaging;

/// <summary>Odd images made in code (no binary fixtures): encoded with ImageSharp where it can, crafted byte by byte where it cannot.</summary>
internal static class TestImages
{
    public static byte[] Encode<TPixel>(Image<TPixel> image, IImageEncoder encoder) where TPixel : unmanaged, IPixel<TPixel>
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    public static byte[] Png<TPixel>(Image<TPixel> image) where TPixel : unmanaged, IPixel<TPixel> =>
        Encode(image, new SixLabors.ImageSharp.Formats.Png.PngEncoder());

    /// <summary>An image whose pixel (x, y) is (40x + 1, 40y + 2, 7): every position tells where it came from.</summary>
    public static Image<Rgb24> Positional(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image[x, y] = new Rgb24((byte)(40 * x + 1), (byte)(40 * y + 2), 7);
        return image;
    }

    public static (byte R, byte G, byte B) Pixel(Mnemosyne.Engine.Imaging.RgbImage image, int x, int y)
    {
        int i = 3 * (y * image.Width + x);
        return (image.Rgb[i], image.Rgb[i + 1], image.Rgb[i + 2]);
    }

    /// <summary>A copy of a PNG whose IHDR declares another size (the CRC fixed, so only the size is wrong).</summary>
    public static byte[] WithPngSize(byte[] png, uint width, uint height)
    {
        var patched = (byte[])png.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(patched.AsSpan(16), width);
        BinaryPrimitives.WriteUInt32BigEndian(patched.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(patched.AsSpan(29), Crc32(patched.AsSpan(12, 17)));
        return patched;
    }

    /// <summary>A palette PNG (colour type 3) with a tRNS chunk, one byte per index, filter 0.</summary>
    public static byte[] PalettePng(int width, int height, byte[][] palette, byte[] alphas, byte[] indices)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8;
        header[9] = 3;
        WritePngChunk(png, "IHDR", header);
        WritePngChunk(png, "PLTE", palette.SelectMany(c => c).ToArray());
        WritePngChunk(png, "tRNS", alphas);
        using var scanlines = new MemoryStream();
        using (var zlib = new ZLibStream(scanlines, CompressionLevel.Optimal, leaveOpen: true))
            for (int y = 0; y < height; y++)
            {
                zlib.WriteByte(0);
                zlib.Write(indices, y * width, width);
            }
        WritePngChunk(png, "IDAT", scanlines.ToArray());
        WritePngChunk(png, "IEND", []);
        return png.ToArray();
    }

    public static void WritePngChunk(Stream stream, string type, byte[] data)
    {
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(chunk, data.Length);
        System.Text.Encoding.ASCII.GetBytes(type, chunk.AsSpan(4));
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
        stream.Write(chunk);
    }

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>
    /// An 8×8 baseline CMYK JPEG of one flat colour, as Photoshop writes them: an Adobe APP14 marker
    /// (transform 0) and inverted samples (255 = no ink). ImageSharp 2.1 cannot encode CMYK (it falls
    /// back to YCbCr), so the file is built here: each component is one DC-only block.
    /// </summary>
    public static byte[] CmykJpeg(byte c, byte m, byte y, byte k)
    {
        using var jpeg = new MemoryStream();
        void Segment(byte marker, byte[] payload)
        {
            jpeg.Write([0xFF, marker, (byte)((payload.Length + 2) >> 8), (byte)(payload.Length + 2)]);
            jpeg.Write(payload);
        }
        jpeg.Write([0xFF, 0xD8]);
        Segment(0xEE, [.. "Adobe"u8, 0, 100, 0, 0, 0, 0, 0]);
        Segment(0xDB, [0, .. Enumerable.Repeat((byte)8, 64)]);
        Segment(0xC0, [8, 0, 8, 0, 8, 4, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0]);
        // DC table: categories 0..11 all with 4-bit codes (code = category); AC table: only EOB, code "0".
        var dcCounts = new byte[16];
        dcCounts[3] = 12;
        var acCounts = new byte[16];
        acCounts[0] = 1;
        Segment(0xC4, [0x00, .. dcCounts, .. Enumerable.Range(0, 12).Select(i => (byte)i), 0x10, .. acCounts, 0x00]);
        Segment(0xDA, [4, 1, 0x00, 2, 0x00, 3, 0x00, 4, 0x00, 0, 63, 0]);

        var bits = new List<bool>();
        void Put(int value, int count)
        {
            for (int i = count - 1; i >= 0; i--) bits.Add(((value >> i) & 1) != 0);
        }
        foreach (var sample in new[] { c, m, y, k })
        {
            // A flat block's DC coefficient is 8·(v − 128); quantised by 8 it is v − 128 (the first block: no prediction).
            int dc = sample - 128;
            int category = dc == 0 ? 0 : 32 - BitOperations.LeadingZeroCount((uint)Math.Abs(dc));
            Put(category, 4);
            Put(dc >= 0 ? dc : dc + (1 << category) - 1, category);
            Put(0, 1);
        }
        while (bits.Count % 8 != 0) bits.Add(true);
        for (int i = 0; i < bits.Count; i += 8)
        {
            int value = 0;
            for (int b = 0; b < 8; b++) value = value << 1 | (bits[i + b] ? 1 : 0);
            jpeg.WriteByte((byte)value);
            if (value == 0xFF) jpeg.WriteByte(0);
        }
        jpeg.Write([0xFF, 0xD9]);
        return jpeg.ToArray();
    }

    /// <summary>
    /// An animated WebP (VP8X + ANIM + one ANMF per frame), each frame a lossless bitstream from
    /// ImageSharp's encoder; ImageSharp 2.1 cannot encode animations.
    /// </summary>
    public static byte[] AnimatedWebp(int canvasWidth, int canvasHeight, params (Image<Rgba32> Image, int X, int Y, bool Blend)[] frames)
    {
        using var body = new MemoryStream();
        var header = new byte[10];
        header[0] = 0x02 | 0x10;
        WriteUInt24(header.AsSpan(4), canvasWidth - 1);
        WriteUInt24(header.AsSpan(7), canvasHeight - 1);
        WriteRiffChunk(body, "VP8X", header);
        WriteRiffChunk(body, "ANIM", [0xFF, 0xFF, 0xFF, 0xFF, 0, 0]);
        foreach (var (image, x, y, blend) in frames)
        {
            var still = Encode(image, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless });
            var frame = new byte[16];
            WriteUInt24(frame, x / 2);
            WriteUInt24(frame.AsSpan(3), y / 2);
            WriteUInt24(frame.AsSpan(6), image.Width - 1);
            WriteUInt24(frame.AsSpan(9), image.Height - 1);
            WriteUInt24(frame.AsSpan(12), 100);
            frame[15] = (byte)(blend ? 0 : 0x02);
            // The still is RIFF + WEBP + one VP8L chunk; the chunk moves into the frame as it is.
            WriteRiffChunk(body, "ANMF", [.. frame, .. still.AsSpan(12)]);
        }
        using var file = new MemoryStream();
        file.Write("RIFF"u8);
        file.Write(BitConverter.GetBytes((uint)(body.Length + 4)));
        file.Write("WEBP"u8);
        body.WriteTo(file);
        return file.ToArray();
    }

    private static void WriteRiffChunk(Stream stream, string type, byte[] payload)
    {
        stream.Write(System.Text.Encoding.ASCII.GetBytes(type));
        stream.Write(BitConverter.GetBytes((uint)payload.Length));
        stream.Write(payload);
        if (payload.Length % 2 == 1) stream.WriteByte(0);
    }

    private static void WriteUInt24(Span<byte> bytes, int value)
    {
        bytes[0] = (byte)value;
        bytes[1] = (byte)(value >> 8);
        bytes[2] = (byte)(value >> 16);
    }
}
