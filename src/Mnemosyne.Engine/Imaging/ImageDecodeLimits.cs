namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// What an untrusted image may declare before it is decoded. The defaults allow any photograph
/// and refuse decompression bombs.
/// </summary>
public sealed record ImageDecodeLimits
{
    public static ImageDecodeLimits Default { get; } = new();

    /// <summary>Largest width or height, in pixels.</summary>
    public int MaxSide { get; init; } = 16384;

    /// <summary>Largest width × height (64 MP by default).</summary>
    public long MaxPixels { get; init; } = 64L * 1024 * 1024;

    /// <summary>Largest file, in bytes (at most <see cref="Array.MaxLength"/>: the file is read whole).</summary>
    public long MaxFileBytes { get; init; } = 256L * 1024 * 1024;

    internal void Validate()
    {
        if (MaxSide <= 0 || MaxPixels <= 0 || MaxFileBytes <= 0 || MaxFileBytes > Array.MaxLength)
            throw new ArgumentException(
                $"Image decode limits must be positive, and MaxFileBytes at most {Array.MaxLength} (MaxSide {MaxSide}, MaxPixels {MaxPixels}, MaxFileBytes {MaxFileBytes}).");
    }

    /// <summary>
    /// The most one buffer may take: a full frame of the widest pixel type decoded (16-bit RGBA,
    /// 8 bytes a pixel) plus headroom. A backstop for decoder bugs, since sizes are checked first.
    /// </summary>
    internal int AllocationLimitMegabytes => (int)Math.Min(int.MaxValue, Math.Max(64, MaxPixels * 8 / (1024 * 1024) + 16));
}
