using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Mnemosyne.Engine.Conversion;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// ONNX Runtime sessions kept on disk as ONNX Runtime optimised them, so that a later open skips that work: the
/// optimised graph, with every initializer and the MatMul weights already pre-packed for this CPU's kernels written
/// to an external data file. The saved graph is loaded without optimisation, and ONNX Runtime then maps the file and
/// uses the pre-packed weights where they lie instead of packing a copy on the heap: the pages belong to the page
/// cache, so the system can reclaim them and every process that opens the same entry shares them.
/// </summary>
/// <remarks>
/// A network's graph over a weight folder with given settings has a folder (its slot) under <see cref="Root"/>, which
/// holds one entry, named by its key: the cache format, ONNX Runtime's version, this CPU (the optimised graph and the
/// packed layouts are made for it), the graph's bytes and the identity (path, size, modification time) of every weight
/// file the graph reads. An entry is written to a temporary folder and renamed into place, so it appears whole or not
/// at all, and a concurrent open that loses the race keeps its own session and discards its copy. An entry whose
/// manifest, sizes or checksums do not match, or that ONNX Runtime refuses, is damaged; one of another key in the slot is
/// stale (new weights, another ONNX Runtime, CPU or engine). Either is reported (<see cref="TakeWarnings"/>) and replaced.
/// Thread-safe.
/// </remarks>
public sealed class SessionCache
{
    /// <summary>Changes whenever what an entry holds does, so that entries of an older engine are replaced.</summary>
    public const string Format = "mnemosyne-session-1";

    private const string ModelFile = "model.onnx";
    private const string DataFile = "model.data";
    private const string ManifestFile = "manifest.json";
    private const string TemporarySuffix = ".tmp";

    /// <summary>A temporary folder left this long is a writer's that ended without cleaning up (killed).</summary>
    private static readonly TimeSpan AbandonedAfter = TimeSpan.FromDays(1);

    private static readonly Lazy<string> CpuIdentity = new(DescribeCpu);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly ConcurrentQueue<string> warnings = new();
    private int loaded, saved;

    /// <param name="root">The folder of the cache; null uses <see cref="DefaultRoot"/>.</param>
    public SessionCache(string? root = null) => Root = Path.GetFullPath(root ?? DefaultRoot);

    /// <summary>$XDG_CACHE_HOME/mnemosyne/sessions (else ~/.cache/…), %LOCALAPPDATA%\Mnemosyne\sessions on Windows: beside the converted weights.</summary>
    public static string DefaultRoot => Path.Combine(Path.GetDirectoryName(ConvertedWeightCache.DefaultRoot)!, "sessions");

    public string Root { get; }

    /// <summary>Sessions made from a saved entry, without optimising or packing.</summary>
    public int Loaded => Volatile.Read(ref loaded);

    /// <summary>Entries written (each by a session that optimised its graph).</summary>
    public int Saved => Volatile.Read(ref saved);

    /// <summary>What went wrong since the last call (a damaged or stale entry replaced, an entry that could not be written), once each.</summary>
    public IReadOnlyList<string> TakeWarnings()
    {
        var taken = new List<string>();
        while (warnings.TryDequeue(out var warning)) taken.Add(warning);
        return taken;
    }

    /// <summary>
    /// The session for <paramref name="graph"/> (one whose weights lie in its <see cref="OnnxGraph.WeightFolder"/>): loaded
    /// from its entry when that is whole, else optimised from the graph, which also writes the entry.
    /// </summary>
    internal InferenceSession CreateSession(OnnxGraph graph, SessionSettings settings)
    {
        var bytes = graph.ToBytes();
        var entry = Locate(graph, bytes, settings);
        if (Directory.Exists(entry.Folder))
        {
            try
            {
                var session = Load(entry, settings);
                Interlocked.Increment(ref loaded);
                return session;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or JsonException or OnnxRuntimeException)
            {
                warnings.Enqueue($"The optimised session of {graph.Name} cached in {entry.Folder} is damaged ({Reason(e)}); it is optimised again and replaced.");
                TryDelete(entry.Folder);
            }
        }
        else if (StaleEntry(entry) is { } stale)
        {
            warnings.Enqueue($"The optimised session of {graph.Name} cached in {stale.Folder} was made for {WhatChanged(stale.Manifest, entry)}; it is optimised again and replaced.");
        }
        return Save(entry, graph, bytes, settings);
    }

