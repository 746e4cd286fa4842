using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;

namespace Mnemosyne.Engine.Models;

/// <summary>
/// Fetches a known model into the Hugging Face hub cache, in huggingface_hub's layout, so that
/// diffusers and Mnemosyne share the files. Each file is downloaded once into
/// <c>blobs/{etag}.incomplete</c> (resumed with Range after a broken connection or a cancelled
/// install), checked against the SHA-256 the hub declares for it (and the manifest's), and only then
/// renamed into <c>blobs/</c> and linked from <c>snapshots/{commit}/</c>. A lock file per blob keeps
/// concurrent installs of the same file, in this process or another, from writing it together.
/// </summary>
public sealed class ModelInstaller : IDisposable
{
    private const int BufferSize = 1 << 20;
    private readonly HubOptions options;
    private readonly HubClient client;

    /// <exception cref="ArgumentException">The cache root is a file.</exception>
    public ModelInstaller(HubOptions options)
    {
        // Caught here, not as a failed lock file after a round of retries.
        if (File.Exists(options.CacheRoot))
            throw new ArgumentException($"The model cache {options.CacheRoot} is a file, not a folder. Give the folder of a Hugging Face hub cache (or a new folder's path).");
        this.options = options;
        Cache = new HubCache(options.CacheRoot);
        client = new HubClient(options);
    }

    public HubCache Cache { get; }

    /// <summary>
    /// Makes every file of <paramref name="manifest"/> present in one snapshot. Files already there are
    /// not fetched again unless <paramref name="force"/>, which downloads and verifies them anew.
    /// </summary>
    /// <returns>The model as found afterwards (complete).</returns>
    public async Task<ModelStatus> InstallAsync(
        ModelManifest manifest, IProgress<ModelInstallProgress>? progress = null, bool force = false, CancellationToken cancellation = default)
    {
        var catalog = new ModelCatalog([manifest], Cache);
        var tracker = new ProgressTracker(manifest, progress);
        var before = catalog.Inspect(manifest);
        if (before.IsComplete && !force)
        {
            tracker.Finish(before);
            return before;
        }

        // A branch is resolved to a commit by the first answer; the rest are fetched from that commit,
        // so a push in the middle of an install cannot mix two revisions.
        var commit = manifest.IsPinned ? manifest.Revision : null;
        for (var index = 0; index < manifest.Files.Count; index++)
        {
            cancellation.ThrowIfCancellationRequested();
            var file = manifest.Files[index];
            tracker.BeginFile(index);
            if (!force && commit is not null && LocalLength(Cache.SnapshotFile(manifest.Repository, commit, file.Path)) is { } length
                && (file.Size is null || file.Size == length))
            {
                tracker.FileDone(length);
                continue;
            }
            tracker.Stage(ModelInstallStage.Resolving);
            var metadata = await client.ResolveAsync(manifest.Repository, commit ?? manifest.Revision, file.Path, cancellation).ConfigureAwait(false);
            if (commit is not null && metadata.Commit != commit)
                throw new HubRequestException(
                    $"{manifest.Repository}/{file.Path}: asked for commit {commit}, {options.Endpoint.Host} answered for {metadata.Commit}.");
            commit = metadata.Commit;
            CheckAgainstManifest(manifest, file, metadata);
            tracker.SetFileSize(metadata.Size);
            await FetchFileAsync(manifest, file, metadata, force, tracker, cancellation).ConfigureAwait(false);
        }

        if (!manifest.IsPinned) Cache.WriteRef(manifest.Repository, manifest.Revision, commit!);
        var after = catalog.Inspect(manifest);
        if (!after.IsComplete || after.Commit != commit)
            throw new HubRequestException(
                $"{manifest.Name}: after the install, {string.Join(", ", after.MissingFiles)} is still missing from snapshot {commit} in {Cache.Root}.");
        tracker.Finish(after);
        return after;
    }

    public void Dispose() => client.Dispose();

    private void CheckAgainstManifest(ModelManifest manifest, ModelFile file, HubFileMetadata metadata)
    {
        var source = manifest.SourcePath ?? manifest.Name;
        if (file.Size is { } size && size != metadata.Size)
            throw new ModelIntegrityException(
                $"{manifest.Repository}/{file.Path}: {options.Endpoint.Host} declares {metadata.Size} bytes at commit {metadata.Commit}, "
                + $"but the manifest {source} says {size}. The file upstream is not the one Mnemosyne knows (or HF_ENDPOINT serves another); nothing was downloaded.");
        if (file.Sha256 is { } sha256 && metadata.EtagIsSha256 && sha256 != metadata.Etag)
            throw new ModelIntegrityException(
                $"{manifest.Repository}/{file.Path}: {options.Endpoint.Host} declares SHA-256 {metadata.Etag} at commit {metadata.Commit}, "
                + $"but the manifest {source} says {sha256}. The file upstream is not the one Mnemosyne knows; nothing was downloaded.");
    }

