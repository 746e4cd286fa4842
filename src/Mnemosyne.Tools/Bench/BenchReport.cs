using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.Tools.Bench;

/// <summary>One timed thing: every run's seconds (the best is the figure), and the peak resident memory while it ran.</summary>
public sealed record Measurement(string Name, IReadOnlyList<double> Seconds, long PeakBytes)
{
    public WorkSummary? Work { get; init; }
    public string? Note { get; init; }
    public double Best => Seconds.Min();
}

/// <summary>What one phase process measured.</summary>
public sealed record PhaseResult(string Phase)
{
    public List<Measurement> Measurements { get; init; } = [];
    public List<MemorySample> Memory { get; init; } = [];
    public Dictionary<string, double> Values { get; init; } = [];
    public long ProcessPeakBytes { get; set; }
    public double[] LoadBefore { get; set; } = [];
    public double[] LoadAfter { get; set; } = [];
    public string? Error { get; set; }
}

/// <summary>diffusers on PyTorch (perf_torch.py): one guided UNet step per size.</summary>
public sealed record PeerResult(string Torch, int Threads, long Parameters, double InitSeconds, IReadOnlyList<PeerCase> Cases, double[] LoadBefore, double[] LoadAfter);

public sealed record PeerCase(int Pixels, IReadOnlyList<double> Seconds, double PeakRssGb)
{
    public double Best => Seconds.Min();
}

/// <summary>The machine the figures came from.</summary>
public sealed record Machine(string Cpu, int Cores, long MemoryBytes, string Os, string Runtime, string OnnxRuntime)
{
    public static Machine Describe()
    {
        var cpu = "unknown";
        var memory = 0L;
        if (File.Exists("/proc/cpuinfo"))
        {
            var info = File.ReadLines("/proc/cpuinfo").TakeWhile(l => l.Length > 0)
                .Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
                .GroupBy(p => p[0].Trim()).ToDictionary(g => g.Key, g => g.First()[1].Trim());
            var flags = info.GetValueOrDefault("flags", "").Split(' ');
            cpu = $"{info.GetValueOrDefault("model name", "unknown")} (family {info.GetValueOrDefault("cpu family")}, model {info.GetValueOrDefault("model")}"
                + (flags.Contains("avx512f") ? ", AVX-512" : "") + (flags.Contains("avx512_vnni") ? ", VNNI" : "")
                + (flags.Contains("hypervisor") ? ", virtual machine" : "") + ")";
        }
        if (File.Exists("/proc/meminfo"))
        {
            var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            memory = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        // The first touch of ONNX Runtime: its telemetry switch must be set before it.
        OnnxRuntimeNative.Register();
        return new Machine(cpu, Environment.ProcessorCount, memory, RuntimeInformation.OSDescription,
            RuntimeInformation.FrameworkDescription, OrtEnv.Instance().GetVersionString());
    }

    /// <summary>MemAvailable: what the kernel can give without swapping or killing; long.MaxValue where unknown.</summary>
    public static long AvailableMemoryBytes() => Engine.Onnx.NativeHeap.AvailableBytes() ?? long.MaxValue;

    /// <summary>The 1, 5 and 15 minute load averages: how busy the shared machine was.</summary>
    public static double[] LoadAverage()
        => File.Exists("/proc/loadavg")
            ? File.ReadAllText("/proc/loadavg").Split(' ').Take(3).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()
            : [];
}

/// <summary>The whole benchmark run, as written to bench-&lt;time&gt;.json.</summary>
public sealed record BenchReport
{
    public required Machine Machine { get; init; }
    public required BenchSettings Settings { get; init; }
    public required DateTimeOffset Started { get; init; }
    public DateTimeOffset Finished { get; set; }
    public double? CheckpointWriteSeconds { get; set; }
    public List<PhaseResult> Phases { get; init; } = [];
    public PeerResult? Peer { get; set; }
    public string? PeerError { get; set; }
    public List<UnetRate> UnetRates { get; init; } = [];
}

/// <summary>The figures the optimisation is judged by, per size: work, rate, fraction of the MatMul peak, and the peer.</summary>
public sealed record UnetRate(int Pixels, double Seconds, double Gflop, double GflopPerSecond, double FractionOfPeak,
    double ConvolutionShare, double LinearShare, double AttentionShare, double? PeerSeconds, double? PeerFractionOfPeak, double? SpeedupOverPeer);
