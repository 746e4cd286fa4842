using System.Buffers.Binary;

namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// Structural completeness checks that run before decoding. ImageSharp fills the missing part of
/// a truncated JPEG with black (and of some PNGs with zeros) instead of failing; a reference image
/// cut short must be refused, as Pillow does, not encoded half black.
/// </summary>
internal static class ContainerChecks
{
    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>True when the chunks, walked by their lengths, reach an IEND chunk inside the data.</summary>
    public static bool PngReachesEnd(ReadOnlySpan<byte> data)
    {
        if (data.Length < PngSignature.Length || !data[..PngSignature.Length].SequenceEqual(PngSignature)) return false;
        long position = PngSignature.Length;
        while (position + 8 <= data.Length)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[(int)position..]);
            var type = data.Slice((int)position + 4, 4);
            long next = position + 12 + length;
            if (length > int.MaxValue || next > data.Length) return false;
            if (type.SequenceEqual("IEND"u8)) return true;
            position = next;
        }
        return false;
    }

    /// <summary>
    /// The canvas size a WebP's VP8X header declares, or null without one. VP8X is the only WebP
    /// header with room for sizes beyond 16383 (up to 2^24 a side); ImageSharp reads the frame's own
    /// header instead and calls such a file 0×0, so the declared size is checked here first.
    /// </summary>
    public static (int Width, int Height)? WebpCanvasSize(ReadOnlySpan<byte> data) =>
        data.Length >= 30 && data[..4].SequenceEqual("RIFF"u8) && data.Slice(8, 8).SequenceEqual("WEBPVP8X"u8)
            ? (1 + (data[24] | data[25] << 8 | data[26] << 16), 1 + (data[27] | data[28] << 8 | data[29] << 16))
            : null;

    /// <summary>
    /// True when an end-of-image marker (FF D9) follows the first start-of-scan marker. Entropy-coded
    /// data never holds FF D9 (an FF there is always stuffed or a restart marker), and marker
    /// segments before the scan (where EXIF thumbnails keep their own FF D9) are skipped by length.
    /// </summary>
    public static bool JpegReachesEnd(ReadOnlySpan<byte> data)
    {
        if (data.Length < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
        int position = 2;
        while (true)
        {
            while (position < data.Length && data[position] != 0xFF) position++;
            while (position < data.Length && data[position] == 0xFF) position++;
            if (position >= data.Length) return false;
            byte marker = data[position++];
            if (marker is 0x01 or (>= 0xD0 and <= 0xD7)) continue;
            // An end marker before any scan: complete, if useless; the decoder will say so.
            if (marker == 0xD9) return true;
            if (position + 2 > data.Length) return false;
            int length = BinaryPrimitives.ReadUInt16BigEndian(data[position..]);
            if (marker == 0xDA) return data[position..].IndexOf([(byte)0xFF, (byte)0xD9]) >= 0;
            position += length;
        }
    }
}
