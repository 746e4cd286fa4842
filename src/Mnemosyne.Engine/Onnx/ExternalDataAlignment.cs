using System.Globalization;
using Google.Protobuf;
using Onnx;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// Puts every block of a saved model's external data file (each initializer, each pre-packed buffer) at a multiple of
/// <see cref="Alignment"/>. ONNX Runtime 1.31 writes an optimised model's blocks back to back, so one block whose size
/// is not such a multiple shifts every later one; loading, it maps the pre-packed buffers where they lie, and its
/// kernels read them with aligned vector loads: a crash, or wrong numbers (seen with the CLIP text encoders, whose
/// 77×77 causal mask is 23,716 bytes, and with 8-bit MatMulNBits).
/// </summary>
internal static class ExternalDataAlignment
{
    /// <summary>What ONNX Runtime's kernels (MLAS) align their own buffers to: a cache line, an AVX-512 register.</summary>
    public const int Alignment = 64;

    private const string PrepackedPrefix = "prepacked";

    /// <summary>Rewrites <paramref name="dataFile"/> (named so in the model) and <paramref name="modelPath"/> when a block is misaligned.</summary>
    /// <returns>Whether the files were rewritten.</returns>
    public static bool Align(string modelPath, string dataFile)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelPath));
        var blocks = Blocks(model, dataFile).OrderBy(b => b.Offset).ToList();
        if (blocks.All(b => b.Offset % Alignment == 0)) return false;

        var folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        var dataPath = Path.Combine(folder, dataFile);
        var alignedPath = dataPath + ".aligned";
        var moved = new Dictionary<long, long>();
        using (var source = new FileStream(dataPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20))
        using (var target = new FileStream(alignedPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            var buffer = new byte[1 << 20];
            foreach (var block in blocks)
            {
                // Blocks may share bytes (one buffer named twice): each offset is moved once.
                if (moved.ContainsKey(block.Offset)) continue;
                // Writing past the end fills the gap with zeros.
                target.Position = (target.Position + Alignment - 1) / Alignment * Alignment;
                moved[block.Offset] = target.Position;
                source.Position = block.Offset;
                for (long left = block.Length; left > 0;)
                {
                    int read = source.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (read == 0) throw new InvalidDataException($"{dataPath} ends inside a block at {block.Offset} of {block.Length} bytes.");
                    target.Write(buffer, 0, read);
                    left -= read;
                }
            }
            target.Flush(flushToDisk: true);
        }
        foreach (var tensor in ExternalTensors(model, dataFile))
            foreach (var entry in tensor.ExternalData)
            {
                if (entry.Key == "offset") entry.Value = Format(moved[long.Parse(entry.Value, CultureInfo.InvariantCulture)]);
                else if (entry.Key.StartsWith(PrepackedPrefix, StringComparison.Ordinal)) entry.Value = MovePrepacked(entry.Value, moved);
            }
        File.Move(alignedPath, dataPath, overwrite: true);
        using (var stream = new FileStream(modelPath, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            model.WriteTo(stream);
            stream.Flush(flushToDisk: true);
        }
        return true;
    }

    private readonly record struct Block(long Offset, long Length);

    private static IEnumerable<TensorProto> ExternalTensors(ModelProto model, string dataFile)
        => model.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External
            && t.ExternalData.Any(e => e.Key == "location" && e.Value == dataFile));

    /// <summary>Every block in the data file: each tensor's values ("offset", "length") and its pre-packed buffers.</summary>
    private static IEnumerable<Block> Blocks(ModelProto model, string dataFile)
    {
        foreach (var tensor in ExternalTensors(model, dataFile))
        {
            var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            yield return new Block(long.Parse(entries["offset"], CultureInfo.InvariantCulture), long.Parse(entries["length"], CultureInfo.InvariantCulture));
            foreach (var (key, value) in entries)
                if (key.StartsWith(PrepackedPrefix, StringComparison.Ordinal))
                    foreach (var (offset, length, _) in PrepackedBlobs(value)) yield return new Block(offset, length);
        }
    }

    /// <summary>ONNX Runtime's pre-packed entry: <c>key|offset;length;checksum[|offset;length;checksum…]</c>.</summary>
    private static IEnumerable<(long Offset, long Length, string Checksum)> PrepackedBlobs(string value)
    {
        foreach (var blob in value.Split('|').Skip(1))
        {
            var fields = blob.Split(';');
            if (fields.Length != 3) throw new InvalidDataException($"Unexpected pre-packed entry '{value}' in a saved ONNX Runtime model.");
            yield return (long.Parse(fields[0], CultureInfo.InvariantCulture), long.Parse(fields[1], CultureInfo.InvariantCulture), fields[2]);
        }
    }

    private static string MovePrepacked(string value, Dictionary<long, long> moved)
        => string.Join('|', PrepackedBlobs(value).Select(b => $"{Format(moved[b.Offset])};{Format(b.Length)};{b.Checksum}").Prepend(value.Split('|')[0]));

    private static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);
}
