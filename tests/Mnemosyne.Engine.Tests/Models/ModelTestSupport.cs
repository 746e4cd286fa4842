using Mnemosyne.Engine.Models;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>A cache folder of its own for one test, removed afterwards.</summary>
public sealed class TemporaryFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("mnemosyne-models-").FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
public sealed class RecordingProgress<T>(Action<T>? onReport = null) : IProgress<T>
{
    private readonly List<T> reports = [];

    public IReadOnlyList<T> Reports
    {
        get
        {
            lock (reports) return reports.ToList();
        }
    }

    public void Report(T value)
    {
        lock (reports) reports.Add(value);
        onReport?.Invoke(value);
    }
}

internal static class ModelTestSupport
{
    public static ModelManifest Manifest(string repository, string revision, params ModelFile[] files) => new()
    {
        Name = "test-model",
        Description = "A model served by the fake hub.",
        Role = ModelRole.Pipeline,
        Repository = repository,
        Revision = revision,
        Files = files,
    };

    public static HubOptions Options(string cacheRoot, FakeHub hub, string? token = null, int maxAttempts = 4, TimeSpan? readTimeout = null) => new()
    {
        CacheRoot = cacheRoot,
        Endpoint = hub.Endpoint,
        Token = token,
        MaxAttempts = maxAttempts,
        RetryDelay = TimeSpan.FromMilliseconds(10),
        ReadTimeout = readTimeout ?? TimeSpan.FromSeconds(30),
    };

    /// <summary>Deterministic bytes, different per seed.</summary>
    public static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Every file under the cache, relative, '/'-separated, sorted (links listed as files).</summary>
    public static IReadOnlyList<string> CacheFiles(string root) =>
        Directory.Exists(root)
            ? Directory.GetFiles(root, "*", SearchOption.AllDirectories)
                .Select(f => System.IO.Path.GetRelativePath(root, f).Replace('\\', '/'))
                .Order(StringComparer.Ordinal).ToList()
            : [];
}
