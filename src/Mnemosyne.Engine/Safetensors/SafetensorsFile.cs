using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;

namespace Mnemosyne.Engine.Safetensors;

/// <summary>
/// A safetensors file (8-byte little-endian header length, JSON header, raw data), memory-mapped on
/// first read. The header is validated completely on open: every offset is bounds-checked against the
/// file, sizes must match dtype × shape, and tensors may not overlap.
/// </summary>
public sealed class SafetensorsFile : IStoredWeightSource, IDisposable
{
    private const long MaxHeaderLength = 100L * 1024 * 1024;
    private const string Damaged = "the file is damaged or incomplete: download or copy it again";
    private readonly Dictionary<string, TensorInfo> tensors;
    private readonly object mapGate = new();
    private MemoryMappedFile? map;
    private MemoryMappedViewAccessor? view;
    private bool disposed;

    private SafetensorsFile(string path, long fileLength, long dataStart, Dictionary<string, TensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        FileLength = fileLength;
        DataStart = dataStart;
        this.tensors = tensors;
        Metadata = metadata;
    }

    public string Path { get; }

    public long FileLength { get; }

    /// <summary>Absolute offset of the data section (8 + header length).</summary>
    public long DataStart { get; }

    public IReadOnlyDictionary<string, TensorInfo> Tensors => tensors;

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint file not found: {path}", path);
        if (InputFiles.SpecialKind(path) is { } kind)
            throw new CheckpointException($"{path} is {kind}, not a regular file that can be read; give the path of the weights file itself.", path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        if (length < 8 || stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8)
            throw new CheckpointException($"{path}: file is too short to be a safetensors file ({length} bytes); {Damaged}.", path);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength < 2 || headerLength > (ulong)(length - 8))
            throw new CheckpointException($"{path}: bad safetensors header length {headerLength} for a file of {length} bytes (truncated or not a safetensors file); {Damaged}.", path);
        if (headerLength > MaxHeaderLength)
            throw new CheckpointException(
                $"{path}: its safetensors header declares {headerLength} bytes, over the {MaxHeaderLength >> 20} MB this reader accepts (real checkpoints' headers are far smaller); {Damaged}.", path);
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataStart = 8 + (long)headerLength;
        var (parsed, metadata) = ParseHeader(path, header, dataStart, length - dataStart);
        return new SafetensorsFile(path, length, dataStart, parsed, metadata);
    }

    private static (Dictionary<string, TensorInfo>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataStart, long dataLength)
    {
        // The JSON reader checks the UTF-8 of values only when they are read, and names nothing when it fails.
        if (!Utf8.IsValid(header))
            throw new CheckpointException($"{path}: safetensors header is not valid UTF-8; {Damaged}.", path);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw new CheckpointException($"{path}: safetensors header is not valid JSON ({e.Message}); {Damaged}.", path, null, e); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{path}: safetensors header is not a JSON object; {Damaged}.", path);

        var result = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in doc.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                if (entry.Value.ValueKind == JsonValueKind.Object)
                    foreach (var m in entry.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                continue;
            }
            if (!result.TryAdd(entry.Name, ParseTensor(path, entry.Name, entry.Value, dataStart, dataLength)))
                throw new CheckpointException($"{path}: tensor '{entry.Name}' is named twice in the safetensors header; {Damaged}.", path, entry.Name);
        }

        // Tensors may not overlap: sort by start and check each begins after the previous ends.
        TensorInfo? previous = null;
        foreach (var t in result.Values.Where(t => t.ByteLength > 0).OrderBy(t => t.Offset))
        {
            if (previous is not null && t.Offset < previous.Offset + previous.ByteLength)
                throw new CheckpointException($"{path}: tensor '{t.Name}' overlaps tensor '{previous.Name}'; {Damaged}.", path, t.Name);
            previous = t;
        }
        return (result, metadata);
    }

    private static TensorInfo ParseTensor(string path, string name, JsonElement value, long dataStart, long dataLength)
    {
        CheckpointException Bad(string what, string advice = Damaged) => new($"{path}: tensor '{name}': {what}; {advice}.", path, name);
        if (value.ValueKind != JsonValueKind.Object) throw Bad("header entry is not an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Bad("no dtype");
        var dtypeText = dtypeElement.GetString()!;
        if (!TryParseDType(dtypeText, out var dtype))
            throw Bad($"unknown dtype '{dtypeText}' (the engine reads {string.Join(", ", DTypeNames)})",
                "convert the checkpoint to fp16 or fp32 safetensors, or use the model's official fp16 files");
        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad("no shape");
        var shape = new long[shapeElement.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (!d.TryGetInt64(out var dim) || dim < 0) throw Bad($"bad dimension {d.GetRawText()} in shape");
            shape[i++] = dim;
            try { count = checked(count * dim); }
            catch (OverflowException) { throw Bad("shape is too large"); }
        }
        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end))
            throw Bad("no valid data_offsets");
        if (begin < 0 || end < begin || end > dataLength)
            throw Bad($"data_offsets [{begin}, {end}] lie outside the data section of {dataLength} bytes (file truncated?)");
        long expected;
        try { expected = checked(count * ElementSize(dtype)); }
        catch (OverflowException) { throw Bad("shape is too large"); }
        if (end - begin != expected)
            throw Bad($"holds {end - begin} bytes but {dtypeText} × [{string.Join(", ", shape)}] needs {expected}");
        return new TensorInfo(name, dtype, shape, dataStart + begin, end - begin);
    }

    public static int ElementSize(TensorDType dtype) => dtype switch
    {
        TensorDType.F64 or TensorDType.I64 => 8,
        TensorDType.F32 or TensorDType.I32 => 4,
        TensorDType.F16 or TensorDType.BF16 or TensorDType.I16 => 2,
        _ => 1,
    };

    private static readonly string[] DTypeNames = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"];

    private static bool TryParseDType(string text, out TensorDType dtype)
    {
        switch (text)
        {
            case "F32": dtype = TensorDType.F32; return true;
            case "F16": dtype = TensorDType.F16; return true;
            case "BF16": dtype = TensorDType.BF16; return true;
            case "F64": dtype = TensorDType.F64; return true;
            case "I64": dtype = TensorDType.I64; return true;
            case "I32": dtype = TensorDType.I32; return true;
            case "I16": dtype = TensorDType.I16; return true;
            case "I8": dtype = TensorDType.I8; return true;
            case "U8": dtype = TensorDType.U8; return true;
            case "BOOL": dtype = TensorDType.Bool; return true;
            default: dtype = default; return false;
        }
    }

    public bool Contains(string name) => tensors.ContainsKey(name);

    /// <summary>The tensor's info; a clear error naming the file and tensor when it is missing.</summary>
    public TensorInfo this[string name] => tensors.TryGetValue(name, out var info)
        ? info
        : throw new CheckpointException(
            $"{Path}: tensor '{name}' is missing (wrong or incomplete checkpoint?): the file is incomplete, or holds another model than its config.json describes. Download or copy the model again.",
            Path, name);

    public TensorInfo Expect(string name, long[] shape)
    {
        var info = this[name];
        if (!info.Shape.SequenceEqual(shape))
            throw new CheckpointException(
                $"{Path}: tensor '{name}' has shape {info.ShapeText} but the config needs [{string.Join(", ", shape)}] (checkpoint and config do not match). Use the config.json that came with these weights.",
                Path, name);
        return info;
    }

    public StoredWeight Locate(string name, long[] shape) => new(this, Expect(name, shape));

    /// <summary>Reads a floating-point tensor as float32 (F16 and BF16 are widened exactly).</summary>
    public float[] ReadFloat32(string name)
    {
        var info = this[name];
        var result = new float[info.ElementCount];
        ReadFloat32(info, result);
        return result;
    }

    public void ReadFloat32(TensorInfo info, Span<float> destination)
    {
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"Destination holds {destination.Length} values; tensor '{info.Name}' has {info.ElementCount}.", nameof(destination));
        Widen(info, RawBytes(info), destination);
    }

    /// <summary>
    /// <see cref="ReadFloat32(TensorInfo, Span{float})"/> through ordinary file reads rather than the memory map, so that
    /// one pass over a whole checkpoint (a conversion) leaves its pages in the page cache, not in this process's memory.
    /// </summary>
    public void ReadFloat32Unmapped(TensorInfo info, Span<float> destination)
    {
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"Destination holds {destination.Length} values; tensor '{info.Name}' has {info.ElementCount}.", nameof(destination));
        if (info.ByteLength > int.MaxValue)
            throw new CheckpointException($"{Path}: tensor '{info.Name}' is over 2 GB and cannot be read as one span.", Path, info.Name);
        var bytes = new byte[info.ByteLength];
        using (var handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            int read = 0;
            while (read < bytes.Length)
            {
                int n = RandomAccess.Read(handle, bytes.AsSpan(read), info.Offset + read);
                if (n == 0) throw new CheckpointException($"{Path}: tensor '{info.Name}' ends past the end of the file (was it cut short since it was opened?).", Path, info.Name);
                read += n;
            }
        }
        Widen(info, bytes, destination);
    }

    private void Widen(TensorInfo info, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        switch (info.DType)
        {
            case TensorDType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
                break;
            case TensorDType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(bytes);
                for (int i = 0; i < halves.Length; i++) destination[i] = (float)halves[i];
                break;
            case TensorDType.BF16:
                var raw = MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < raw.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                break;
            case TensorDType.F64:
                var doubles = MemoryMarshal.Cast<byte, double>(bytes);
                for (int i = 0; i < doubles.Length; i++) destination[i] = (float)doubles[i];
                break;
            default:
                throw new CheckpointException(
                    $"{Path}: tensor '{info.Name}' is {info.DType}, not a floating-point tensor: the file holds another model than its config.json describes, or is damaged. Download or copy the model again.",
                    Path, info.Name);
        }
    }

    /// <summary>The tensor's bytes, straight from the memory-mapped file (valid while this object lives).</summary>
    public unsafe ReadOnlySpan<byte> RawBytes(TensorInfo info)
    {
        if (info.ByteLength == 0) return [];
        if (info.ByteLength > int.MaxValue)
            throw new CheckpointException($"{Path}: tensor '{info.Name}' is over 2 GB and cannot be read as one span.", Path, info.Name);
        var accessor = View();
        byte* basePointer = null;
        accessor.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        try
        {
            return new ReadOnlySpan<byte>(basePointer + accessor.PointerOffset + info.Offset, (int)info.ByteLength);
        }
        finally
        {
            // The view stays mapped until Dispose; releasing the reference count here is safe.
            accessor.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    private MemoryMappedViewAccessor View()
    {
        lock (mapGate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (view is not null) return view;
            map = MemoryMappedFile.CreateFromFile(
                new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read), null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return view;
        }
    }

    public void Dispose()
    {
        lock (mapGate)
        {
            view?.Dispose();
            map?.Dispose();
            view = null;
            map = null;
            disposed = true;
        }
    }
}
