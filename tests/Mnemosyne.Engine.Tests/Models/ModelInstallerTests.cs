using System.Text;
using Mnemosyne.Engine.Models;
using static Mnemosyne.Engine.Tests.Models.ModelTestSupport;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>Installs against the loopback fake hub: layout, resume, verification, errors, retries, tokens, concurrency.</summary>
public sealed class ModelInstallerTests : IAsyncLifetime, IDisposable
{
    private const string Repository = "tiny-org/tiny-sdxl";
    private readonly TemporaryFolder cache = new();
    private readonly FakeHub hub = new();
    private readonly byte[] weights = Bytes(300_000, seed: 1);
    private readonly byte[] config = Encoding.UTF8.GetBytes("{\"_class_name\": \"UNet2DConditionModel\"}\n");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await hub.DisposeAsync();

    public void Dispose() => cache.Dispose();

    [Fact]
    public async Task Install_WritesTheHubCacheLayoutThatHuggingfaceHubWrites()
    {
        var weightsFile = hub.Add(Repository, "unet/diffusion_pytorch_model.safetensors", weights, lfs: true);
        var configFile = hub.Add(Repository, "unet/config.json", config, lfs: false);
        var manifest = Manifest(Repository, "main",
            new ModelFile("unet/config.json", config.Length, null),
            new ModelFile("unet/diffusion_pytorch_model.safetensors", weights.Length, weightsFile.Sha256));
        var progress = new RecordingProgress<ModelInstallProgress>();

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var status = await installer.InstallAsync(manifest, progress);

        var repositoryFolder = Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl");
        var snapshot = Path.Combine(repositoryFolder, "snapshots", FakeHub.Commit);
        Assert.True(status.IsComplete);
        Assert.Equal(snapshot, status.Path);
        Assert.Equal(FakeHub.Commit, status.Commit);
        // Blobs by ETag: the SHA-256 for the LFS file, the git blob hash for the small one.
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(repositoryFolder, "blobs", weightsFile.Sha256)));
        Assert.Equal(config, File.ReadAllBytes(Path.Combine(repositoryFolder, "blobs", configFile.GitSha1)));
        // Snapshot entries are relative links into blobs/, as huggingface_hub makes them.
        var weightsLink = new FileInfo(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.Equal($"../../../blobs/{weightsFile.Sha256}", weightsLink.LinkTarget);
        Assert.Equal(weights, File.ReadAllBytes(weightsLink.FullName));
        // A branch revision records the commit it resolved to.
        Assert.Equal(FakeHub.Commit, File.ReadAllText(Path.Combine(repositoryFolder, "refs", "main")));
        Assert.Equal(
            [
                ".locks/models--tiny-org--tiny-sdxl/" + configFile.GitSha1 + ".lock",
                ".locks/models--tiny-org--tiny-sdxl/" + weightsFile.Sha256 + ".lock",
                "models--tiny-org--tiny-sdxl/blobs/" + configFile.GitSha1,
                "models--tiny-org--tiny-sdxl/blobs/" + weightsFile.Sha256,
                "models--tiny-org--tiny-sdxl/refs/main",
                $"models--tiny-org--tiny-sdxl/snapshots/{FakeHub.Commit}/unet/config.json",
                $"models--tiny-org--tiny-sdxl/snapshots/{FakeHub.Commit}/unet/diffusion_pytorch_model.safetensors",
            ],
            CacheFiles(cache.Path));

        var last = progress.Reports[^1];
        Assert.Equal(ModelInstallStage.Done, last.Stage);
        Assert.Equal(weights.Length + config.Length, last.BytesDone);
        Assert.Equal(weights.Length + config.Length, last.BytesTotal);
        Assert.Contains(progress.Reports, p => p.Stage == ModelInstallStage.Downloading && p.File == "unet/diffusion_pytorch_model.safetensors");
    }

    [Fact]
    public async Task Install_SendsTheTokenToTheEndpointButNotToTheHostItRedirectsTo()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.RequiredToken = "hf_TestTokenAbc123";
        var manifest = Manifest(Repository, FakeHub.Commit, new ModelFile("model.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub, token: "hf_TestTokenAbc123"));
        var status = await installer.InstallAsync(manifest);

        Assert.True(status.IsComplete);
        var resolve = Assert.Single(hub.Requests, r => r.Path.Contains("/resolve/"));
        Assert.Equal("Bearer hf_TestTokenAbc123", resolve.Authorization);
        var download = Assert.Single(hub.CdnGets);
        Assert.StartsWith("localhost:", download.Host);
        Assert.Null(download.Authorization);
        // A pinned revision needs no ref, as with huggingface_hub.
        Assert.False(Directory.Exists(Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl", "refs")));
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(status.Path!, "model.safetensors")));
        Assert.Equal(file.Sha256, Path.GetFileName(new FileInfo(Path.Combine(status.Path!, "model.safetensors")).LinkTarget));
    }

    [Fact]
    public async Task Install_ResumesWithRangeAfterTheConnectionIsCut()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.CutNextBody(file, 100_000);
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", weights.Length, file.Sha256));

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var status = await installer.InstallAsync(manifest);

        Assert.True(status.IsComplete);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(status.Path!, "model.safetensors")));
        var gets = hub.CdnGets.ToList();
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Range);
        Assert.Equal("bytes=100000-", gets[1].Range);
        Assert.DoesNotContain(CacheFiles(cache.Path), f => f.EndsWith(".incomplete", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Cancelling_LeavesOnlyTheResumableIncompleteFile_AndTheNextInstallResumesIt()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.HoldBodyAfter = 120_000;
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", weights.Length, file.Sha256));
        var incomplete = Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl", "blobs", file.Sha256 + ".incomplete");
        using var cancel = new CancellationTokenSource();

        using (var installer = new ModelInstaller(Options(cache.Path, hub)))
        {
            var install = installer.InstallAsync(manifest, cancellation: cancel.Token);
            await hub.BodyHeld.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await WaitUntil(() => File.Exists(incomplete) && new FileInfo(incomplete).Length == 120_000);
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => install);
        }

        Assert.Equal(
            [
                ".locks/models--tiny-org--tiny-sdxl/" + file.Sha256 + ".lock",
                "models--tiny-org--tiny-sdxl/blobs/" + file.Sha256 + ".incomplete",
            ],
            CacheFiles(cache.Path));
        Assert.Equal(weights.AsSpan(0, 120_000).ToArray(), File.ReadAllBytes(incomplete));

        hub.HoldBodyAfter = null;
        using var again = new ModelInstaller(Options(cache.Path, hub));
        var status = await again.InstallAsync(manifest);
        Assert.True(status.IsComplete);
        Assert.Equal("bytes=120000-", hub.CdnGets.Last().Range);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(status.Path!, "model.safetensors")));
    }

    [Fact]
    public async Task AWrongHash_LeavesNothingBehind_AndSaysSo()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        var declared = new HostedFile(Bytes(weights.Length, seed: 2), lfs: true).Sha256;
        file.DeclaredEtag = declared;
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var error = await Assert.ThrowsAsync<ModelIntegrityException>(() => installer.InstallAsync(manifest));

        Assert.Contains($"its SHA-256 is {file.Sha256}", error.Message);
        Assert.Contains($"declares {declared}", error.Message);
        Assert.Contains("deleted", error.Message);
        Assert.Equal([".locks/models--tiny-org--tiny-sdxl/" + declared + ".lock"], CacheFiles(cache.Path));
    }

    [Fact]
    public async Task AHubFileThatIsNotTheManifestsOne_IsRefusedBeforeDownloading()
    {
        hub.Add(Repository, "model.safetensors", weights, lfs: true);
        var pinned = new HostedFile(Bytes(10, seed: 3), lfs: true).Sha256;
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", weights.Length, pinned));

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var error = await Assert.ThrowsAsync<ModelIntegrityException>(() => installer.InstallAsync(manifest));

        Assert.Contains($"the manifest test-model says {pinned}", error.Message);
        Assert.Empty(hub.CdnGets);
        Assert.Empty(CacheFiles(cache.Path));
    }

    [Fact]
    public async Task Unauthorized_IsAClearGatedOrTokenError()
    {
        hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.RequiredToken = "hf_RightToken";
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var error = await Assert.ThrowsAsync<HubAccessDeniedException>(() => installer.InstallAsync(manifest));

        Assert.Equal(401, error.StatusCode);
        Assert.Contains("gated or private", error.Message);
        Assert.Contains("set HF_TOKEN", error.Message);
        Assert.Empty(CacheFiles(cache.Path));
    }

    [Fact]
    public async Task Forbidden_SaysTheTokenWasNotAccepted()
    {
        hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.FailNext("/tiny-org/", 403, 1);
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub, token: "hf_NoAccessHere"));
        var error = await Assert.ThrowsAsync<HubAccessDeniedException>(() => installer.InstallAsync(manifest));

        Assert.Equal(403, error.StatusCode);
        Assert.Contains("A token was sent but not accepted", error.Message);
        Assert.Single(hub.Requests);
    }

    [Fact]
    public async Task NotFound_IsAClearError()
    {
        var manifest = Manifest(Repository, "main", new ModelFile("no/such/file.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var error = await Assert.ThrowsAsync<HubFileNotFoundException>(() => installer.InstallAsync(manifest));

        Assert.Contains("tiny-org/tiny-sdxl@main: no/such/file.safetensors", error.Message);
        Assert.Contains("404", error.Message);
        Assert.Equal("no/such/file.safetensors", error.FileName);
        Assert.Single(hub.Requests);
    }

    [Fact]
    public async Task ServerErrors_AreRetried_ThenTheInstallSucceeds()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.FailNext("/tiny-org/tiny-sdxl/resolve/", 500, 2);
        hub.FailNext("/cdn/", 503, 1);
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", weights.Length, file.Sha256));

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var status = await installer.InstallAsync(manifest);

        Assert.True(status.IsComplete);
        Assert.Equal(3, hub.Requests.Count(r => r.Method == "HEAD"));
        Assert.Equal(2, hub.CdnGets.Count());
    }

    [Fact]
    public async Task ServerErrors_GiveUpAfterTheLastAttempt()
    {
        hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.FailNext("/tiny-org/", 500, 10);
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub, maxAttempts: 3));
        var error = await Assert.ThrowsAsync<HubRequestException>(() => installer.InstallAsync(manifest));

        Assert.Contains("failed 3 times", error.Message);
        Assert.Contains("500", error.Message);
        Assert.Equal(3, hub.Requests.Count);
    }

    [Fact]
    public async Task AServerThatAcceptsButDoesNotAnswer_IsRetried_ThenTheInstallSucceeds()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.StallNext("/tiny-org/tiny-sdxl/resolve/", 1);
        hub.StallNext("/cdn/", 1);
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", weights.Length, file.Sha256));

        using var installer = new ModelInstaller(Options(cache.Path, hub, readTimeout: TimeSpan.FromMilliseconds(300)));
        var status = await installer.InstallAsync(manifest).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.True(status.IsComplete);
        // A stalled request is recorded when the hub has read it, which on a busy machine can come late.
        for (var waited = 0; (hub.Requests.Count(r => r.Method == "HEAD") < 2 || hub.CdnGets.Count() < 2) && waited < 5000; waited += 50) await Task.Delay(50);
        Assert.Equal(2, hub.Requests.Count(r => r.Method == "HEAD"));
        Assert.Equal(2, hub.CdnGets.Count());
    }

    [Fact]
    public async Task AServerThatNeverAnswers_GivesUpAfterTheLastAttempt_WithAClearError()
    {
        hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.StallNext("/tiny-org/", 10);
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub, maxAttempts: 3, readTimeout: TimeSpan.FromMilliseconds(300)));
        var error = await Assert.ThrowsAsync<HubRequestException>(() => installer.InstallAsync(manifest).WaitAsync(TimeSpan.FromSeconds(20)));

        Assert.Contains("failed 3 times", error.Message);
        Assert.Contains("did not answer within 0.3 s", error.Message);
        // The hub records a request when it has read it, which on a busy machine can come after the client gave up on it.
        for (var waited = 0; hub.Requests.Count < 3 && waited < 5000; waited += 50) await Task.Delay(50);
        Assert.Equal(3, hub.Requests.Count);
    }

    [Fact]
    public async Task TheToken_NeverAppearsInErrorsOrProgress()
    {
        const string token = "hf_NeverPrintMe0123456789";
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        var texts = new List<string>();
        var options = Options(cache.Path, hub, token: token, maxAttempts: 2);
        texts.Add(options.ToString());

        // A hostile server that echoes the credentials it got into its error messages.
        hub.EchoAuthorizationInErrors = true;
        hub.RequiredToken = "hf_SomeOtherToken";
        using (var installer = new ModelInstaller(options))
        {
            foreach (var path in new[] { "model.safetensors", "missing.bin" })
            {
                var error = await Assert.ThrowsAnyAsync<Exception>(() => installer.InstallAsync(Manifest(Repository, "main", new ModelFile(path, null, null))));
                texts.Add(error.ToString());
            }
            hub.RequiredToken = null;
            texts.Add((await Assert.ThrowsAsync<HubFileNotFoundException>(
                () => installer.InstallAsync(Manifest(Repository, "main", new ModelFile("missing.bin", null, null))))).ToString());
            hub.FailNext("/tiny-org/", 500, 2);
            texts.Add((await Assert.ThrowsAsync<HubRequestException>(
                () => installer.InstallAsync(Manifest(Repository, "main", new ModelFile("model.safetensors", null, null))))).ToString());

            var progress = new RecordingProgress<ModelInstallProgress>(p => texts.Add(p.Describe() + " " + p));
            file.DeclaredEtag = new HostedFile(Bytes(5, seed: 4), lfs: true).Sha256;
            texts.Add((await Assert.ThrowsAsync<ModelIntegrityException>(
                () => installer.InstallAsync(Manifest(Repository, "main", new ModelFile("model.safetensors", null, null)), progress))).ToString());
            file.DeclaredEtag = null;
            var status = await installer.InstallAsync(Manifest(Repository, "main", new ModelFile("model.safetensors", null, null)), progress);
            Assert.True(status.IsComplete);
        }

        Assert.Contains(hub.Requests, r => r.Authorization == "Bearer " + token);
        Assert.Contains(texts, t => t.Contains("Access denied for credentials 'Bearer ***'", StringComparison.Ordinal));
        Assert.All(texts, text => Assert.DoesNotContain(token, text, StringComparison.Ordinal));
        Assert.All(CacheFiles(cache.Path), path => Assert.DoesNotContain(token, File.ReadAllText(Path.Combine(cache.Path, path)), StringComparison.Ordinal));
    }

    [Fact]
    public async Task TwoConcurrentInstallsOfOneModel_DownloadEachFileOnce()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        hub.HoldBodyAfter = 50_000;
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", weights.Length, file.Sha256));
        var secondWaits = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        using var first = new ModelInstaller(Options(cache.Path, hub));
        using var second = new ModelInstaller(Options(cache.Path, hub));
        var firstInstall = first.InstallAsync(manifest);
        await hub.BodyHeld.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var secondInstall = second.InstallAsync(manifest, new RecordingProgress<ModelInstallProgress>(p =>
        {
            if (p.Stage == ModelInstallStage.Waiting) secondWaits.TrySetResult();
        }));
        await secondWaits.Task.WaitAsync(TimeSpan.FromSeconds(30));
        hub.ReleaseBody.TrySetResult();
        var statuses = await Task.WhenAll(firstInstall, secondInstall);

        Assert.All(statuses, status => Assert.True(status.IsComplete));
        Assert.Single(hub.CdnGets);
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(statuses[1].Path!, "model.safetensors")));
    }

    [Fact]
    public async Task AnEtagThatIsNotAFileName_IsRefused()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        file.DeclaredEtag = "../../../escape";
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", null, null));

        using var installer = new ModelInstaller(Options(cache.Path, hub));
        var error = await Assert.ThrowsAsync<HubRequestException>(() => installer.InstallAsync(manifest));

        Assert.Contains("no usable ETag", error.Message);
        Assert.Empty(CacheFiles(cache.Path));
    }

    [Fact]
    public async Task ACompleteModel_IsNotFetchedAgain_UnlessForced()
    {
        var file = hub.Add(Repository, "model.safetensors", weights, lfs: true);
        var manifest = Manifest(Repository, FakeHub.Commit, new ModelFile("model.safetensors", weights.Length, file.Sha256));
        using var installer = new ModelInstaller(Options(cache.Path, hub));
        await installer.InstallAsync(manifest);
        var requestsAfterFirst = hub.Requests.Count;

        var again = await installer.InstallAsync(manifest);
        Assert.True(again.IsComplete);
        Assert.Equal(requestsAfterFirst, hub.Requests.Count);

        var forced = await installer.InstallAsync(manifest, force: true);
        Assert.True(forced.IsComplete);
        Assert.Equal(2, hub.CdnGets.Count());
        Assert.Equal(weights, File.ReadAllBytes(Path.Combine(forced.Path!, "model.safetensors")));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (var i = 0; i < 600 && !condition(); i++) await Task.Delay(50);
        Assert.True(condition(), "The condition was not met within 30 s.");
    }
}
