using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Conversion;

/// <summary>
/// Weights converted from a checkpoint for a <see cref="WeightPrecision"/> other than float32, made once and
/// kept on disk: ONNX Runtime then maps them itself (no copy in the protobuf, which caps at 2 GB, and none in
/// managed memory). Each source checkpoint gets a folder, and every file a session reads lies in it, since
/// ONNX Runtime takes external data from one folder per session. A file is named by its source's identity
/// (path, size, modification time), the conversion's format and the list of weights the network reads, so a
/// changed checkpoint or network gets a new file and the stale one is deleted. Beside each file lies its length and
/// checksum (<see cref="FileChecksum"/>), recorded when it is written and checked at every open: a damaged file is
/// converted again, with a warning (<see cref="TakeWarnings"/>).
/// </summary>
public static class ConvertedWeightCache
{
    /// <summary>Changes whenever the conversion does, so files of an older engine are not reused.</summary>
    public const string Format = "mnemosyne-int8-block32-symmetric-1";

    private const string ChecksumSuffix = ".checksum";

    private static readonly ConcurrentQueue<string> Warnings = new();

    /// <summary>$XDG_CACHE_HOME/mnemosyne/converted-weights (else ~/.cache/…); %LOCALAPPDATA%\Mnemosyne\converted-weights on Windows.</summary>
    public static string DefaultRoot
    {
        get
        {
            if (OperatingSystem.IsWindows())
                return System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "Mnemosyne", "converted-weights");
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var cache = !string.IsNullOrEmpty(xdg) && System.IO.Path.IsPathRooted(xdg)
                ? xdg
                : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return System.IO.Path.Combine(cache, "mnemosyne", "converted-weights");
        }
    }

    /// <summary>What went wrong since the last call (a damaged file converted again), once each.</summary>
    public static IReadOnlyList<string> TakeWarnings()
    {
        var taken = new List<string>();
        while (Warnings.TryDequeue(out var warning)) taken.Add(warning);
        return taken;
    }

    /// <summary>The folder for the weights converted from <paramref name="sourcePath"/> (e.g. the UNet's file) for <paramref name="precision"/>.</summary>
    public static string FolderFor(string sourcePath, WeightPrecision precision, string? root = null)
    {
        var full = System.IO.Path.GetFullPath(sourcePath);
        var stem = new string(System.IO.Path.GetFileNameWithoutExtension(full).Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').Take(64).ToArray());
        var name = $"{stem}-{Hash(full, 8)}-{precision.ToString().ToLowerInvariant()}";
        return System.IO.Path.Combine(System.IO.Path.GetFullPath(root ?? DefaultRoot), name);
    }

    /// <summary>
    /// The converted weights of <paramref name="plan"/> in <paramref name="folder"/>, under <paramref name="stem"/>
    /// ("unet", "ip-adapter"): the cached file when it is there and whole, else converted from the plan's source
    /// now (written to a temporary file and renamed, so a cut-short conversion leaves nothing half-written).
    /// </summary>
    /// <param name="warn">Where a damaged file's warning goes; null queues it for <see cref="TakeWarnings"/>.</param>
    /// <exception cref="IOException">The folder cannot be written (the message names it).</exception>
    public static ConvertedWeights Open(string folder, string stem, WeightConversionPlan plan, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var weights = plan.Weights;
        // Named by what is read (the source's path and the network's list of weights: several networks may read one
        // single-file checkpoint) and then by the source's state, so that only a changed source's file is stale.
        var readKey = Hash(System.IO.Path.GetFullPath(plan.Source.Path) + "|" + WeightList(weights), 8);
        var identity = Identity(plan.Source.Path, weights);
        var path = System.IO.Path.Combine(folder, $"{stem}-{readKey}-{Hash(identity, 16)}.safetensors");
        if (Damage(path) is { } damage)
            (warn ?? Warnings.Enqueue)($"The converted weights of {plan.Source.Path} cached in {path} are damaged ({damage}); they are converted again.");
        else if (TryOpen(path, identity, weights) is { } cached)
            return cached;

        try
        {
            Directory.CreateDirectory(folder);
            var metadata = new Dictionary<string, string>
            {
                ["format"] = Format,
                ["identity"] = identity,
                ["source"] = System.IO.Path.GetFullPath(plan.Source.Path),
            };
            WriteThenRename(path, stream => Write(stream, plan, weights, metadata));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Another process may have written the same file meanwhile; only without one is this a failure.
            if (TryOpen(path, identity, weights) is { } written) return written;
            var advice = FileInTheWay(folder) is { } file
                ? $"{file} is a file, not a folder: move it, or choose another folder for converted weights"
                : "Free some disk space or choose another folder for converted weights";
            throw new IOException($"Could not write the converted weights of {plan.Source.Path} to {path}: {e.Message} " +
                $"{advice} (EngineOptions.ConvertedWeightsPath).", e);
        }
        DeleteStale(folder, $"{stem}-{readKey}-", path);
        return (Damage(path) is null ? TryOpen(path, identity, weights) : null)
            ?? throw new InvalidDataException($"The converted weights just written to {path} do not read back whole; the disk may be failing.");
    }

    /// <summary>
    /// Streams the file to a temporary name beside it, records its checksum beside it, and renames it into place, so it
    /// appears whole or not at all (several GB: it cannot be staged in memory first).
    /// </summary>
    private static void WriteThenRename(string path, Action<Stream> write)
    {
        var temporary = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, $".{System.IO.Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            // The checksum first: a file never appears without one (a concurrent writer's is the same, the conversion being deterministic).
            var length = new FileInfo(temporary).Length;
            var record = temporary + ChecksumSuffix;
            File.WriteAllText(record, $"{length} {FileChecksum.Of(temporary, length)}\n");
            File.Move(record, path + ChecksumSuffix, overwrite: true);
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(temporary);
                File.Delete(temporary + ChecksumSuffix);
            }
            catch (IOException) { } // the original failure is the one to report
            catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>A file where <paramref name="folder"/> or one of the folders above it should be, if any.</summary>
    private static string? FileInTheWay(string folder)
    {
        for (var at = folder; !string.IsNullOrEmpty(at); at = System.IO.Path.GetDirectoryName(at))
            if (File.Exists(at)) return at;
        return null;
    }

    /// <summary>Why the file at <paramref name="path"/> is not the one that was written; null when it is, or is not there.</summary>
    private static string? Damage(string path)
    {
        var file = new FileInfo(path);
        if (!file.Exists) return null;
        string[] recorded;
        try
        {
            recorded = File.ReadAllText(path + ChecksumSuffix).Split(' ', StringSplitOptions.TrimEntries);
        }
        catch (Exception e) when (e is FileNotFoundException or IOException or UnauthorizedAccessException)
        {
            return "its checksum is missing";
        }
        if (recorded.Length != 2 || !long.TryParse(recorded[0], NumberStyles.None, CultureInfo.InvariantCulture, out var length))
            return "its checksum record is unreadable";
        if (file.Length != length) return $"it has {file.Length} bytes, not {length}";
        return FileChecksum.Of(path, length) == recorded[1] ? null : "it does not match its checksum";
    }

    private static ConvertedWeights? TryOpen(string path, string identity, IReadOnlyList<PlannedWeight> weights)
    {
        if (!File.Exists(path)) return null;
        ConvertedWeights? converted = null;
        try
        {
            converted = ConvertedWeights.Open(path);
            if (converted.File.Metadata.GetValueOrDefault("identity") == identity && converted.Holds(weights)) return converted;
        }
        catch (CheckpointException)
        {
            // A damaged or cut-short file is converted again.
        }
        converted?.Dispose();
        return null;
    }

    private static void Write(Stream stream, WeightConversionPlan plan, IReadOnlyList<PlannedWeight> weights, Dictionary<string, string> metadata)
    {
        if (plan.Source is not IStoredWeightSource source)
            throw new InvalidOperationException($"{plan.Source.Path} is not a weight file; only stored weights can be converted.");
        SafetensorsWriter.WriteHeader(stream, weights.SelectMany(ConvertedWeights.Layouts).ToList(), metadata);
        foreach (var weight in weights)
        {
            var values = ReadFloat32(source, weight);
            if (!weight.Quantised)
            {
                stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
                continue;
            }
            int rows = (int)weight.Shape[0], columns = (int)weight.Shape[1];
            int blockCount = Int8BlockQuantiser.BlockCount(columns);
            var blocks = new byte[rows * blockCount * Int8BlockQuantiser.BlockSize];
            var scales = new float[rows * blockCount];
            Int8BlockQuantiser.Quantise(values, rows, columns, blocks, scales, $"{weight.Name} of {plan.Source.Path}");
            stream.Write(blocks);
            stream.Write(MemoryMarshal.AsBytes(scales.AsSpan()));
        }
    }

    /// <summary>The weight in the network's layout: stored as it is, or transposed back.</summary>
    private static float[] ReadFloat32(IStoredWeightSource source, PlannedWeight weight)
    {
        var stored = source.Locate(weight.Name, weight.Shape);
        var values = new float[stored.Tensor.ElementCount];
        stored.File.ReadFloat32Unmapped(stored.Tensor, values);
        if (!stored.Transposed) return values;
        int rows = (int)weight.Shape[0], columns = (int)weight.Shape[1];
        var transposed = new float[values.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                transposed[r * columns + c] = values[c * rows + r];
        return transposed;
    }

    private static string Identity(string sourcePath, IReadOnlyList<PlannedWeight> weights)
    {
        var full = System.IO.Path.GetFullPath(sourcePath);
        // A link (a Hugging Face snapshot's) is known by its target: a new download changes the target, not the link.
        var file = new FileInfo(full);
        if (file.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) file = target;
        var text = string.Join('|', Format, file.FullName, file.Length.ToString(CultureInfo.InvariantCulture),
            file.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture), WeightList(weights));
        return $"{Format}|{full}|{Hash(text, 32)}";
    }

    private static string WeightList(IReadOnlyList<PlannedWeight> weights)
        => string.Join('|', weights.Select(w => $"{w.Name}:{string.Join('x', w.Shape)}:{(w.Quantised ? 'q' : 'f')}"));

    private static void DeleteStale(string folder, string prefix, string current)
    {
        foreach (var stale in Directory.EnumerateFiles(folder, prefix + "*.safetensors"))
        {
            if (stale == current) continue;
            try
            {
                File.Delete(stale);
                File.Delete(stale + ChecksumSuffix);
            }
            catch (IOException) { } // in use by another process: left for a later open
            catch (UnauthorizedAccessException) { }
        }
    }

    private static string Hash(string text, int hexDigits)
        => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..hexDigits].ToLowerInvariant();
}
