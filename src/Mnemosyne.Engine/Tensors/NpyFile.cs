using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Mnemosyne.Engine.Tensors;

/// <summary>
/// Reads and writes NumPy .npy files holding little-endian float32 in C order (format 1.0–3.0),
/// the format of research noise files and of the reference fixtures.
/// </summary>
public static partial class NpyFile
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    private const int MaxHeaderLength = 64 * 1024;

    public static FloatTensor Read(string path, long maxElements = 1L << 28)
    {
        using var stream = File.OpenRead(path);
        return Read(stream, path, maxElements);
    }

    public static FloatTensor Read(Stream stream, string name, long maxElements = 1L << 28)
    {
        Span<byte> prefix = stackalloc byte[10];
        if (stream.ReadAtLeast(prefix, 10, throwOnEndOfStream: false) < 10 || !prefix[..6].SequenceEqual(Magic))
            throw new InvalidDataException($"{name}: not a NumPy .npy file (bad magic).");
        int major = prefix[6];
        int headerLength;
        if (major == 1)
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(prefix[8..]);
        else if (major is 2 or 3)
        {
            Span<byte> rest = stackalloc byte[2];
            stream.ReadExactly(rest);
            headerLength = (int)Math.Min(int.MaxValue, BinaryPrimitives.ReadUInt32LittleEndian([prefix[8], prefix[9], rest[0], rest[1]]));
        }
        else throw new InvalidDataException($"{name}: unsupported .npy format version {major}.");
        if (headerLength > MaxHeaderLength)
            throw new InvalidDataException($"{name}: .npy header of {headerLength} bytes is too long.");

        var headerBytes = new byte[headerLength];
        if (stream.ReadAtLeast(headerBytes, headerLength, throwOnEndOfStream: false) < headerLength)
            throw new InvalidDataException($"{name}: .npy header is truncated.");
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);

        var descr = DescrPattern().Match(header);
        if (!descr.Success || descr.Groups[1].Value is not ("<f4" or "=f4" or "f4"))
            throw new InvalidDataException($"{name}: only little-endian float32 (<f4) .npy files are supported, not {(descr.Success ? descr.Groups[1].Value : "an unknown dtype")}.");
        if (FortranPattern().Match(header) is { Success: true } fortran && fortran.Groups[1].Value == "True")
            throw new InvalidDataException($"{name}: Fortran-order .npy files are not supported; save in C order.");
        var shapeMatch = ShapePattern().Match(header);
        if (!shapeMatch.Success)
            throw new InvalidDataException($"{name}: .npy header has no shape.");

        var shape = shapeMatch.Groups[1].Value
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => int.TryParse(d, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
                ? v : throw new InvalidDataException($"{name}: bad dimension '{d}' in .npy shape."))
            .ToArray();
        long count = 1;
        foreach (var d in shape)
        {
            count *= d;
            if (count > maxElements)
                throw new InvalidDataException($"{name}: .npy tensor is larger than {maxElements} elements.");
        }

        var data = new float[count];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan());
        if (stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) < bytes.Length)
            throw new InvalidDataException($"{name}: .npy data is truncated (expected {count} float32 values).");
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Big-endian machines are not supported.");
        return new FloatTensor(data, shape);
    }

    public static void Write(string path, FloatTensor tensor)
    {
        using var stream = File.Create(path);
        Write(stream, tensor);
    }

    public static void Write(Stream stream, FloatTensor tensor)
    {
        var dims = string.Join(", ", tensor.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
        if (tensor.Shape.Length == 1) dims += ",";
        var dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        // Pad so that the data starts on a 64-byte boundary, ending the header with a newline.
        int total = 10 + dict.Length + 1;
        int padded = (total + 63) / 64 * 64;
        var header = dict + new string(' ', padded - total) + "\n";
        stream.Write(Magic);
        stream.Write([1, 0]);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        stream.Write(len);
        stream.Write(Encoding.Latin1.GetBytes(header));
        stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tensor.Data.AsSpan()));
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
