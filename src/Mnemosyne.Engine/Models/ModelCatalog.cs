namespace Mnemosyne.Engine.Models;

/// <summary>One file of a known model as found (or not) in the cache.</summary>
public sealed record ModelFileStatus(string Path, long? Size, string? Sha256, string? LocalPath, long? LocalSize)
{
    /// <summary>There, and as large as the manifest says (where it says).</summary>
    public bool IsPresent => LocalSize is not null && (Size is null || Size == LocalSize);
}

/// <summary>A known model and where it was found: the snapshot folder it is used from, in place.</summary>
public sealed record ModelStatus
{
    public required ModelManifest Manifest { get; init; }

    public required IReadOnlyList<ModelFileStatus> Files { get; init; }

    /// <summary>The snapshot folder the files were found in; null when none of them was.</summary>
    public string? Path { get; init; }

    /// <summary>The commit of that snapshot.</summary>
    public string? Commit { get; init; }

    public string Name => Manifest.Name;

    public string Repository => Manifest.Repository;

    public string Revision => Manifest.Revision;

    public ModelRole Role => Manifest.Role;

    /// <summary>The file or folder the engine opens (the manifest's entry inside the snapshot); null when not found.</summary>
    public string? EntryPath => Path is null ? null
        : Manifest.Entry.Length == 0 ? Path
        : System.IO.Path.Combine(Path, Manifest.Entry.Replace('/', System.IO.Path.DirectorySeparatorChar));

    public bool IsComplete => Files.All(file => file.IsPresent);

    public IReadOnlyList<string> MissingFiles => Files.Where(file => !file.IsPresent).Select(file => file.Path).ToList();

    /// <summary>The model's size: the manifest's sizes, or the local ones where the manifest has none; null while any is unknown.</summary>
    public long? SizeBytes => Files.Any(f => (f.Size ?? f.LocalSize) is null) ? null : Files.Sum(f => (f.Size ?? f.LocalSize)!.Value);

    /// <summary>What a download would still fetch: the missing files' sizes; null while any is unknown.</summary>
    public long? MissingBytes => Files.Where(f => !f.IsPresent).Any(f => f.Size is null) ? null
        : Files.Where(f => !f.IsPresent).Sum(f => f.Size!.Value);
}

/// <summary>
/// The models Mnemosyne knows (the manifests in models/) and where each is in the Hugging Face hub
/// cache. Files are used where they are: nothing is copied.
/// </summary>
public sealed class ModelCatalog
{
    public ModelCatalog(IEnumerable<ModelManifest> manifests, HubCache cache)
    {
        Manifests = manifests.ToList();
        Cache = cache;
    }

    public IReadOnlyList<ModelManifest> Manifests { get; }

    public HubCache Cache { get; }

    /// <summary>Manifests left out (damaged, or a name used twice), one sentence each.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Names a folder of manifests to use instead of the shipped ones (other revisions, or models of one's own).</summary>
    public const string ManifestFolderVariable = "MNEMOSYNE_MODELS_PATH";

    /// <summary>The folder <see cref="ManifestFolderVariable"/> names, else the manifests that ship beside the engine (models/ next to Mnemosyne.Engine.dll).</summary>
    public static string DefaultManifestFolder =>
        Environment.GetEnvironmentVariable(ManifestFolderVariable) is { Length: > 0 } configured
            ? System.IO.Path.GetFullPath(configured)
            : System.IO.Path.Combine(System.IO.Path.GetDirectoryName(typeof(ModelCatalog).Assembly.Location)!, "models");

    /// <summary>The shipped manifests over the cache huggingface_hub would use in this process.</summary>
    public static ModelCatalog Default(string? cacheRoot = null)
    {
        var warnings = new List<string>();
        var manifests = ModelManifest.LoadFolder(DefaultManifestFolder, warnings.Add);
        return new(manifests, cacheRoot is null ? HubCache.FromEnvironment() : new HubCache(cacheRoot)) { Warnings = warnings };
    }

    /// <summary>The manifest named <paramref name="name"/> (case-insensitive).</summary>
    public ModelManifest Get(string name) =>
        Manifests.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new UnknownModelException(
            $"Mnemosyne knows no model named '{name}'. Known models: {string.Join(", ", Manifests.Select(m => m.Name))}.", name, nameof(name));

    public IReadOnlyList<ModelStatus> List() => Manifests.Select(Inspect).ToList();

    public ModelStatus Inspect(string name) => Inspect(Get(name));

    /// <summary>
    /// Looks for the model's files in its repository's snapshots: the pinned commit first, then the
    /// commit a ref (the manifest's branch, then main) names, then every other snapshot, newest
    /// first. The first complete snapshot wins; failing that, the one with most of the files.
    /// </summary>
    public ModelStatus Inspect(ModelManifest manifest)
    {
        ModelStatus? best = null;
        foreach (var commit in CandidateCommits(manifest))
        {
            var status = InspectSnapshot(manifest, commit);
            if (status.IsComplete) return status;
            if (best is null || status.Files.Count(f => f.IsPresent) > best.Files.Count(f => f.IsPresent)) best = status;
        }
        if (best is not null && best.Files.Any(f => f.IsPresent)) return best;
        return new ModelStatus
        {
            Manifest = manifest,
            Files = manifest.Files.Select(f => new ModelFileStatus(f.Path, f.Size, f.Sha256, null, null)).ToList(),
        };
    }

    /// <summary>The model's snapshot, complete, for the engine to open; a clear error saying how to get it otherwise.</summary>
    public ModelStatus Find(string name)
    {
        var status = Inspect(Get(name));
        if (status.IsComplete) return status;
        var found = status.Path is null ? "none of its files is" : $"{status.MissingFiles.Count} of its {status.Files.Count} files are not";
        throw new FileNotFoundException(
            $"Model '{status.Name}' ({status.Repository}) is not complete in the Hugging Face cache {Cache.Root}: {found} there "
            + $"(first missing: {status.MissingFiles[0]}). Run Install-MnemosyneModel {status.Name}, or point HF_HUB_CACHE or HF_HOME at a cache that has it.",
            status.MissingFiles[0]);
    }

    private IEnumerable<string> CandidateCommits(ModelManifest manifest)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var candidates = new List<string?>
        {
            manifest.IsPinned ? manifest.Revision : Cache.ReadRef(manifest.Repository, manifest.Revision),
            Cache.ReadRef(manifest.Repository, "main"),
        };
        candidates.AddRange(Cache.SnapshotCommits(manifest.Repository));
        foreach (var commit in candidates)
            if (commit is not null && seen.Add(commit) && Directory.Exists(Cache.SnapshotFolder(manifest.Repository, commit)))
                yield return commit;
    }

    private ModelStatus InspectSnapshot(ModelManifest manifest, string commit)
    {
        var files = manifest.Files.Select(file =>
        {
            var local = Cache.SnapshotFile(manifest.Repository, commit, file.Path);
            // FileInfo follows the snapshot's link to the blob; a dangling link counts as missing.
            var info = new FileInfo(local);
            return info.Exists && info.ResolveLinkTarget(returnFinalTarget: true) is var target && (target is null || target.Exists)
                ? new ModelFileStatus(file.Path, file.Size, file.Sha256, local, LengthThroughLinks(info))
                : new ModelFileStatus(file.Path, file.Size, file.Sha256, null, null);
        }).ToList();
        return new ModelStatus
        {
            Manifest = manifest,
            Files = files,
            Path = Cache.SnapshotFolder(manifest.Repository, commit),
            Commit = commit,
        };
    }

    private static long LengthThroughLinks(FileInfo info) =>
        info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target ? target.Length : info.Length;
}
