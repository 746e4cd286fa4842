using System.Buffers.Binary;

namespace Mnemosyne.Engine.Imaging;

/// <summary>The first frame of an animated WebP, re-wrapped as a still WebP, and where it sits on the canvas.</summary>
internal sealed record AnimatedWebpFrame(
    int CanvasWidth, int CanvasHeight, int X, int Y, int Width, int Height, byte[] StillWebp);

/// <summary>
/// ImageSharp 2.1 refuses animated WebP outright. Its first frame is an ordinary VP8/VP8L bitstream
/// inside an ANMF chunk, so it is lifted out into a still WebP that the decoder accepts; the caller
/// places it on the canvas as libwebp's animation decoder (Pillow's) does for a first frame: on a
/// transparent black canvas, copied without blending (the first frame is a key frame).
/// </summary>
internal static class AnimatedWebp
{
    private const byte AnimationFlag = 0x02;
    private const byte AlphaFlag = 0x10;

    /// <summary>True when the first chunk is a VP8X header with the animation flag set.</summary>
    public static bool IsAnimated(ReadOnlySpan<byte> data) =>
        data.Length >= 30 && data.Slice(12, 4).SequenceEqual("VP8X"u8) && (data[20] & AnimationFlag) != 0;

    /// <exception cref="InvalidDataException">The container is damaged or has no frame.</exception>
    public static AnimatedWebpFrame ExtractFirstFrame(ReadOnlySpan<byte> data)
    {
        int canvasWidth = 0, canvasHeight = 0;
        foreach (var (type, payload) in Chunks(data, 12))
        {
            var body = data[payload];
            if (type == "VP8X")
            {
                if (body.Length < 10) throw new InvalidDataException("the VP8X chunk is too short.");
                canvasWidth = ReadUInt24(body[4..]) + 1;
                canvasHeight = ReadUInt24(body[7..]) + 1;
            }
            else if (type == "ANMF")
            {
                if (canvasWidth == 0) throw new InvalidDataException("an animation frame comes before the VP8X header.");
                if (body.Length < 16) throw new InvalidDataException("the first animation frame is too short.");
                int x = 2 * ReadUInt24(body), y = 2 * ReadUInt24(body[3..]);
                int width = ReadUInt24(body[6..]) + 1, height = ReadUInt24(body[9..]) + 1;
                if ((long)x + width > canvasWidth || (long)y + height > canvasHeight)
                    throw new InvalidDataException($"the first frame ({width}×{height} at {x},{y}) does not fit the {canvasWidth}×{canvasHeight} canvas.");
                var still = Rewrap(data, payload.Start.Value + 16, payload.End.Value, width, height);
                return new AnimatedWebpFrame(canvasWidth, canvasHeight, x, y, width, height, still);
            }
        }
        throw new InvalidDataException("the animation has no frame.");
    }

    private static byte[] Rewrap(ReadOnlySpan<byte> data, int start, int end, int width, int height)
    {
        Range? alpha = null, bitstream = null;
        string bitstreamType = "";
        foreach (var (type, payload) in Chunks(data[..end], start))
        {
            if (type == "ALPH") alpha = payload;
            else if (type is "VP8 " or "VP8L") { bitstream = payload; bitstreamType = type; break; }
        }
        if (bitstream is null) throw new InvalidDataException("the first animation frame holds no VP8 or VP8L image.");

        using var still = new MemoryStream();
        still.Write("RIFF"u8);
        still.Write(stackalloc byte[4]);
        still.Write("WEBP"u8);
        if (alpha is not null && bitstreamType == "VP8 ")
        {
            Span<byte> header = stackalloc byte[10];
            header[0] = AlphaFlag;
            WriteUInt24(header[4..], width - 1);
            WriteUInt24(header[7..], height - 1);
            WriteChunk(still, "VP8X", header);
            WriteChunk(still, "ALPH", data[alpha.Value]);
        }
        WriteChunk(still, bitstreamType, data[bitstream.Value]);
        var bytes = still.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)(bytes.Length - 8));
        return bytes;
    }

    /// <summary>The RIFF chunks from <paramref name="start"/> on, as (FourCC, payload range); stops at the first malformed one.</summary>
    private static List<(string Type, Range Payload)> Chunks(ReadOnlySpan<byte> data, int start)
    {
        var chunks = new List<(string, Range)>();
        long position = start;
        while (position + 8 <= data.Length)
        {
            var type = System.Text.Encoding.ASCII.GetString(data.Slice((int)position, 4));
            long size = BinaryPrimitives.ReadUInt32LittleEndian(data[((int)position + 4)..]);
            long payloadStart = position + 8;
            if (payloadStart + size > data.Length)
                throw new InvalidDataException($"the '{type}' chunk runs past the end of the file (truncated?).");
            chunks.Add((type, new Range((int)payloadStart, (int)(payloadStart + size))));
            position = payloadStart + size + (size & 1);
        }
        return chunks;
    }

    private static void WriteChunk(Stream stream, string type, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[8];
        System.Text.Encoding.ASCII.GetBytes(type, header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)payload.Length);
        stream.Write(header);
        stream.Write(payload);
        if ((payload.Length & 1) != 0) stream.WriteByte(0);
    }

    private static int ReadUInt24(ReadOnlySpan<byte> bytes) => bytes[0] | bytes[1] << 8 | bytes[2] << 16;

    private static void WriteUInt24(Span<byte> bytes, int value)
    {
        bytes[0] = (byte)value;
        bytes[1] = (byte)(value >> 8);
        bytes[2] = (byte)(value >> 16);
    }
}
