using Mnemosyne.Engine.Models;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>The environment variables, resolved as huggingface_hub resolves them (no process environment is touched).</summary>
public sealed class HubEnvironmentTests
{
    private static readonly string Home = Path.Combine(Path.GetTempPath(), "home-of-test-user");

    private static Func<string, string?> Variables(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void CacheRoot_DefaultsToDotCacheHuggingfaceHub() =>
        Assert.Equal(Path.Combine(Home, ".cache", "huggingface", "hub"), HubEnvironment.ResolveCacheRoot(Variables(), Home));

    [Fact]
    public void CacheRoot_FollowsXdgCacheHome() =>
        Assert.Equal(Path.Combine(Home, "xdg", "huggingface", "hub"),
            HubEnvironment.ResolveCacheRoot(Variables(("XDG_CACHE_HOME", Path.Combine(Home, "xdg"))), Home));

    [Fact]
    public void CacheRoot_IsHubUnderHfHome() =>
        Assert.Equal(Path.Combine(Home, "hf", "hub"),
            HubEnvironment.ResolveCacheRoot(Variables(("HF_HOME", "~/hf"), ("XDG_CACHE_HOME", "/elsewhere")), Home));

    [Fact]
    public void CacheRoot_IsHfHubCacheAboveAllElse() =>
        Assert.Equal(Path.Combine(Home, "models"),
            HubEnvironment.ResolveCacheRoot(Variables(
                ("HF_HUB_CACHE", Path.Combine(Home, "models")), ("HUGGINGFACE_HUB_CACHE", "/old"), ("HF_HOME", "/hf")), Home));

    [Fact]
    public void CacheRoot_HonoursTheOlderHuggingfaceHubCache() =>
        Assert.Equal(Path.Combine(Home, "old"),
            HubEnvironment.ResolveCacheRoot(Variables(("HUGGINGFACE_HUB_CACHE", Path.Combine(Home, "old")), ("HF_HOME", "/hf")), Home));

    [Fact]
    public void Endpoint_IsHfEndpointWithoutItsTrailingSlash_OrTheHub()
    {
        Assert.Equal("https://huggingface.co/", HubEnvironment.ResolveEndpoint(Variables()).AbsoluteUri);
        Assert.Equal("http://127.0.0.1:8080/mirror", HubEnvironment.ResolveEndpoint(Variables(("HF_ENDPOINT", "http://127.0.0.1:8080/mirror/"))).AbsoluteUri);
        var error = Assert.Throws<ArgumentException>(() => HubEnvironment.ResolveEndpoint(Variables(("HF_ENDPOINT", "ftp://mirror"))));
        Assert.Contains("HF_ENDPOINT 'ftp://mirror'", error.Message);
    }

    [Fact]
    public void Token_IsHfToken_ElseTheLoginTokenFile_ElseNone()
    {
        using var home = new TemporaryFolder();
        Assert.Null(HubEnvironment.ResolveToken(Variables(("HF_HOME", home.Path)), home.Path));
        File.WriteAllText(Path.Combine(home.Path, "token"), "hf_FromFile\n");
        Assert.Equal("hf_FromFile", HubEnvironment.ResolveToken(Variables(("HF_HOME", home.Path)), home.Path));
        Assert.Equal("hf_FromVariable", HubEnvironment.ResolveToken(Variables(("HF_HOME", home.Path), ("HF_TOKEN", " hf_FromVariable ")), home.Path));
        var elsewhere = Path.Combine(home.Path, "other-token");
        File.WriteAllText(elsewhere, "hf_FromTokenPath");
        Assert.Equal("hf_FromTokenPath", HubEnvironment.ResolveToken(Variables(("HF_HOME", home.Path), ("HF_TOKEN_PATH", elsewhere)), home.Path));
    }

    [Fact]
    public void Options_ToStringHidesTheToken()
    {
        var options = new HubOptions { CacheRoot = Home, Token = "hf_Secret42" };
        Assert.DoesNotContain("hf_Secret42", options.ToString(), StringComparison.Ordinal);
        Assert.Contains("Token = set", options.ToString(), StringComparison.Ordinal);
    }
}
