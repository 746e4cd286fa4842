using System.Globalization;
using System.Management.Automation;
using Mnemosyne.Engine.Models;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Downloads known models into the Hugging Face hub cache (the layout diffusers uses), resuming
/// interrupted files and verifying each against the SHA-256 the hub declares.
/// </summary>
[Cmdlet(VerbsLifecycle.Install, "MnemosyneModel", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, HelpUri = HelpUris.Readme + "install-mnemosynemodel")]
[OutputType(typeof(ModelStatus))]
public sealed class InstallMnemosyneModelCommand : MnemosyneCmdlet
{
    private ModelCatalog? catalog;
    private ModelInstaller? installer;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KnownModelCompleter))]
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
        catalog = OpenModelCatalog(CachePath);
        HubOptions environment;
        try
        {
            environment = HubEnvironment.FromProcess();
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorRecords.From(e, "InvalidHubEndpoint", Environment.GetEnvironmentVariable("HF_ENDPOINT")));
            throw;
        }
        var options = new HubOptions { CacheRoot = catalog.Cache.Root, Endpoint = environment.Endpoint, Token = environment.Token };
        try
        {
            installer = new ModelInstaller(options);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorRecords.From(e, "ModelCacheNotAFolder", options.CacheRoot));
            throw;
        }
        WriteVerbose($"Hub {options.Endpoint}, cache {options.CacheRoot}, {(options.Token is null ? "no token" : "with a token")}.");
    }

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
        {
            ModelManifest manifest;
            try
            {
                manifest = catalog!.Get(name);
            }
            catch (UnknownModelException e)
            {
                WriteError(ErrorRecords.From(e, "UnknownModel", name));
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

    protected override void Dispose(bool disposing)
    {
        if (disposing) installer?.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>Downloads on a worker thread, with its progress written here; Ctrl+C stops it.</summary>
    private void Install(ModelManifest manifest)
    {
        var activity = $"Installing {manifest.Name}";
        try
        {
            WriteObject(RunOnWorker<ModelStatus, ModelInstallProgress>(
                (progress, token) => installer!.InstallAsync(manifest, progress, Force, token).GetAwaiter().GetResult(),
                report => ReportProgress(ProgressActivityIds.Install, activity, report.Describe(),
                    percentComplete: report.Fraction is { } fraction ? (int)(fraction * 100) : -1,
                    secondsRemaining: report.Remaining is { } remaining ? (int)Math.Ceiling(remaining.TotalSeconds) : -1,
                    currentOperation: report.File)));
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            // A stopped install (Ctrl+C) is not an error: its partial file stays as blobs/*.incomplete and the next install resumes it.
            WriteError(ErrorRecords.From(e, ErrorRecords.ModelCacheErrorId(e), manifest.Name, ErrorCategory.WriteError));
        }
        finally
        {
            ReportProgress(ProgressActivityIds.Install, activity, "Done", completed: true);
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
}