    private async Task FetchFileAsync(
        ModelManifest manifest, ModelFile file, HubFileMetadata metadata, bool force, ProgressTracker tracker, CancellationToken cancellation)
    {
        var blob = Cache.BlobPath(manifest.Repository, metadata.Etag);
        var snapshotFile = Cache.SnapshotFile(manifest.Repository, metadata.Commit, file.Path);
        using (await AcquireLockAsync(Cache.LockPath(manifest.Repository, metadata.Etag), tracker, cancellation).ConfigureAwait(false))
        {
            // Under the lock, another install may have finished this blob while this one waited.
            if (force || LocalLength(blob) != metadata.Size)
            {
                var incomplete = blob + ".incomplete";
                if (force) File.Delete(incomplete);
                Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
                await DownloadAsync(manifest, file, metadata, incomplete, tracker, cancellation).ConfigureAwait(false);
                tracker.Stage(ModelInstallStage.Verifying);
                await VerifyAsync(manifest, file, metadata, incomplete, cancellation).ConfigureAwait(false);
                File.Move(incomplete, blob, overwrite: true);
            }
            else
            {
                tracker.SetFileBytes(metadata.Size);
            }
            HubCache.LinkSnapshotFile(blob, snapshotFile);
        }
        tracker.FileDone(metadata.Size);
    }

