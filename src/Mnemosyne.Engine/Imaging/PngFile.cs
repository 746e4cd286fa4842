using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// Writes 8-bit RGB PNGs with text chunks (the generation settings) and reads those chunks back.
/// The bytes depend only on the pixels and the text: no time, no physical size, no gamma, and
/// ImageSharp's own managed deflate, so the same image is the same file on every runtime.
/// </summary>
public static class PngFile
{
    /// <summary>Largest text a chunk may inflate to when read back (a zTXt/iTXt bomb guard).</summary>
    private const int MaxTextBytes = 16 * 1024 * 1024;

    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    private static readonly PngEncoder Encoder = new()
    {
        ColorType = PngColorType.Rgb,
        BitDepth = PngBitDepth.Bit8,
        CompressionLevel = PngCompressionLevel.DefaultCompression,
        FilterMethod = PngFilterMethod.Adaptive,
        InterlaceMethod = PngInterlaceMode.None,
        // Text stays readable as tEXt/iTXt (what A1111-style readers expect), never zTXt.
        TextCompressionThreshold = int.MaxValue,
        ChunkFilter = PngChunkFilter.ExcludePhysicalChunk | PngChunkFilter.ExcludeGammaChunk | PngChunkFilter.ExcludeExifChunk,
    };

    public static byte[] Encode(RgbImage image, IEnumerable<PngTextEntry>? text = null)
    {
        using var stream = new MemoryStream();
        Write(stream, image, text);
        return stream.ToArray();
    }

    public static void Write(Stream stream, RgbImage image, IEnumerable<PngTextEntry>? text = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(image);
        using var pixels = Image.LoadPixelData<Rgb24>(image.Rgb, image.Width, image.Height);
        var metadata = pixels.Metadata.GetPngMetadata();
        foreach (var entry in text ?? [])
            metadata.TextData.Add(new PngTextData(entry.Keyword, entry.Text, "", ""));
        pixels.Save(stream, Encoder);
    }

    /// <summary>Saves atomically (<see cref="AtomicFile"/>): the PNG appears whole or not at all.</summary>
    /// <exception cref="IOException">The file exists and <paramref name="overwrite"/> is false.</exception>
    public static void Save(string path, RgbImage image, IEnumerable<PngTextEntry>? text = null, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(image);
        var entries = text?.ToList();
        AtomicFile.Write(path, stream => Write(stream, image, entries), overwrite);
    }

    /// <summary>The tEXt, zTXt and iTXt chunks of a PNG, in file order, without decoding its pixels.</summary>
    /// <exception cref="InvalidDataException">The file is not a PNG or its chunks are damaged.</exception>
    public static IReadOnlyList<PngTextEntry> ReadText(string path)
    {
        using var stream = File.OpenRead(path);
        return ReadText(stream, Path.GetFullPath(path));
    }

    /// <summary>
    /// The text chunks of a file that may be anything: read whole within <see cref="ImageDecodeLimits.MaxFileBytes"/>,
    /// its chunks walked to IEND and its compressed metadata measured (Pillow's caps, <see cref="PngChunks"/>) before
    /// any of it is inflated, as <see cref="SafeImageDecoder"/> does before decoding.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a PNG, is cut short, or its text is damaged or a decompression bomb.</exception>
    public static IReadOnlyList<PngTextEntry> ReadUntrustedText(string path, ImageDecodeLimits? limits = null)
    {
        limits ??= ImageDecodeLimits.Default;
        var fullPath = Path.GetFullPath(path);
        byte[] data;
        using (var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            if (stream.Length > limits.MaxFileBytes)
                throw new InvalidDataException($"{fullPath}: the file is {stream.Length} bytes, over the limit of {limits.MaxFileBytes} for a picture.");
            data = new byte[stream.Length];
            stream.ReadExactly(data);
        }
        if (data.Length < Signature.Length || !data.AsSpan(0, Signature.Length).SequenceEqual(Signature))
            throw new InvalidDataException($"{fullPath}: not a PNG file, so it has no PNG text (settings are read from PNG pictures).");
        if (!ContainerChecks.PngReachesEnd(data))
            throw new InvalidDataException($"{fullPath}: the PNG ends before its IEND chunk (an interrupted download or copy?); get a complete copy of it.");
        if (PngChunks.OversizedMetadata(data) is { } oversized)
            throw new InvalidDataException($"{fullPath}: the PNG's {oversized} (a decompression bomb?); it is not settings text.");
        return ReadText(new MemoryStream(data, writable: false), fullPath);
    }