    private InferenceSession Load(Entry entry, SessionSettings settings)
    {
        var manifestPath = Path.Combine(entry.Folder, ManifestFile);
        var manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(manifestPath), Json)
            ?? throw new InvalidDataException($"{manifestPath} is empty");
        if (manifest.Key != entry.Key) throw new InvalidDataException($"{manifestPath} is for another graph or weights");
        Verify(Path.Combine(entry.Folder, ModelFile), manifest.Model);
        if (manifest.Data is { } data) Verify(Path.Combine(entry.Folder, DataFile), data);
        using var options = OnnxModel.Options(settings, GraphOptimizationLevel.ORT_DISABLE_ALL);
        // From its path, so that ONNX Runtime maps the data file beside it rather than reading it into the heap.
        return new InferenceSession(Path.Combine(entry.Folder, ModelFile), options);
    }

    private InferenceSession Save(Entry entry, OnnxGraph graph, byte[] bytes, SessionSettings settings)
    {
        var temporary = Path.Combine(entry.Slot, $".{Path.GetFileName(entry.Folder)}.{Guid.NewGuid():N}{TemporarySuffix}");
        InferenceSession session;
        try
        {
            Directory.CreateDirectory(temporary);
            using var options = OnnxModel.Options(settings, settings.OptimizationLevel);
            options.OptimizedModelFilePath = Path.Combine(temporary, ModelFile);
            options.AddSessionConfigEntry("session.optimized_model_external_initializers_file_name", DataFile);
            options.AddSessionConfigEntry("session.optimized_model_external_initializers_min_size_in_bytes", "1024");
            options.AddSessionConfigEntry("session.save_external_prepacked_constant_initializers", "1");
            // ONNX Runtime warns that the saved graph is made for this hardware: the key names the CPU.
            options.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
            session = OnnxModel.FromGraph(bytes, graph.WeightFolder, options);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OnnxRuntimeException)
        {
            // The graph itself may be at fault: then the plain session fails too, with ONNX Runtime's own error.
            TryDelete(temporary);
            var plain = OnnxModel.FromGraph(bytes, graph.WeightFolder, settings);
            warnings.Enqueue($"The optimised session of {graph.Name} could not be kept in {entry.Slot} ({Reason(e)}); it is optimised again at every open. " +
                "Free some disk space or choose another folder for optimised sessions (SessionCachePath).");
            return plain;
        }
        try
        {
            Seal(temporary, entry, graph);
            Interlocked.Increment(ref saved);
            DeleteOtherEntries(entry);
            DeleteOrphanedSlots(entry.Slot);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Another open of the same graph may have put the entry in place meanwhile: then this copy is simply not needed.
            if (!Directory.Exists(entry.Folder))
                warnings.Enqueue($"The optimised session of {graph.Name} could not be kept in {entry.Slot} ({Reason(e)}); it is optimised again at the next open.");
        }
        finally
        {
            TryDelete(temporary);
        }
        return session;
    }

    /// <summary>Flushes what ONNX Runtime wrote, records its sizes and checksums, and renames the folder into place.</summary>
    private static void Seal(string temporary, Entry entry, OnnxGraph graph)
    {
        var model = Path.Combine(temporary, ModelFile);
        var data = Path.Combine(temporary, DataFile);
        if (File.Exists(data)) ExternalDataAlignment.Align(model, DataFile);
        var manifest = new Manifest(Format, entry.Key, graph.Name, entry.OnnxRuntime, entry.Cpu, entry.GraphHash, entry.Sources,
            Describe(model), File.Exists(data) ? Describe(data) : null, DateTime.UtcNow);
        using (var stream = new FileStream(Path.Combine(temporary, ManifestFile), FileMode.CreateNew, FileAccess.Write))
        {
            JsonSerializer.Serialize(stream, manifest, Json);
            stream.Flush(flushToDisk: true);
        }
        Directory.Move(temporary, entry.Folder);
    }

    private static StoredFile Describe(string path)
    {
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite)) stream.Flush(flushToDisk: true);
        var length = new FileInfo(path).Length;
        return new StoredFile(Path.GetFileName(path), length, FileChecksum.Of(path, length));
    }

    private static void Verify(string path, StoredFile expected)
    {
        var file = new FileInfo(path);
        if (!file.Exists) throw new InvalidDataException($"{expected.Name} is missing");
        if (file.Length != expected.Length) throw new InvalidDataException($"{expected.Name} has {file.Length} bytes, not {expected.Length}");
        if (FileChecksum.Of(path, file.Length) != expected.Checksum) throw new InvalidDataException($"{expected.Name} does not match its checksum");
    }

    private Entry Locate(OnnxGraph graph, byte[] bytes, SessionSettings settings)
    {
        var folder = graph.WeightFolder!;
        var sources = graph.ExternalFiles.Select(name =>
        {
            var file = new FileInfo(Path.Combine(folder, name));
            return new SourceFile(file.FullName, file.Length, file.LastWriteTimeUtc.Ticks);
        }).ToList();
        // What the graph is, apart from the state of its weights and of the software: the slot, where a new key replaces the old.
        var slotText = string.Join('|', graph.Signature, folder, string.Join(',', graph.ExternalFiles),
            settings.OptimizationLevel, settings.PrePackWeights ? "prepacked" : "unpacked");
        // Its CUDA build (OnnxRuntimeNative.CudaFolder) is told apart from the CPU build of the same version.
        var onnxRuntime = OrtEnv.Instance().GetVersionString() + (OrtEnv.Instance().GetAvailableProviders().Contains(CudaProvider.Name) ? " (CUDA build)" : "");
        var graphHash = Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
        var key = string.Join('|', Format, onnxRuntime, CpuIdentity.Value, slotText, graphHash,
            string.Join(',', sources.Select(s => $"{s.Path}:{s.Length}:{s.Modified}")));
        var slot = Path.Combine(Root, $"{Stem(graph.Name)}-{Hash(slotText, 16)}");
        return new Entry(slot, Path.Combine(slot, Hash(key, 16)), key, onnxRuntime, CpuIdentity.Value, graphHash, sources);
    }

    private static (string Folder, Manifest? Manifest)? StaleEntry(Entry entry)
    {
        if (!Directory.Exists(entry.Slot)) return null;
        foreach (var folder in Directory.EnumerateDirectories(entry.Slot))
        {
            if (folder.EndsWith(TemporarySuffix, StringComparison.Ordinal)) continue;
            return (folder, ReadManifest(folder));
        }
        return null;
    }

    private static string WhatChanged(Manifest? old, Entry entry)
    {
        if (old is null) return "an unknown state (its manifest cannot be read)";
        var changes = new List<string>();
        if (!old.Sources.SequenceEqual(entry.Sources)) changes.Add("other weights (its weight files changed)");
        if (old.OnnxRuntime != entry.OnnxRuntime) changes.Add($"ONNX Runtime {old.OnnxRuntime}, not {entry.OnnxRuntime}");
        if (old.Cpu != entry.Cpu) changes.Add("another CPU");
        if (old.Graph != entry.GraphHash) changes.Add("another graph (another engine version or network settings)");
        return changes.Count > 0 ? string.Join(", ", changes) : "another cache format";
    }

    private static Manifest? ReadManifest(string entryFolder)
    {
        try
        {
            return JsonSerializer.Deserialize<Manifest>(File.ReadAllText(Path.Combine(entryFolder, ManifestFile)), Json);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>The slot keeps only the current entry; a writer's temporary folder is left alone unless abandoned.</summary>
    private static void DeleteOtherEntries(Entry entry)
    {
        foreach (var folder in Directory.EnumerateDirectories(entry.Slot))
        {
            if (folder == entry.Folder) continue;
            if (folder.EndsWith(TemporarySuffix, StringComparison.Ordinal) && DateTime.UtcNow - Directory.GetLastWriteTimeUtc(folder) < AbandonedAfter) continue;
            TryDelete(folder);
        }
    }

    /// <summary>Slots whose weight files are all gone (a deleted or moved checkpoint) can never be used again.</summary>
    private void DeleteOrphanedSlots(string current)
    {
        foreach (var slot in Directory.EnumerateDirectories(Root))
        {
            if (slot == current) continue;
            var manifests = Directory.EnumerateDirectories(slot)
                .Where(f => !f.EndsWith(TemporarySuffix, StringComparison.Ordinal))
                .Select(ReadManifest)
                .ToList();
            if (manifests.Count > 0 && manifests.All(m => m is not null && m.Sources.All(s => !File.Exists(s.Path))))
                TryDelete(slot);
        }
    }

    private static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (IOException) { } // in use (Windows) or being written: left for a later open
        catch (UnauthorizedAccessException) { }
    }

    private static string Reason(Exception e) => e.Message.TrimEnd('.');

    /// <summary>
    /// What decides the kernels ONNX Runtime picks, and so the optimised graph (NCHWc blocks) and the packed layouts:
    /// the processor's model and feature flags.
    /// </summary>
    private static string DescribeCpu()
    {
        var parts = new List<string> { RuntimeInformation.ProcessArchitecture.ToString() };
        const string cpuinfo = "/proc/cpuinfo";
        if (File.Exists(cpuinfo))
        {
            // The first processor's block is enough: they are all alike.
            foreach (var line in File.ReadLines(cpuinfo).TakeWhile(l => l.Length > 0))
            {
                var name = line.Split(':')[0].Trim();
                if (name is "vendor_id" or "model name" or "flags" or "Features" or "CPU implementer" or "CPU part") parts.Add(line);
            }
        }
        else
        {
            parts.Add(Environment.GetEnvironmentVariable("PROCESSOR_IDENTIFIER") ?? "");
            parts.Add(string.Join(',', Avx2.IsSupported, Fma.IsSupported, Avx512F.IsSupported, Avx512BW.IsSupported, Avx512Vbmi.IsSupported,
                AdvSimd.IsSupported, Dp.IsSupported, Rdm.IsSupported));
        }
        return Hash(string.Join('\n', parts), 16);
    }

    private static string Stem(string name)
        => new(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').Take(48).ToArray());

    private static string Hash(string text, int hexDigits)
        => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..hexDigits].ToLowerInvariant();

    private sealed record Entry(string Slot, string Folder, string Key, string OnnxRuntime, string Cpu, string GraphHash, IReadOnlyList<SourceFile> Sources);

    private sealed record SourceFile(string Path, long Length, long Modified);

    private sealed record StoredFile(string Name, long Length, string Checksum);

    private sealed record Manifest(string Format, string Key, string Network, string OnnxRuntime, string Cpu, string Graph,
        IReadOnlyList<SourceFile> Sources, StoredFile Model, StoredFile? Data, DateTime Written);
}
