using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Testing;

namespace Mnemosyne.Tools.Bench;

/// <summary>What the benchmark runs; see build.ps1 Bench.</summary>
public sealed record BenchSettings
{
    [System.Text.Json.Serialization.JsonIgnore]
    public CheckpointShape Shape { get; init; } = CheckpointShape.Full;
    public string ShapeName => Shape.Name;
    /// <summary>ONNX Runtime threads; 0 = one per core (and the peer gets as many).</summary>
    public int Threads { get; init; }
    /// <summary>Float32, or Int8 for the UNet's linear layers (converted once, before the phases).</summary>
    public WeightPrecision Precision { get; init; }
    public int[] Sizes { get; init; } = [512, 1024];
    public int Steps { get; init; } = 4;
    public IReadOnlyList<string> Phases { get; init; } = BenchPhases.All;
    public required string OutputFolder { get; init; }
    /// <summary>Opens the engine with <see cref="Engine.Pipeline.EngineOptions.LowMemory"/>.</summary>
    public bool LowMemory { get; init; }
    /// <summary>
    /// Whether the phases other than "open-uncached", "open-caching" and "open-cached" (which measure it) keep and use
    /// optimised sessions (<see cref="Engine.Onnx.SessionCache"/>, under out/bench/sessions).
    /// </summary>
    public bool SessionCache { get; init; } = true;
    public bool Peer { get; init; }
    public string? PeerHarness { get; init; }
    public string? PeerVendor { get; init; }
    public string PeerPython { get; init; } = "/usr/bin/python3";
    /// <summary>The "engines" phase: scenes each engine process makes per configuration, and whether as -Quality Fast.</summary>
    public int Scenes { get; init; } = 3;
    public bool Fast { get; init; }

    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;

    public string CheckpointFolder => Path.Combine(OutputFolder, Shape == CheckpointShape.Tiny ? "tiny" : "sdxl-full");

    public void Validate()
    {
        if (Sizes.Length == 0 || Sizes.Any(s => s < 64 || s > 4096 || s % 64 != 0))
            throw new ArgumentException($"Sizes must be multiples of 64 from 64 to 4096; got {string.Join(", ", Sizes)}.");
        if (Steps is < 1 or > 1000) throw new ArgumentException($"Steps must be from 1 to 1000; got {Steps}.");
        if (Scenes is < 1 or > 1000) throw new ArgumentException($"Scenes must be from 1 to 1000; got {Scenes}.");
        if (Threads < 0) throw new ArgumentException($"Threads must be 0 (one per core) or more; got {Threads}.");
        var unknown = Phases.Except(BenchPhases.All).Except(BenchPhases.OnRequest).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"Unknown phase(s) {string.Join(", ", unknown)}: use any of {string.Join(", ", BenchPhases.All.Concat(BenchPhases.OnRequest))}.");
        if (Peer && Shape != CheckpointShape.Full)
            throw new ArgumentException("The peer always times the full-size SDXL UNet: compare it only with -Size Full.");
        if (Peer)
        {
            if (PeerHarness is null || !File.Exists(Path.Combine(PeerHarness, "perf_torch.py")))
                throw new FileNotFoundException($"The peer script perf_torch.py is not in '{PeerHarness}': pass the reference harness folder (shared/tools/reference-harness).");
            if (PeerVendor is null || !Directory.Exists(Path.Combine(PeerVendor, "diffusers")))
                throw new DirectoryNotFoundException($"diffusers v0.30.0 sources are not in '{PeerVendor}/diffusers': pass the harness's vendor folder (see its README).");
            if (!File.Exists(PeerPython))
                throw new FileNotFoundException($"Python for the peer not found at {PeerPython} (it needs Debian's python3-torch).", PeerPython);
        }
    }
}

