using System.Globalization;

namespace Mnemosyne.Engine.Models;

public enum ModelInstallStage
{
    /// <summary>Asking the hub what the file is (size, hash, commit).</summary>
    Resolving,
    Downloading,
    /// <summary>Hashing the bytes already on disk before resuming, or the finished file.</summary>
    Verifying,
    /// <summary>Waiting for another install of the same file to finish.</summary>
    Waiting,
    Done,
}

/// <summary>Where an install stands: the model's bytes so far, the rate this session and the time left.</summary>
public sealed record ModelInstallProgress
{
    public required string Model { get; init; }

    /// <summary>The file being worked on (its repository path).</summary>
    public required string File { get; init; }

    /// <summary>1-based.</summary>
    public required int FileNumber { get; init; }

    public required int FileCount { get; init; }

    public required ModelInstallStage Stage { get; init; }

    /// <summary>Bytes of the model on disk: files already there plus what has been downloaded.</summary>
    public required long BytesDone { get; init; }

    /// <summary>The model's size; null while some file's size is not known yet.</summary>
    public long? BytesTotal { get; init; }

    /// <summary>Download rate over the last few seconds; 0 before any byte arrived.</summary>
    public double BytesPerSecond { get; init; }

    /// <summary>At the current rate; null when the rate or the total is unknown.</summary>
    public TimeSpan? Remaining { get; init; }

    public double? Fraction => BytesTotal is > 0 ? Math.Clamp((double)BytesDone / BytesTotal.Value, 0, 1) : null;

    /// <summary>"unet/diffusion_pytorch_model.fp16.safetensors (3/18): 1.20 GB of 6.94 GB at 45.3 MB/s, 2 min 7 s left".</summary>
    public string Describe()
    {
        var text = $"{File} ({FileNumber}/{FileCount}): {ByteSize.Format(BytesDone)}";
        if (BytesTotal is { } total) text += $" of {ByteSize.Format(total)}";
        if (Stage != ModelInstallStage.Downloading) return $"{text}, {Stage.ToString().ToLowerInvariant()}";
        if (BytesPerSecond > 0) text += $" at {ByteSize.Format((long)BytesPerSecond)}/s";
        if (Remaining is { } remaining) text += $", {FormatDuration(remaining)} left";
        return text;
    }

    private static string FormatDuration(TimeSpan span) =>
        span.TotalHours >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours} h {span.Minutes} min")
        : span.TotalMinutes >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{span.Minutes} min {span.Seconds} s")
        : string.Create(CultureInfo.InvariantCulture, $"{Math.Max(span.Seconds, 1)} s");
}

/// <summary>Decimal (SI) byte sizes, as the hub shows them: 5.14 GB, 698 MB.</summary>
public static class ByteSize
{
    public static string Format(long bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1000 && unit < units.Length - 1)
        {
            value /= 1000;
            unit++;
        }
        var format = unit == 0 ? "0" : value >= 100 ? "0" : value >= 10 ? "0.0" : "0.00";
        return value.ToString(format, CultureInfo.InvariantCulture) + " " + units[unit];
    }
}
