using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Mnemosyne.Engine.Safetensors;

/// <summary>Writes float tensors to a safetensors file (F32, or F16 for the fp16 variant files), or the header of any file.</summary>
public static class SafetensorsWriter
{
    public sealed record Entry(string Name, long[] Shape, Func<float[]> Values);

    public static void Write(string path, IReadOnlyList<Entry> entries, TensorDType dtype = TensorDType.F32, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (dtype is not (TensorDType.F32 or TensorDType.F16))
            throw new ArgumentException("Only F32 and F16 tensors can be written.", nameof(dtype));
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            WriteHeader(stream, entries.Select(e => new Layout(e.Name, dtype, e.Shape)).ToList(), metadata);
            foreach (var e in entries)
            {
                var values = e.Values();
                long expected = e.Shape.Aggregate(1L, (a, b) => a * b);
                if (values.LongLength != expected)
                    throw new ArgumentException($"Tensor '{e.Name}' has {values.LongLength} values; its shape needs {expected}.");
                if (dtype == TensorDType.F32)
                    stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
                else
                {
                    var halves = new Half[values.Length];
                    for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
                    stream.Write(MemoryMarshal.AsBytes(halves.AsSpan()));
                }
            }
        }
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>A tensor's entry in a safetensors header.</summary>
    public sealed record Layout(string Name, TensorDType DType, long[] Shape)
    {
        public long ByteLength => Shape.Aggregate(1L, (a, b) => a * b) * SafetensorsFile.ElementSize(DType);
    }

    /// <summary>
    /// Writes the length prefix and the JSON header of a file whose data section holds <paramref name="tensors"/>
    /// back to back, in order; the caller writes their bytes next.
    /// </summary>
    public static void WriteHeader(Stream stream, IReadOnlyList<Layout> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var t in tensors)
        {
            header[t.Name] = new { dtype = t.DType.ToString().ToUpperInvariant(), shape = t.Shape, data_offsets = new[] { offset, offset + t.ByteLength } };
            offset += t.ByteLength;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        // Pad the header with spaces so the data section starts 8-byte aligned, as the reference writer does.
        int padding = (8 - json.Length % 8) % 8;
        var headerBytes = new byte[json.Length + padding];
        json.CopyTo(headerBytes, 0);
        headerBytes.AsSpan(json.Length).Fill((byte)' ');

        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)headerBytes.Length);
        stream.Write(prefix);
        stream.Write(headerBytes);
    }
}
