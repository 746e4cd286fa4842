namespace Mnemosyne.Engine.Models;

/// <summary>
/// The environment variables huggingface_hub reads, resolved the way it resolves them, so that
/// Mnemosyne and diffusers look in the same cache, talk to the same endpoint and use the same token.
/// Each resolver takes the variables as a function so tests never touch the process environment.
/// </summary>
public static class HubEnvironment
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>
    /// HF_HUB_CACHE; else the older HUGGINGFACE_HUB_CACHE; else HF_HOME/hub, where HF_HOME defaults to
    /// $XDG_CACHE_HOME/huggingface and XDG_CACHE_HOME to ~/.cache.
    /// </summary>
    public static string ResolveCacheRoot(Func<string, string?> variable, string userHome)
    {
        var explicitCache = NonEmpty(variable("HF_HUB_CACHE")) ?? NonEmpty(variable("HUGGINGFACE_HUB_CACHE"));
        if (explicitCache is not null) return Path.GetFullPath(ExpandHome(explicitCache, userHome));
        return Path.GetFullPath(Path.Combine(ResolveHome(variable, userHome), "hub"));
    }

    /// <summary>HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.</summary>
    public static string ResolveHome(Func<string, string?> variable, string userHome)
    {
        var home = NonEmpty(variable("HF_HOME"));
        if (home is not null) return Path.GetFullPath(ExpandHome(home, userHome));
        var xdgCache = NonEmpty(variable("XDG_CACHE_HOME")) ?? Path.Combine(userHome, ".cache");
        return Path.GetFullPath(Path.Combine(ExpandHome(xdgCache, userHome), "huggingface"));
    }

    /// <summary>HF_ENDPOINT (a mirror, or a test server), else https://huggingface.co.</summary>
    public static Uri ResolveEndpoint(Func<string, string?> variable)
    {
        var endpoint = NonEmpty(variable("HF_ENDPOINT")) ?? DefaultEndpoint;
        if (!Uri.TryCreate(endpoint.TrimEnd('/'), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"HF_ENDPOINT '{endpoint}' is not an http(s) URL. Set it to one such as {DefaultEndpoint} (or a mirror's), or remove it.");
        return uri;
    }

    /// <summary>HF_TOKEN; else the token file (HF_TOKEN_PATH, else HF_HOME/token) that `hf auth login` writes; else none.</summary>
    public static string? ResolveToken(Func<string, string?> variable, string userHome)
    {
        var token = NonEmpty(variable("HF_TOKEN")?.Trim());
        if (token is not null) return token;
        var tokenPath = NonEmpty(variable("HF_TOKEN_PATH")) is { } configured
            ? ExpandHome(configured, userHome)
            : Path.Combine(ResolveHome(variable, userHome), "token");
        return File.Exists(tokenPath) ? NonEmpty(File.ReadAllText(tokenPath).Trim()) : null;
    }

    /// <summary>The calling process's own settings.</summary>
    public static HubOptions FromProcess()
    {
        var home = UserHome();
        return new HubOptions
        {
            CacheRoot = ResolveCacheRoot(Environment.GetEnvironmentVariable, home),
            Endpoint = ResolveEndpoint(Environment.GetEnvironmentVariable),
            Token = ResolveToken(Environment.GetEnvironmentVariable, home),
        };
    }

    internal static string UserHome() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static string ExpandHome(string path, string userHome) =>
        path == "~" ? userHome
        : path.StartsWith("~/", StringComparison.Ordinal) || path.StartsWith("~\\", StringComparison.Ordinal) ? Path.Combine(userHome, path[2..])
        : path;
}

/// <summary>Where the cache is, which hub to talk to and with what token, and how patiently.</summary>
public sealed class HubOptions
{
    public required string CacheRoot { get; init; }

    public Uri Endpoint { get; init; } = new(HubEnvironment.DefaultEndpoint);

    /// <summary>Sent as "Authorization: Bearer …" to the endpoint only, never to hosts it redirects to.</summary>
    public string? Token { get; init; }

    /// <summary>Tries per request before a server error (5xx, 429) or a broken connection is given up on.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>The wait after the first failure; it doubles after each further one.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long opening a connection may take before it counts as broken (and is retried).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a server may stay silent, before its answer's headers or between two reads of a body, before the
    /// connection counts as broken (and is retried). Idle time, not the whole download's.
    /// </summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Written by hand so that the token can never reach a log through a ToString.</summary>
    public override string ToString() =>
        $"HubOptions {{ CacheRoot = {CacheRoot}, Endpoint = {Endpoint}, Token = {(Token is null ? "none" : "set")} }}";
}