    /// <summary>Appends to <paramref name="incomplete"/> until it holds the whole file, resuming where it stops.</summary>
    private Task DownloadAsync(
        ModelManifest manifest, ModelFile file, HubFileMetadata metadata, string incomplete, ProgressTracker tracker, CancellationToken cancellation) =>
        client.WithRetriesAsync($"Downloading {manifest.Repository}/{file.Path}", async () =>
        {
            var offset = LocalLength(incomplete) ?? 0;
            if (offset > metadata.Size)
            {
                File.Delete(incomplete);
                offset = 0;
            }
            tracker.SetFileBytes(offset);
            if (offset == metadata.Size) return;

            using var response = await client.GetAsync(metadata.DownloadUri, offset, manifest.Repository, metadata.Commit, file.Path, cancellation)
                .ConfigureAwait(false);
            // 416: the server has nothing past what is already here; the hash check decides whether it is whole.
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable) return;
            var resumed = response.StatusCode == HttpStatusCode.PartialContent;
            if (resumed && response.Content.Headers.ContentRange?.From != offset)
                throw new HubRequestException(
                    $"{manifest.Repository}/{file.Path}: asked for bytes from {offset}, the server sent a range from {response.Content.Headers.ContentRange?.From}.");
            if (!resumed) offset = 0; // The server ignored the Range header and sends the whole file.
            tracker.SetFileBytes(offset);
            tracker.Stage(ModelInstallStage.Downloading);

            // Unbuffered: every chunk reaches the file at once, so a cancelled or killed install keeps what it received.
            await using var output = new FileStream(incomplete, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
            await using var input = await response.Content.ReadAsStreamAsync(cancellation).ConfigureAwait(false);
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            var buffer = new byte[BufferSize];
            while (true)
            {
                stall.CancelAfter(options.ReadTimeout);
                int read;
                try
                {
                    read = await input.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
                {
                    throw new TimeoutException($"No data for {options.ReadTimeout.TotalSeconds:0.###} s.");
                }
                if (read == 0) break;
                await output.WriteAsync(buffer.AsMemory(0, read), cancellation).ConfigureAwait(false);
                offset += read;
                if (offset > metadata.Size)
                {
                    await output.DisposeAsync().ConfigureAwait(false);
                    File.Delete(incomplete);
                    throw new ModelIntegrityException(
                        $"{manifest.Repository}/{file.Path}: the server sent more than the {metadata.Size} bytes it declared; the partial file was deleted.");
                }
                tracker.Downloaded(read, offset);
            }
            if (offset < metadata.Size)
                throw new IOException($"The connection closed after {offset} of {metadata.Size} bytes.");
        }, cancellation);

    private async Task VerifyAsync(ModelManifest manifest, ModelFile file, HubFileMetadata metadata, string incomplete, CancellationToken cancellation)
    {
        var length = LocalLength(incomplete) ?? 0;
        string? problem = null;
        if (length != metadata.Size)
        {
            problem = $"it has {length} bytes where {options.Endpoint.Host} declared {metadata.Size}";
        }
        else if (metadata.EtagIsSha256 || file.Sha256 is not null)
        {
            string actual;
            await using (var stream = new FileStream(incomplete, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.SequentialScan))
                actual = Convert.ToHexString(await SHA256.HashDataAsync(stream, cancellation).ConfigureAwait(false)).ToLowerInvariant();
            if (metadata.EtagIsSha256 && actual != metadata.Etag)
                problem = $"its SHA-256 is {actual}, but {options.Endpoint.Host} declares {metadata.Etag} (the LFS object id)";
            else if (file.Sha256 is { } expected && actual != expected)
                problem = $"its SHA-256 is {actual}, but the manifest {manifest.SourcePath ?? manifest.Name} says {expected}";
        }
        if (problem is null) return;
        File.Delete(incomplete);
        throw new ModelIntegrityException(
            $"{manifest.Repository}/{file.Path} at commit {metadata.Commit} failed verification: {problem}. "
            + "The download was deleted and nothing was added to the cache; run the install again, and if it fails the same way, the mirror or the file upstream is bad.");
    }

    /// <summary>
    /// Holds <c>{etag}.lock</c> open with no sharing: an exclusive lock (flock on Unix) that another
    /// process or thread cannot take until this one closes it, and that dies with its process.
    /// </summary>
    private static async Task<FileStream> AcquireLockAsync(string lockPath, ProgressTracker tracker, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        var waiting = false;
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(lockPath))
            {
                if (!waiting) tracker.Stage(ModelInstallStage.Waiting);
                waiting = true;
                await Task.Delay(TimeSpan.FromMilliseconds(100), cancellation).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The file's length (through links), or null when it is not there.</summary>
    private static long? LocalLength(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        var target = info.ResolveLinkTarget(returnFinalTarget: true);
        return target is null ? info.Length : target.Exists ? ((FileInfo)target).Length : null;
    }

    /// <summary>Turns byte counts into progress reports: the model's totals, a rate over the last seconds, an ETA.</summary>
    private sealed class ProgressTracker(ModelManifest manifest, IProgress<ModelInstallProgress>? progress)
    {
        private static readonly TimeSpan ReportInterval = TimeSpan.FromMilliseconds(250);
        private static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(5);
        private readonly long?[] sizes = manifest.Files.Select(file => file.Size).ToArray();
        private readonly Queue<(TimeSpan At, long Bytes)> samples = new();
        private readonly Stopwatch clock = Stopwatch.StartNew();
        private long finishedBytes;
        private long fileBytes;
        private long downloadedBytes;
        private int index;
        private ModelInstallStage stage = ModelInstallStage.Resolving;
        private TimeSpan? lastReport;

        public void BeginFile(int fileIndex)
        {
            index = fileIndex;
            fileBytes = 0;
        }

        public void SetFileSize(long size) => sizes[index] = size;

        public void SetFileBytes(long bytes) => fileBytes = bytes;

        public void Stage(ModelInstallStage value)
        {
            stage = value;
            Report(force: true);
        }

        public void Downloaded(int bytes, long fileTotal)
        {
            stage = ModelInstallStage.Downloading;
            fileBytes = fileTotal;
            downloadedBytes += bytes;
            samples.Enqueue((clock.Elapsed, downloadedBytes));
            while (samples.Count > 2 && clock.Elapsed - samples.Peek().At > RateWindow) samples.Dequeue();
            Report(force: false);
        }

        public void FileDone(long size)
        {
            sizes[index] ??= size;
            finishedBytes += size;
            fileBytes = 0;
        }

        public void Finish(ModelStatus status)
        {
            index = manifest.Files.Count - 1;
            finishedBytes = status.SizeBytes ?? finishedBytes;
            fileBytes = 0;
            for (var i = 0; i < sizes.Length; i++) sizes[i] ??= status.Files[i].LocalSize;
            stage = ModelInstallStage.Done;
            Report(force: true);
        }

        private void Report(bool force)
        {
            if (progress is null || (!force && lastReport is { } last && clock.Elapsed - last < ReportInterval)) return;
            lastReport = clock.Elapsed;
            long? total = sizes.Any(size => size is null) ? null : sizes.Sum(size => size!.Value);
            var rate = Rate();
            var done = finishedBytes + fileBytes;
            progress.Report(new ModelInstallProgress
            {
                Model = manifest.Name,
                File = manifest.Files[index].Path,
                FileNumber = index + 1,
                FileCount = manifest.Files.Count,
                Stage = stage,
                BytesDone = done,
                BytesTotal = total,
                BytesPerSecond = rate,
                Remaining = total is { } t && rate > 0 && stage == ModelInstallStage.Downloading
                    ? TimeSpan.FromSeconds(Math.Max(0, t - done) / rate)
                    : null,
            });
        }

        private double Rate()
        {
            if (samples.Count < 2) return 0;
            var (firstAt, firstBytes) = samples.Peek();
            var seconds = (clock.Elapsed - firstAt).TotalSeconds;
            return seconds > 0 ? (downloadedBytes - firstBytes) / seconds : 0;
        }
    }
}