/// <summary>
/// The speed and memory benchmark: makes a random full-size checkpoint once, runs each phase in a
/// child process (its own peak memory, nothing left loaded), optionally the PyTorch peer, then prints
/// a table and writes the JSON report.
/// </summary>
public static class Benchmark
{
    public const string PhaseCommand = "bench-phase";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    public static BenchReport Run(BenchSettings settings)
    {
        settings.Validate();
        var started = DateTimeOffset.Now;
        var stamp = started.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        var work = Path.GetFullPath(Path.Combine(settings.OutputFolder, "run-" + stamp));
        Directory.CreateDirectory(work);
        var report = new BenchReport { Machine = Machine.Describe(), Settings = settings, Started = started };
        Console.WriteLine($"Machine: {report.Machine.Cpu}, {report.Machine.Cores} cores, {Gb(report.Machine.MemoryBytes)} GB; load {Load(Machine.LoadAverage())}");

        report.CheckpointWriteSeconds = EnsureCheckpoint(settings);
        // The first Int8 open converts the UNet's weights: done here, so no phase times it as part of an open.
        if (settings.Precision != WeightPrecision.Float32)
        {
            Console.WriteLine($"Phase {BenchPhases.Convert} (load {Load(Machine.LoadAverage())})");
            report.Phases.Add(RunPhase(settings, BenchPhases.Convert, work, 0));
        }
        bool peerDone = false;
        foreach (var phase in BenchPhases.All.Concat(BenchPhases.OnRequest).Where(settings.Phases.Contains))
        {
            Console.WriteLine($"Phase {phase} (load {Load(Machine.LoadAverage())})");
            report.Phases.Add(RunPhase(settings, phase, work, phase == BenchPhases.Scene ? DecodeBytes(report, settings.Sizes.Max()) : 0));
            if (phase == BenchPhases.UnetStep && settings.Peer)
            {
                RunPeer(settings, work, report);
                peerDone = true;
            }
        }
        if (settings.Peer && !peerDone) RunPeer(settings, work, report);

        report.UnetRates.AddRange(Rates(settings, report));
        report.Finished = DateTimeOffset.Now;
        var path = Path.Combine(Path.GetFullPath(settings.OutputFolder), $"bench-{stamp}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(report, Json));
        Console.WriteLine();
        Console.Write(BenchTable.Format(report));
        Console.WriteLine($"Report: {path}");
        return report;
    }

    /// <summary>The phase process's entry point: measures, then writes its result for the parent.</summary>
    public static void RunPhaseHere(PhaseRequest request) => WriteResult(BenchPhases.Run(request), request.ResultPath);

    internal static void WriteResult(PhaseResult result, string path)
    {
        var partial = path + ".tmp";
        File.WriteAllText(partial, JsonSerializer.Serialize(result, Json));
        File.Move(partial, path, overwrite: true);
    }

    /// <summary>The best rate of the MatMul shapes measured in this run, GFLOP/s; NaN when none was.</summary>
    public static double PeakRate(BenchReport report)
        => report.Phases.SelectMany(p => p.Measurements)
            .Where(m => m.Name.StartsWith(BenchPhases.MatMulPrefix, StringComparison.Ordinal) && m.Work is not null)
            .Select(m => m.Work!.Gflop / m.Best)
            .DefaultIfEmpty(double.NaN)
            .Max();

    /// <summary>Writes the random checkpoint once; a half-written one (interrupted) is in a ".partial" folder and is redone.</summary>
    private static double? EnsureCheckpoint(BenchSettings settings)
    {
        var folder = Path.GetFullPath(settings.CheckpointFolder);
        if (File.Exists(Path.Combine(folder, "model_index.json"))) return null;
        var partial = folder + ".partial";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        Console.WriteLine($"Writing the {settings.Shape.Name} random checkpoint to {folder} (once; later runs reuse it)");
        var clock = Stopwatch.StartNew();
        RandomCheckpoint.Write(partial, settings.Shape, seed: 1, new Progress<string>(part => Console.WriteLine($"  writing {part}")));
        Directory.Move(partial, folder);
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>What a VAE decode at this size added to the VAE phase's memory (its peak over the loaded decoder).</summary>
    private static long DecodeBytes(BenchReport report, int size)
    {
        var vae = report.Phases.FirstOrDefault(p => p.Phase == BenchPhases.Vae && p.Error is null);
        var decode = vae?.Measurements.FirstOrDefault(m => m.Name == $"VAE decode {size}²");
        var loaded = vae?.Memory.FirstOrDefault(m => m.When == "after load");
        return decode is null || loaded is null ? 0 : Math.Max(0, decode.PeakBytes - loaded.Resident);
    }

    private static PhaseResult RunPhase(BenchSettings settings, string phase, string work, long decodeBytes)
    {
        var resultPath = Path.Combine(work, phase + ".json");
        var start = PhaseStartInfo(new PhaseRequest(phase, Path.GetFullPath(settings.CheckpointFolder), settings.Threads, settings.Sizes, settings.Steps,
            work, resultPath, decodeBytes, settings.LowMemory, settings.Precision, settings.SessionCache, settings.Scenes, settings.Fast));
        File.Delete(resultPath);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start a benchmark phase process.");
        process.WaitForExit();
        if (process.ExitCode == 0 && File.Exists(resultPath))
            return JsonSerializer.Deserialize<PhaseResult>(File.ReadAllText(resultPath), Json)!;
        var why = process.ExitCode == 137 ? " (killed: out of memory?)" : "";
        Console.WriteLine($"  phase {phase} failed: exit code {process.ExitCode}{why}");
        // What it measured before it ended is kept.
        var partial = File.Exists(resultPath) ? JsonSerializer.Deserialize<PhaseResult>(File.ReadAllText(resultPath), Json)! : new PhaseResult(phase);
        partial.Error = $"exit code {process.ExitCode}{why}";
        return partial;
    }

    /// <summary>This program again, as a process that measures <paramref name="request"/> (<see cref="RunPhaseHere"/>).</summary>
    internal static ProcessStartInfo PhaseStartInfo(PhaseRequest request)
    {
        var start = SelfStartInfo();
        foreach (var arg in new[]
        {
            PhaseCommand, "--phase", request.Phase, "--checkpoint", request.Checkpoint,
            "--threads", request.Threads.ToString(CultureInfo.InvariantCulture), "--precision", request.Precision.ToString(),
            "--sizes", string.Join(',', request.Sizes), "--steps", request.Steps.ToString(CultureInfo.InvariantCulture),
            "--work", request.WorkFolder, "--result", request.ResultPath, "--decode-bytes", request.DecodeBytes.ToString(CultureInfo.InvariantCulture),
            "--low-memory", request.LowMemory ? "true" : "false", "--session-cache", request.SessionCache ? "true" : "false",
            "--scenes", request.Scenes.ToString(CultureInfo.InvariantCulture), "--fast", request.Fast ? "true" : "false",
        }) start.ArgumentList.Add(arg);
        return start;
    }

    /// <summary>This program again: its apphost, or `dotnet Mnemosyne.Tools.dll` when run through dotnet.</summary>
    private static ProcessStartInfo SelfStartInfo()
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("The benchmark cannot find its own executable.");
        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet") start.ArgumentList.Add(typeof(Benchmark).Assembly.Location);
        return start;
    }

    /// <summary>perf_torch.py with the same threads and sizes, right after the UNet phase so both see the same machine.</summary>
    private static void RunPeer(BenchSettings settings, string work, BenchReport report)
    {
        var output = Path.Combine(work, "peer.json");
        var harness = Path.GetFullPath(settings.PeerHarness!);
        var start = new ProcessStartInfo(settings.PeerPython) { UseShellExecute = false, WorkingDirectory = harness };
        start.ArgumentList.Add("perf_torch.py");
        start.ArgumentList.Add(output);
        foreach (var size in settings.Sizes) start.ArgumentList.Add((size / 8).ToString(CultureInfo.InvariantCulture));
        start.Environment["PYTHONPATH"] = Path.Combine(harness, "stubs") + Path.PathSeparator + Path.GetFullPath(settings.PeerVendor!);
        start.Environment["THREADS"] = settings.EffectiveThreads.ToString(CultureInfo.InvariantCulture);
        Console.WriteLine($"Peer: diffusers on PyTorch, {settings.EffectiveThreads} threads (load {Load(Machine.LoadAverage())})");
        var loadBefore = Machine.LoadAverage();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {settings.PeerPython}.");
        process.WaitForExit();
        if (process.ExitCode != 0 || !File.Exists(output))
        {
            report.PeerError = $"perf_torch.py exit code {process.ExitCode}" + (process.ExitCode == 137 ? " (killed: out of memory?)" : "");
            Console.WriteLine("  " + report.PeerError);
            return;
        }
        using var document = JsonDocument.Parse(File.ReadAllText(output));
        var root = document.RootElement;
        report.Peer = new PeerResult(
            root.GetProperty("torch").GetString() ?? "",
            root.GetProperty("threads").GetInt32(),
            root.GetProperty("params").GetInt64(),
            root.GetProperty("init_s").GetDouble(),
            root.GetProperty("cases").EnumerateArray().Select(c => new PeerCase(
                c.GetProperty("pixels").GetInt32(),
                c.GetProperty("seconds").EnumerateArray().Select(s => s.GetDouble()).ToList(),
                c.GetProperty("peak_rss_gb").GetDouble())).ToList(),
            loadBefore, Machine.LoadAverage());
    }

    private static IEnumerable<UnetRate> Rates(BenchSettings settings, BenchReport report)
    {
        var measurements = report.Phases.SelectMany(p => p.Measurements).ToList();
        double peakRate = PeakRate(report);
        foreach (var size in settings.Sizes)
        {
            var step = measurements.FirstOrDefault(m => m.Name.StartsWith($"UNet step {size}²", StringComparison.Ordinal));
            if (step?.Work is not { } work) continue;
            var peer = report.Peer?.Cases.FirstOrDefault(c => c.Pixels == size);
            double rate = work.Gflop / step.Best;
            yield return new UnetRate(size, step.Best, work.Gflop, rate, rate / peakRate,
                work.ConvolutionGflop / work.Gflop, work.LinearGflop / work.Gflop, work.AttentionGflop / work.Gflop,
                peer?.Best, peer is null ? null : work.Gflop / peer.Best / peakRate, peer is null ? null : peer.Best / step.Best);
        }
    }

    internal static string Gb(double bytes) => (bytes / 1e9).ToString("0.00", CultureInfo.InvariantCulture);

    internal static string Load(double[] load) => string.Join(" ", load.Select(l => l.ToString("0.00", CultureInfo.InvariantCulture)));
}
