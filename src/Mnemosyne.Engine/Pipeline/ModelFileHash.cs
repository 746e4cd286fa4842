using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// AUTOMATIC1111's short model hash (its "Model hash" setting, and what model sites list): the first 10 hex digits of
/// the SHA-256 of the whole weights file; and that SHA-256 itself, which model manifests pin. Hashing an SDXL checkpoint
/// reads gigabytes, so each file is hashed once per process, and again only when its length or time of last change differs.
/// </summary>
internal static class ModelFileHash
{
    public const int Length = 10;

    private static readonly ConcurrentDictionary<(string Path, long Length, DateTime Modified), string> Hashes = new();

    /// <summary>The short hash of the file; null when it cannot be read (the scene is still made; its text just lacks the hash).</summary>
    public static string? Of(string path) => Sha256Of(path)?[..Length];

    /// <summary>The SHA-256 of the whole file in lower-case hex; null when it cannot be read.</summary>
    public static string? Sha256Of(string path)
    {
        try
        {
            var file = new FileInfo(path);
            var key = (file.FullName, file.Length, file.LastWriteTimeUtc);
            if (Hashes.TryGetValue(key, out var known)) return known;
            using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 20);
            var hash = Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
            Hashes[key] = hash;
            return hash;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
