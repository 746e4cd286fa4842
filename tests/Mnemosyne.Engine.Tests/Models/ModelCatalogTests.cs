using Mnemosyne.Engine.Models;
using static Mnemosyne.Engine.Tests.Models.ModelTestSupport;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>Finding models in a hub cache made the way huggingface_hub (diffusers) makes it, and using them in place.</summary>
public sealed class ModelCatalogTests : IDisposable
{
    private const string Repository = "tiny-org/tiny-sdxl";
    private const string OldCommit = "1111111111111111111111111111111111111111";
    private const string NewCommit = "2222222222222222222222222222222222222222";
    private readonly TemporaryFolder cache = new();
    private readonly byte[] weights = Bytes(1000, seed: 5);
    private readonly byte[] config = Bytes(40, seed: 6);

    public void Dispose() => cache.Dispose();

    [Fact]
    public void AModelInADiffusersCache_IsFoundInPlace_ThroughTheBranchRef()
    {
        WriteSnapshot(NewCommit, ("unet/config.json", config), ("unet/model.safetensors", weights));
        WriteRef("main", NewCommit);
        var manifest = Manifest(Repository, "main",
            new ModelFile("unet/config.json", config.Length, null), new ModelFile("unet/model.safetensors", weights.Length, null)) with { Entry = "unet" };

        var status = new ModelCatalog([manifest], new HubCache(cache.Path)).Inspect(manifest);

        var snapshot = Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl", "snapshots", NewCommit);
        Assert.True(status.IsComplete);
        Assert.Equal(snapshot, status.Path);
        Assert.Equal(NewCommit, status.Commit);
        Assert.Equal(Path.Combine(snapshot, "unet"), status.EntryPath);
        Assert.Equal(weights.Length + config.Length, status.SizeBytes);
        // In place: the status points at the snapshot's own link, nothing was copied.
        Assert.Equal(Path.Combine(snapshot, "unet", "model.safetensors"), status.Files[1].LocalPath);
        Assert.Equal(5, Directory.GetFiles(cache.Path, "*", SearchOption.AllDirectories).Length); // 2 blobs, 2 links, refs/main
    }

    [Fact]
    public void APinnedRevision_IsPreferred_AndOtherSnapshotsAreTriedWhenItIsAbsent()
    {
        WriteSnapshot(OldCommit, ("model.safetensors", weights));
        WriteSnapshot(NewCommit, ("model.safetensors", weights));
        WriteRef("main", NewCommit);
        var file = new ModelFile("model.safetensors", weights.Length, null);
        var catalog = new ModelCatalog([], new HubCache(cache.Path));

        Assert.Equal(OldCommit, catalog.Inspect(Manifest(Repository, OldCommit, file)).Commit);
        // The manifest's commit is not in the cache: the commit main points at has the files.
        Assert.Equal(NewCommit, catalog.Inspect(Manifest(Repository, "3333333333333333333333333333333333333333", file)).Commit);
    }

    [Fact]
    public void FilesCopiedInsteadOfLinked_AsOnWindowsWithoutSymlinks_AreFound()
    {
        var folder = Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl", "snapshots", NewCommit);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors"), weights);
        var manifest = Manifest(Repository, NewCommit, new ModelFile("model.safetensors", weights.Length, null));

        Assert.True(new ModelCatalog([manifest], new HubCache(cache.Path)).Inspect(manifest).IsComplete);
    }

    [Fact]
    public void MissingFilesWrongSizesAndDanglingLinks_MakeAModelIncomplete()
    {
        WriteSnapshot(NewCommit, ("a.safetensors", weights), ("b.json", config));
        var snapshot = Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl", "snapshots", NewCommit);
        File.CreateSymbolicLink(Path.Combine(snapshot, "c.bin"), "../../blobs/not-there");
        var manifest = Manifest(Repository, NewCommit,
            new ModelFile("a.safetensors", weights.Length + 1, null),
            new ModelFile("b.json", config.Length, null),
            new ModelFile("c.bin", null, null),
            new ModelFile("d.bin", 10, null));

        var status = new ModelCatalog([manifest], new HubCache(cache.Path)).Inspect(manifest);

        Assert.False(status.IsComplete);
        Assert.Equal(snapshot, status.Path);
        Assert.Equal(["a.safetensors", "c.bin", "d.bin"], status.MissingFiles);
        Assert.Null(status.MissingBytes);
    }

    [Fact]
    public void AModelNotInTheCache_HasNoPath_AndFindSaysHowToGetIt()
    {
        var manifest = Manifest(Repository, "main", new ModelFile("model.safetensors", 5, null));
        var catalog = new ModelCatalog([manifest], new HubCache(cache.Path));

        var status = catalog.Inspect(manifest);
        Assert.Null(status.Path);
        Assert.Null(status.EntryPath);
        Assert.Equal(5, status.MissingBytes);

        var error = Assert.Throws<FileNotFoundException>(() => catalog.Find("TEST-MODEL"));
        Assert.Contains("Install-MnemosyneModel test-model", error.Message);
        Assert.Contains("HF_HUB_CACHE", error.Message);
        Assert.Contains(cache.Path, error.Message);
        var unknown = Assert.Throws<UnknownModelException>(() => catalog.Find("sdxl-turbo"));
        Assert.Contains("Known models: test-model", unknown.Message);
    }

    [Fact]
    public void Find_ReturnsTheEntryOfACompleteModel()
    {
        WriteSnapshot(NewCommit, ("sdxl_models/adapter.safetensors", weights));
        var manifest = Manifest(Repository, NewCommit, new ModelFile("sdxl_models/adapter.safetensors", weights.Length, null))
            with { Entry = "sdxl_models/adapter.safetensors" };

        var found = new ModelCatalog([manifest], new HubCache(cache.Path)).Find("test-model");

        Assert.Equal(weights, File.ReadAllBytes(found.EntryPath!));
    }

    /// <summary>What huggingface_hub leaves: the content in blobs/{sha}, a relative link in snapshots/{commit}/.</summary>
    private void WriteSnapshot(string commit, params (string Path, byte[] Content)[] files)
    {
        var repository = Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl");
        foreach (var (path, content) in files)
        {
            var blob = Path.Combine(repository, "blobs", new HostedFile(content, lfs: true).Sha256);
            Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
            File.WriteAllBytes(blob, content);
            var link = Path.Combine(repository, "snapshots", commit, path);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
        }
    }

    private void WriteRef(string branch, string commit)
    {
        var refs = Path.Combine(cache.Path, "models--tiny-org--tiny-sdxl", "refs");
        Directory.CreateDirectory(refs);
        File.WriteAllText(Path.Combine(refs, branch), commit);
    }
}
