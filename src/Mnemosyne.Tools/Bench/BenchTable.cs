using System.Globalization;
using System.Text;

namespace Mnemosyne.Tools.Bench;

/// <summary>The report as Markdown tables, ready for the README.</summary>
public static class BenchTable
{
    public static string Format(BenchReport report)
    {
        var text = new StringBuilder();
        var peakRate = Benchmark.PeakRate(report);
        text.AppendLine($"Machine: {report.Machine.Cpu}, {report.Machine.Cores} cores, {Benchmark.Gb(report.Machine.MemoryBytes)} GB; "
            + $"ONNX Runtime {report.Machine.OnnxRuntime}, {report.Machine.Runtime}; {report.Settings.EffectiveThreads} threads; {report.Settings.Precision}; "
            + $"checkpoint {report.Settings.ShapeName}; {report.Started:yyyy-MM-dd HH:mm}");
        text.AppendLine();
        text.AppendLine("| Measure | Time | Work | Rate | Peak RSS | Note |");
        text.AppendLine("|---|---:|---:|---:|---:|---|");
        foreach (var phase in report.Phases)
        {
            if (phase.Error is not null)
                text.AppendLine($"| phase {phase.Phase} | failed | | | | {phase.Error}; measured before that: {phase.Measurements.Count} |");
            foreach (var m in phase.Measurements)
            {
                var work = m.Work is { } w ? Flop(w.Gflop) : "";
                var rate = m.Work is { Gflop: > 0 } r ? Rate(r.Gflop / m.Best, peakRate, m.Name.StartsWith(BenchPhases.MatMulPrefix, StringComparison.Ordinal)) : "";
                text.AppendLine($"| {m.Name} | {Seconds(m.Seconds)} | {work} | {rate} | {Benchmark.Gb(m.PeakBytes)} GB | {Note(phase, m)} |");
            }
        }
        if (report.Peer is { } peer)
            foreach (var c in peer.Cases)
                text.AppendLine($"| peer: diffusers UNet step {c.Pixels}² (PyTorch {peer.Torch}) | {Seconds(c.Seconds)} | | | {c.PeakRssGb:0.00} GB | process peak so far |");
        else if (report.PeerError is not null)
            text.AppendLine($"| peer | failed | | | | {report.PeerError} |");

        if (report.UnetRates.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("| UNet step (batch 2) | Mnemosyne | work (conv / linear / attention) | rate | of MatMul peak | peer | peer of peak | speed vs peer |");
            text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var u in report.UnetRates)
                text.AppendLine($"| {u.Pixels}² | {u.Seconds:0.0} s | {Flop(u.Gflop)} ({u.ConvolutionShare:P0} / {u.LinearShare:P0} / {u.AttentionShare:P0}) | "
                    + $"{u.GflopPerSecond:0} GFLOP/s | {u.FractionOfPeak:P0} | {(u.PeerSeconds is { } p ? $"{p:0.0} s" : "–")} | "
                    + $"{(u.PeerFractionOfPeak is { } f ? f.ToString("P0", CultureInfo.InvariantCulture) : "–")} | {(u.SpeedupOverPeer is { } s ? $"{s:0.00}×" : "–")} |");
        }

        var largest = report.Phases.SelectMany(p => p.Measurements).Where(m => m.Name.StartsWith("UNet step", StringComparison.Ordinal) && m.Work is not null).LastOrDefault();
        if (largest?.Work is { } breakdown)
        {
            text.AppendLine();
            text.AppendLine($"{largest.Name}, by operator (profiled kernels: {breakdown.KernelSeconds:0.0} s of {breakdown.RunSeconds:0.0} s run):");
            text.AppendLine();
            text.AppendLine("| Operator | Kernels | Time | Share | Work | Rate |");
            text.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var s in breakdown.ByOperator.Where(s => s.Seconds >= 0.001 * breakdown.KernelSeconds))
                text.AppendLine($"| {s.OpType} | {s.Kernels} | {s.Seconds:0.00} s | {s.Seconds / breakdown.KernelSeconds:P1} | "
                    + $"{(s.Gflop > 0 ? Flop(s.Gflop) : "")} | {(s.Gflop > 0 ? $"{s.GflopPerSecond:0} GFLOP/s" : "")} |");
        }

        text.AppendLine();
        text.AppendLine("| Phase | Memory sample | RSS | anonymous | file-backed |");
        text.AppendLine("|---|---|---:|---:|---:|");
        foreach (var phase in report.Phases)
            foreach (var m in phase.Memory.Where(m => new[] { "load", "open", "scene step" }.Any(w => m.When.Contains(w, StringComparison.Ordinal))))
                text.AppendLine($"| {phase.Phase} | {m.When} | {Benchmark.Gb(m.Resident)} GB | {Benchmark.Gb(m.Anonymous)} GB | {Benchmark.Gb(m.FileBacked)} GB |");

        text.AppendLine();
        text.AppendLine("Load average (1/5/15 min) at each phase's start and end: "
            + string.Join("; ", report.Phases.Select(p => $"{p.Phase} {Benchmark.Load(p.LoadBefore)} → {Benchmark.Load(p.LoadAfter)}"))
            + (report.Peer is { } q ? $"; peer {Benchmark.Load(q.LoadBefore)} → {Benchmark.Load(q.LoadAfter)}" : ""));
        return text.ToString();
    }

    private static string Note(PhaseResult phase, Measurement m)
    {
        var parts = new List<string>();
        if (m.Note is not null) parts.Add(m.Note);
        if (phase.Phase == BenchPhases.OpenCold && m.Name.Contains("open", StringComparison.Ordinal)
            && phase.Values.TryGetValue("checkpointBytes", out var total))
            parts.Add($"{Benchmark.Gb(total)} GB checkpoint; page cache held {Benchmark.Gb(phase.Values["pageCacheBytesBefore"])} GB, "
                + $"{Benchmark.Gb(phase.Values["pageCacheBytesAfterEviction"])} GB after eviction");
        if (phase.Phase == BenchPhases.Scene && m.Name.Contains("open", StringComparison.Ordinal)
            && phase.Values.TryGetValue("pageCacheBytesBefore", out var cached))
            parts.Add($"page cache held {Benchmark.Gb(cached)} GB of the checkpoint");
        if (m.Name.StartsWith("engine open", StringComparison.Ordinal))
        {
            var loads = phase.Values.Where(v => v.Key.StartsWith(m.Name + ": Loading ", StringComparison.Ordinal))
                .Select(v => $"{v.Key[(m.Name.Length + ": Loading ".Length)..]} {v.Value:0.0} s");
            parts.Add(string.Join(", ", loads));
        }
        return string.Join("; ", parts.Where(p => p.Length > 0));
    }

    private static string Seconds(IReadOnlyList<double> seconds)
        => string.Join(" / ", seconds.Select(s => s.ToString(s < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture))) + " s";

    private static string Flop(double gflop)
        => gflop >= 1000 ? $"{gflop / 1000:0.00} TFLOP" : $"{gflop:0.0} GFLOP";

    private static string Rate(double gflopPerSecond, double peak, bool isPeak)
        => isPeak || double.IsNaN(peak) ? $"{gflopPerSecond:0} GFLOP/s" : $"{gflopPerSecond:0} GFLOP/s ({gflopPerSecond / peak:P0})";
}
