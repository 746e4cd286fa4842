namespace Mnemosyne.Engine.Models;

/// <summary>
/// The Hugging Face hub cache layout, as huggingface_hub writes it:
/// <c>models--{org}--{name}/blobs/{etag}</c> holds each file's content once, named by its ETag (the
/// SHA-256 for LFS files, the git blob hash for others); <c>snapshots/{commit}/{path}</c> links to
/// the blob (a copy where links cannot be made); <c>refs/{branch}</c> holds the commit a branch
/// pointed to; <c>.locks/models--{org}--{name}/{etag}.lock</c> serialises writers of one blob.
/// </summary>
public sealed class HubCache
{
    public HubCache(string root)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        Root = Path.GetFullPath(root);
    }

    public string Root { get; }

    /// <summary>The cache huggingface_hub would use in this process (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface/hub).</summary>
    public static HubCache FromEnvironment() =>
        new(HubEnvironment.ResolveCacheRoot(Environment.GetEnvironmentVariable, HubEnvironment.UserHome()));

    public static string RepositoryFolderName(string repository) => "models--" + repository.Replace("/", "--", StringComparison.Ordinal);

    public string RepositoryFolder(string repository) => Path.Combine(Root, RepositoryFolderName(repository));

    public string SnapshotFolder(string repository, string commit) => Path.Combine(RepositoryFolder(repository), "snapshots", commit);

    public string SnapshotFile(string repository, string commit, string path) =>
        Path.Combine(SnapshotFolder(repository, commit), path.Replace('/', Path.DirectorySeparatorChar));

    public string BlobPath(string repository, string etag) => Path.Combine(RepositoryFolder(repository), "blobs", etag);

    public string LockPath(string repository, string etag) => Path.Combine(Root, ".locks", RepositoryFolderName(repository), etag + ".lock");

    /// <summary>The commit a branch pointed to when it was last fetched, or null.</summary>
    public string? ReadRef(string repository, string branch)
    {
        var path = Path.Combine(RepositoryFolder(repository), "refs", branch);
        if (!File.Exists(path)) return null;
        var commit = File.ReadAllText(path).Trim();
        return HubNames.IsCommitHash(commit) ? commit : null;
    }

    public void WriteRef(string repository, string branch, string commit)
    {
        var folder = Path.Combine(RepositoryFolder(repository), "refs");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, branch);
        // Written whole and then renamed, so a reader never sees half a hash.
        var temporary = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        File.WriteAllText(temporary, commit);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>The commits that have a snapshot folder, newest first.</summary>
    public IReadOnlyList<string> SnapshotCommits(string repository)
    {
        var folder = Path.Combine(RepositoryFolder(repository), "snapshots");
        if (!Directory.Exists(folder)) return [];
        return new DirectoryInfo(folder).GetDirectories()
            .Where(d => HubNames.IsCommitHash(d.Name))
            .OrderByDescending(d => d.LastWriteTimeUtc)
            .Select(d => d.Name)
            .ToList();
    }

    /// <summary>
    /// Makes <paramref name="snapshotFile"/> point at <paramref name="blob"/>: a relative symbolic link
    /// as huggingface_hub makes, or a copy where the file system or the user's rights allow no links
    /// (Windows without developer mode), as huggingface_hub falls back to.
    /// </summary>
    public static void LinkSnapshotFile(string blob, string snapshotFile)
    {
        var folder = Path.GetDirectoryName(snapshotFile)!;
        Directory.CreateDirectory(folder);
        if (File.Exists(snapshotFile) || new FileInfo(snapshotFile).LinkTarget is not null) File.Delete(snapshotFile);
        try
        {
            File.CreateSymbolicLink(snapshotFile, Path.GetRelativePath(folder, blob));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            var temporary = snapshotFile + "." + Guid.NewGuid().ToString("N") + ".tmp";
            File.Copy(blob, temporary);
            File.Move(temporary, snapshotFile, overwrite: true);
        }
    }
}
