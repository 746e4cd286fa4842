using System.Buffers.Binary;
using System.IO.Compression;

namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// Checks on a PNG's chunks that ImageSharp 2.1 does not make: compressed metadata (zTXt, iTXt,
/// iCCP) is inflated without bound there, so an 8×8 file could inflate a gigabyte of text; it is
/// measured here first with Pillow's caps. And pixel data that inflates short is decoded as zero
/// rows there; here it is refused, as Pillow does. Runs after <see cref="ContainerChecks.PngReachesEnd"/>,
/// so the chunk list is known to be whole.
/// </summary>
internal static class PngChunks
{
    /// <summary>Most a single compressed text or ICC chunk may inflate to (Pillow's MAX_TEXT_CHUNK).</summary>
    public const int MaxInflatedChunkBytes = 1024 * 1024;

    /// <summary>Most all compressed metadata together may inflate to (Pillow's MAX_TEXT_MEMORY).</summary>
    public const long MaxInflatedMetadataBytes = 64L * 1024 * 1024;

    /// <summary>The compressed metadata chunk that inflates past a cap, as "zTXt chunk inflates to over 1048576 bytes", or null.</summary>
    public static string? OversizedMetadata(ReadOnlySpan<byte> data)
    {
        long total = 0;
        foreach (var (type, offset, length) in Chunks(data))
        {
            var body = data.Slice(offset, length);
            int compressedAt = type switch
            {
                "zTXt" or "iCCP" => CompressedStart(body, flagged: false),
                "iTXt" => CompressedStart(body, flagged: true),
                _ => -1,
            };
            if (compressedAt < 0) continue;
            long inflated = InflatedLength(body[compressedAt..], MaxInflatedChunkBytes + 1L);
            if (inflated > MaxInflatedChunkBytes)
                return $"{type} chunk inflates to over {MaxInflatedChunkBytes} bytes";
            total += inflated;
            if (total > MaxInflatedMetadataBytes)
                return $"compressed metadata chunks inflate to over {MaxInflatedMetadataBytes} bytes in all";
        }
        return null;
    }

    /// <summary>
    /// What is wrong with the pixel data, or null when its zlib stream inflates to at least the bytes
    /// the header's size and format need (ImageSharp fills missing rows with zeros instead of failing).
    /// Truncated when the stream ends early, not when it is damaged. Call after the declared size has
    /// been checked: that bounds the count, and nothing inflated is kept.
    /// </summary>
    public static (bool Truncated, string Problem)? PixelDataProblem(ReadOnlySpan<byte> data)
    {
        var chunks = Chunks(data);
        if (chunks.Count == 0 || chunks[0].Type != "IHDR" || chunks[0].Length < 13) return null;
        var header = data.Slice(chunks[0].Offset, 13);
        if (ExpectedRawBytes(header) is not { } expected) return null;

        var pixels = new MemoryStream();
        foreach (var (type, offset, length) in chunks)
        {
            if (type == "IDAT") pixels.Write(data.Slice(offset, length));
        }
        pixels.Position = 0;
        long inflated;
        try
        {
            inflated = InflatedLength(pixels, expected + 1);
        }
        catch (InvalidDataException e)
        {
            return (false, $"the pixel data is not a valid zlib stream ({e.Message})");
        }
        return inflated < expected
            ? (true, $"the pixel data inflates to {inflated} bytes, fewer than the {expected} its {Width(header)}×{Height(header)} pixels need")
            : null;
    }

    /// <summary>Filter bytes and scanlines of every row (of every Adam7 pass when interlaced); null for a format the decoder will refuse anyway.</summary>
    private static long? ExpectedRawBytes(ReadOnlySpan<byte> header)
    {
        long width = Width(header), height = Height(header);
        int depth = header[8], colorType = header[9], interlace = header[12];
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        if (channels == 0 || depth is not (1 or 2 or 4 or 8 or 16) || width <= 0 || height <= 0 || interlace > 1) return null;
        long bits = (long)depth * channels;
        long Rows(long w, long h) => w == 0 || h == 0 ? 0 : h * (1 + (w * bits + 7) / 8);
        if (interlace == 0) return Rows(width, height);
        ReadOnlySpan<(int X, int Y, int Dx, int Dy)> passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];
        long total = 0;
        foreach (var (x, y, dx, dy) in passes)
            total += Rows(width > x ? (width - x + dx - 1) / dx : 0, height > y ? (height - y + dy - 1) / dy : 0);
        return total;
    }

    private static long Width(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadUInt32BigEndian(header);

    private static long Height(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadUInt32BigEndian(header[4..]);

    /// <summary>
    /// Where a chunk's zlib data starts, or -1 when it holds none: after the keyword's NUL and the
    /// compression method (zTXt, iCCP), or for a compressed iTXt after its flag, method, language and
    /// translated keyword.
    /// </summary>
    private static int CompressedStart(ReadOnlySpan<byte> body, bool flagged)
    {
        int keywordEnd = body.IndexOf((byte)0);
        if (keywordEnd < 0) return -1;
        int position = keywordEnd + 1;
        if (!flagged) return position + 1 <= body.Length ? position + 1 : -1;
        if (position + 2 > body.Length || body[position] == 0) return -1;
        position += 2;
        for (int field = 0; field < 2; field++)
        {
            int end = body[position..].IndexOf((byte)0);
            if (end < 0) return -1;
            position += end + 1;
        }
        return position;
    }

    /// <summary>How many bytes a metadata chunk's zlib stream inflates to, up to <paramref name="limit"/>.</summary>
    private static long InflatedLength(ReadOnlySpan<byte> zlib, long limit)
    {
        try
        {
            return InflatedLength(new MemoryStream(zlib.ToArray(), writable: false), limit);
        }
        catch (InvalidDataException)
        {
            // Damaged metadata is the decoder's to judge (it skips it); only its size matters here.
            return 0;
        }
    }

    /// <summary>
    /// How many bytes the zlib stream inflates to, counting no further than <paramref name="limit"/>
    /// and keeping none. Reaching the stream's end checks its Adler-32.
    /// </summary>
    /// <exception cref="InvalidDataException">The stream is damaged.</exception>
    private static long InflatedLength(Stream compressed, long limit)
    {
        using var stream = new ZLibStream(compressed, CompressionMode.Decompress);
        var buffer = new byte[64 * 1024];
        long total = 0;
        int read;
        while (total < limit && (read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, limit - total))) > 0) total += read;
        return total;
    }

    /// <summary>The chunks before IEND (the list is known to be whole).</summary>
    private static List<(string Type, int Offset, int Length)> Chunks(ReadOnlySpan<byte> data)
    {
        var chunks = new List<(string Type, int Offset, int Length)>();
        int position = 8;
        while (position + 8 <= data.Length)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(data[position..]);
            var type = System.Text.Encoding.ASCII.GetString(data.Slice(position + 4, 4));
            if (type == "IEND") break;
            chunks.Add((type, position + 8, length));
            position += 12 + length;
        }
        return chunks;
    }
}
