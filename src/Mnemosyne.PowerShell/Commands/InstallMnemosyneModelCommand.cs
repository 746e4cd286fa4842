using System.Collections.Concurrent;
using System.Globalization;
using System.Management.Automation;
using Mnemosyne.Engine.Models;

namespace Mnemosyne.PowerShell;

/// <summary>
/// Downloads known models into the Hugging Face hub cache (the layout diffusers uses), resuming
/// interrupted files and verifying each against the SHA-256 the hub declares.
/// </summary>
[Cmdlet(VerbsLifecycle.Install, "MnemosyneModel", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ModelStatus))]
public sealed class InstallMnemosyneModelCommand : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private ModelCatalog? catalog;
    private ModelInstaller? installer;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = [];

    /// <summary>The hub cache to install into; by default the one huggingface_hub uses.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CachePath { get; set; }

    /// <summary>Download and verify every file again, even when the model is complete.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void BeginProcessing()
    {
        try
        {
            var environment = HubEnvironment.FromProcess();
            var options = new HubOptions
            {
                CacheRoot = ModelCommandSupport.ResolveCachePath(this, CachePath) ?? environment.CacheRoot,
                Endpoint = environment.Endpoint,
                Token = environment.Token,
            };
            catalog = new ModelCatalog(ModelManifest.LoadFolder(ModelCatalog.DefaultManifestFolder), new HubCache(options.CacheRoot));
            installer = new ModelInstaller(options);
            WriteVerbose($"Hub {options.Endpoint}, cache {options.CacheRoot}, {(options.Token is null ? "no token" : "with a token")}.");
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(ModelCommandSupport.ToErrorRecord(e, CachePath));
        }
    }

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
        {
            if (stopping.IsCancellationRequested) return;
            ModelManifest manifest;
            try
            {
                manifest = catalog!.Get(name);
            }
            catch (ArgumentException e)
            {
                WriteError(ModelCommandSupport.ToErrorRecord(e, name));
                continue;
            }
            var status = catalog.Inspect(manifest);
            if (status.IsComplete && !Force)
            {
                WriteVerbose($"{manifest.Name} is complete in {status.Path}; nothing to fetch (-Force fetches it again).");
                WriteObject(status);
                continue;
            }
            var files = Force ? status.Files : status.Files.Where(f => !f.IsPresent).ToList();
            foreach (var file in files) WriteVerbose($"{file.Path}: {(file.Size is { } size ? ByteSize.Format(size) : "size known at download time")}");
            var target = $"{manifest.Name} ({manifest.Repository}@{ShortRevision(manifest.Revision)})";
            if (!ShouldProcess(target, $"Download {files.Count} file{(files.Count == 1 ? "" : "s")}, {DescribeSize(files)}, into {catalog.Cache.Root}"))
                continue;
            Install(manifest);
        }
    }

    protected override void StopProcessing() => stopping.Cancel();

    public void Dispose()
    {
        installer?.Dispose();
        stopping.Dispose();
    }

    /// <summary>
    /// Runs the install on the thread pool and pumps its progress into Write-Progress here, on the
    /// pipeline thread, which is the only one allowed to write.
    /// </summary>
    private void Install(ModelManifest manifest)
    {
        var activity = $"Installing {manifest.Name}";
        using var reports = new BlockingCollection<ModelInstallProgress>();
        var install = Task.Run(() => installer!.InstallAsync(manifest, new QueueProgress(reports), Force, stopping.Token));
        install.ContinueWith(_ => reports.CompleteAdding(), TaskScheduler.Default);
        foreach (var report in reports.GetConsumingEnumerable())
        {
            WriteProgress(new ProgressRecord(1, activity, report.Describe())
            {
                CurrentOperation = report.File,
                PercentComplete = report.Fraction is { } fraction ? (int)(fraction * 100) : -1,
                SecondsRemaining = report.Remaining is { } remaining ? (int)Math.Ceiling(remaining.TotalSeconds) : -1,
            });
        }
        WriteProgress(new ProgressRecord(1, activity, "Done") { RecordType = ProgressRecordType.Completed });
        try
        {
            WriteObject(install.GetAwaiter().GetResult());
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Ctrl+C: the partial file stays as blobs/*.incomplete and the next install resumes it.
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            WriteError(ModelCommandSupport.ToErrorRecord(e, manifest.Name));
        }
    }

    private static string ShortRevision(string revision) => revision.Length == 40 ? revision[..7] : revision;

    private static string DescribeSize(IReadOnlyCollection<ModelFileStatus> files)
    {
        var known = files.Where(f => f.Size is not null).Sum(f => f.Size!.Value);
        var unknown = files.Count(f => f.Size is null);
        var knownText = string.Create(CultureInfo.InvariantCulture, $"{ByteSize.Format(known)} ({known:N0} bytes)");
        return unknown == 0 ? knownText
            : known == 0 ? "size known at download time"
            : $"{knownText} + {unknown} file{(unknown == 1 ? "" : "s")} whose size is known at download time";
    }

    private sealed class QueueProgress(BlockingCollection<ModelInstallProgress> reports) : IProgress<ModelInstallProgress>
    {
        public void Report(ModelInstallProgress value) => reports.Add(value);
    }
}
