using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Mnemosyne.Tools.Bench;

/// <summary>
/// ONNX Runtime's LoRA adapter format (onnxruntime/lora/adapter_format/adapter_schema.fbs, format version 1): a
/// FlatBuffer with the file identifier "TORT" whose root table Adapter holds format_version, adapter_version,
/// model_version and parameters, each Parameter a name, dims (int64), data_type (1 = float) and raw_data aligned to 8.
/// Written front to back: every offset points forward, and both tables share one vtable layout.
/// </summary>
internal static class OrtAdapterFile
{
    private const int FormatVersion = 1;
    private const int FloatType = 1;

    public static byte[] Write(IReadOnlyList<(string Name, long[] Dims, float[] Data)> parameters)
    {
        var b = new Writer();
        b.U32(0);
        b.Raw("TORT"u8);
        // Four fields after the vtable offset: [vtable size, table size, field offsets].
        int adapterVtable = b.Position;
        foreach (var v in new ushort[] { 12, 20, 4, 8, 12, 16 }) b.U16(v);
        int parameterVtable = b.Position;
        foreach (var v in new ushort[] { 12, 20, 4, 8, 12, 16 }) b.U16(v);

        b.Align(4);
        int adapter = b.Position;
        b.Patch(0, adapter);
        b.I32(adapter - adapterVtable);
        b.I32(FormatVersion);
        b.I32(0);
        b.I32(0);
        int parametersField = b.Reserve();

        b.Align(4);
        b.Patch(parametersField, b.Position - parametersField);
        b.U32((uint)parameters.Count);
        int slots = b.Position;
        for (int i = 0; i < parameters.Count; i++) b.U32(0);

        for (int i = 0; i < parameters.Count; i++)
        {
            var (name, dims, data) = parameters[i];
            b.Align(4);
            int table = b.Position;
            b.Patch(slots + 4 * i, table - (slots + 4 * i));
            b.I32(table - parameterVtable);
            int nameField = b.Reserve();
            int dimsField = b.Reserve();
            b.I32(FloatType);
            int dataField = b.Reserve();

            b.Align(4);
            b.Patch(nameField, b.Position - nameField);
            var bytes = Encoding.UTF8.GetBytes(name);
            b.U32((uint)bytes.Length);
            b.Raw(bytes);
            b.Raw([0]);

            // A vector's length comes just before its elements, which are 8-aligned.
            b.AlignBefore(8);
            b.Patch(dimsField, b.Position - dimsField);
            b.U32((uint)dims.Length);
            foreach (var d in dims) b.I64(d);

            b.AlignBefore(8);
            b.Patch(dataField, b.Position - dataField);
            var raw = MemoryMarshal.AsBytes(data.AsSpan());
            b.U32((uint)raw.Length);
            b.Raw(raw);
        }
        b.Align(8);
        return b.ToArray();
    }

    private sealed class Writer
    {
        private readonly MemoryStream stream = new();

        public int Position => (int)stream.Position;

        public void Raw(ReadOnlySpan<byte> bytes) => stream.Write(bytes);

        public void U16(ushort value)
        {
            Span<byte> bytes = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
            Raw(bytes);
        }

        public void U32(uint value)
        {
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
            Raw(bytes);
        }

        public void I32(int value) => U32(unchecked((uint)value));

        public void I64(long value)
        {
            Span<byte> bytes = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
            Raw(bytes);
        }

        /// <summary>A 4-byte offset field to fill in later; returns its position.</summary>
        public int Reserve()
        {
            int at = Position;
            U32(0);
            return at;
        }

        public void Patch(int at, int value)
        {
            var end = stream.Position;
            stream.Position = at;
            I32(value);
            stream.Position = end;
        }

        public void Align(int alignment)
        {
            while (Position % alignment != 0) stream.WriteByte(0);
        }

        /// <summary>Pads so that what follows a 4-byte length starts at a multiple of <paramref name="alignment"/>.</summary>
        public void AlignBefore(int alignment)
        {
            while ((Position + 4) % alignment != 0) stream.WriteByte(0);
        }

        public byte[] ToArray() => stream.ToArray();
    }
}