    public static IReadOnlyList<PngTextEntry> ReadText(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[8];
        if (stream.ReadAtLeast(header, 8, throwOnEndOfStream: false) < 8 || !header.SequenceEqual(Signature))
            throw new InvalidDataException($"{name}: not a PNG file (bad signature).");

        var entries = new List<PngTextEntry>();
        while (true)
        {
            if (stream.ReadAtLeast(header, 8, throwOnEndOfStream: false) < 8)
                throw new InvalidDataException($"{name}: the PNG ends before its IEND chunk (truncated).");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header);
            var type = Encoding.ASCII.GetString(header[4..]);
            if (length > int.MaxValue)
                throw new InvalidDataException($"{name}: the PNG '{type}' chunk declares an impossible length {length}.");
            if (type == "IEND") return entries;
            if (type is "tEXt" or "zTXt" or "iTXt")
            {
                var data = new byte[length];
                if (stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false) < data.Length)
                    throw new InvalidDataException($"{name}: the PNG '{type}' chunk is truncated.");
                entries.Add(ParseText(type, data, name));
                Skip(stream, 4, name);
            }
            else Skip(stream, length + 4L, name);
        }
    }

    private static PngTextEntry ParseText(string type, byte[] data, string name)
    {
        int keywordEnd = Array.IndexOf(data, (byte)0);
        if (keywordEnd < 1)
            throw new InvalidDataException($"{name}: a PNG '{type}' chunk has no keyword.");
        var keyword = Encoding.Latin1.GetString(data, 0, keywordEnd);
        var rest = data.AsSpan(keywordEnd + 1);
        string text;
        switch (type)
        {
            case "tEXt":
                text = Encoding.Latin1.GetString(rest);
                break;
            case "zTXt":
                if (rest.Length < 1 || rest[0] != 0)
                    throw new InvalidDataException($"{name}: the zTXt chunk '{keyword}' uses an unknown compression method.");
                text = Encoding.Latin1.GetString(Inflate(rest[1..], keyword, name));
                break;
            default:
                // iTXt: compression flag, method, language tag NUL, translated keyword NUL, UTF-8 text.
                if (rest.Length < 2)
                    throw new InvalidDataException($"{name}: the iTXt chunk '{keyword}' is too short.");
                bool compressed = rest[0] != 0;
                var tail = rest[2..];
                for (int separators = 0; separators < 2; separators++)
                {
                    int end = tail.IndexOf((byte)0);
                    if (end < 0) throw new InvalidDataException($"{name}: the iTXt chunk '{keyword}' is damaged.");
                    tail = tail[(end + 1)..];
                }
                text = Encoding.UTF8.GetString(compressed ? Inflate(tail, keyword, name) : tail);
                break;
        }
        try
        {
            return new PngTextEntry(keyword, text);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{name}: the PNG text chunk '{keyword}' is not valid: {e.Message}", e);
        }
    }

    private static byte[] Inflate(ReadOnlySpan<byte> compressed, string keyword, string name)
    {
        using var inflater = new ZLibStream(new MemoryStream(compressed.ToArray()), CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = new byte[81920];
        while (true)
        {
            int read;
            try
            {
                read = inflater.Read(buffer);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"{name}: the compressed text chunk '{keyword}' is damaged.", e);
            }
            if (read == 0) return output.ToArray();
            if (output.Length + read > MaxTextBytes)
                throw new InvalidDataException($"{name}: the text chunk '{keyword}' inflates to more than {MaxTextBytes} bytes; it is not settings text.");
            output.Write(buffer, 0, read);
        }
    }

    private static void Skip(Stream stream, long count, string name)
    {
        if (stream.CanSeek)
        {
            if (stream.Position + count > stream.Length)
                throw new InvalidDataException($"{name}: the PNG ends inside a chunk (truncated).");
            stream.Seek(count, SeekOrigin.Current);
            return;
        }
        var buffer = new byte[Math.Min(count, 81920)];
        while (count > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(count, buffer.Length));
            if (read == 0) throw new InvalidDataException($"{name}: the PNG ends inside a chunk (truncated).");
            count -= read;
        }
    }
}
