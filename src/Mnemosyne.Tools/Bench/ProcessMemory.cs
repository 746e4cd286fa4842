using System.Globalization;

namespace Mnemosyne.Tools.Bench;

/// <summary>Resident memory of this process as Linux reports it, in bytes.</summary>
/// <param name="Resident">VmRSS: everything resident now.</param>
/// <param name="Anonymous">RssAnon: heap and arenas, i.e. weights ONNX Runtime copied or pre-packed.</param>
/// <param name="FileBacked">RssFile: mapped files, e.g. external weights ONNX Runtime reads in place.</param>
/// <param name="Peak">VmHWM: the most resident since start or since the last <see cref="ProcessMemory.ResetPeak"/>.</param>
public sealed record MemorySample(string When, long Resident, long Anonymous, long FileBacked, long Peak);

/// <summary>
/// Reads /proc/self/status. The peak (VmHWM) can be reset by writing 5 to /proc/self/clear_refs, so
/// one process can report the peak of each stage; <see cref="ProcessPeak"/> keeps the highest seen.
/// </summary>
public sealed class ProcessMemory
{
    private long processPeak;

    public static bool Available => File.Exists("/proc/self/status");

    /// <summary>The highest VmHWM read so far, across resets: the process's own peak.</summary>
    public long ProcessPeak => Math.Max(processPeak, Read("now").Peak);

    public MemorySample Sample(string when)
    {
        var sample = Read(when);
        processPeak = Math.Max(processPeak, sample.Peak);
        return sample;
    }

    /// <summary>Starts a new peak from the current resident size (after recording the old one).</summary>
    public void ResetPeak()
    {
        Sample("before reset");
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Older kernels lack the reset; then every stage reports the process peak so far.
        }
    }

    /// <summary>
    /// The totals of /proc/&lt;pid&gt;/smaps_rollup in bytes (Rss, Pss, Shared_Clean, Shared_Dirty, Private_Clean, Private_Dirty, …): how
    /// much of a process's memory it shares with others (mapped weights) and how much is its own; empty where Linux does not say.
    /// </summary>
    public static Dictionary<string, long> Sharing(int processId)
    {
        var values = new Dictionary<string, long>();
        var path = $"/proc/{processId}/smaps_rollup";
        if (!File.Exists(path)) return values;
        foreach (var line in File.ReadLines(path))
        {
            var name = line.Split(':', 2)[0];
            if (line.EndsWith(" kB", StringComparison.Ordinal)) values[name] = Kilobytes(line);
        }
        return values;
    }

    private static MemorySample Read(string when)
    {
        if (!Available) return new MemorySample(when, 0, 0, 0, 0);
        long rss = 0, anon = 0, file = 0, hwm = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kilobytes(line);
            else if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anon = Kilobytes(line);
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal)) file = Kilobytes(line);
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) hwm = Kilobytes(line);
        }
        return new MemorySample(when, rss, anon, file, hwm);
    }

    private static long Kilobytes(string line)
    {
        var value = line[(line.IndexOf(':') + 1)..].Trim();
        return long.Parse(value.Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
