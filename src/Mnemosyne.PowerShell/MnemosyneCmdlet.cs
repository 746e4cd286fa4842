using System.Management.Automation;
using System.Threading.Channels;
using Mnemosyne.Engine;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>
/// What every Mnemosyne cmdlet shares: Ctrl+C as a CancellationToken, engine calls on a worker
/// thread (so that progress is written from the pipeline thread, where PowerShell requires it),
/// the open engine, the model catalog and resolver, and PowerShell paths turned into file-system paths.
/// </summary>
public abstract class MnemosyneCmdlet : PSCmdlet, IDisposable
{
    internal const string ModelVariable = "MNEMOSYNE_MODEL";
    internal const string IPAdapterVariable = "MNEMOSYNE_IP_ADAPTER";
    internal const string ImageEncoderVariable = "MNEMOSYNE_IMAGE_ENCODER";
    internal const string LoraFolderVariable = "MNEMOSYNE_LORA_PATH";

    private readonly CancellationTokenSource stopping = new();

    protected CancellationToken StopToken => stopping.Token;

    protected override void StopProcessing() => stopping.Cancel();

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the command holds; an override releases its own, then calls this.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing) stopping.Dispose();
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a worker thread and hands each report to <paramref name="onReport"/>
    /// on this thread. Ctrl+C cancels the work; the call returns only once the worker has finished,
    /// so the engine is never left running behind a stopped command.
    /// </summary>
    internal T RunOnWorker<T, TReport>(Func<IProgress<TReport>, CancellationToken, T> work, Action<TReport> onReport)
    {
        var reports = Channel.CreateUnbounded<TReport>(new UnboundedChannelOptions { SingleReader = true });
        var progress = new ChannelProgress<TReport>(reports.Writer);
        var token = stopping.Token;
        var task = Task.Run(() =>
        {
            try { return work(progress, token); }
            finally { reports.Writer.TryComplete(); }
        }, CancellationToken.None);
        try
        {
            while (reports.Reader.WaitToReadAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult())
            {
                while (reports.Reader.TryRead(out var report)) onReport(report);
            }
        }
        catch
        {
            // Writing to a stopping pipeline throws; the engine must still be stopped and waited for.
            stopping.Cancel();
            try { task.Wait(CancellationToken.None); } catch (AggregateException) { }
            throw;
        }
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>
    /// Writes a new progress record each time: PowerShell keeps the records it is given (a runspace's
    /// Progress stream holds them), so changing and rewriting one record would rewrite the earlier ones too.
    /// </summary>
    internal void ReportProgress(int activityId, string activity, string status, int percentComplete = -1,
        int secondsRemaining = -1, string? currentOperation = null, bool completed = false, int parentActivityId = -1)
    {
        WriteProgress(new ProgressRecord(activityId, activity, status)
        {
            ParentActivityId = parentActivityId,
            PercentComplete = percentComplete,
            SecondsRemaining = secondsRemaining,
            CurrentOperation = currentOperation,
            RecordType = completed ? ProgressRecordType.Completed : ProgressRecordType.Processing,
        });
    }

    internal T RunOnWorker<T>(Func<CancellationToken, T> work)
        => RunOnWorker<T, int>((_, token) => work(token), _ => { });

    /// <summary>What to do when the open engine has no IP-Adapter, for the commands that need one.</summary>
    internal const string NoIPAdapterAdvice =
        "Open it again with Open-MnemosyneEngine -IPAdapterPath <ip-adapter_sdxl_vit-h.safetensors> -ImageEncoderPath <image encoder folder>, " +
        $"or run Install-MnemosyneModel {ModelResolver.IpAdapterModel}, {ModelResolver.ImageEncoderModel} and open it again: they are then taken from the Hugging Face cache.";

    /// <summary>What to do when the open engine has no tiny decoder, for -Decoder Tiny and live previews.</summary>
    internal const string NoTinyDecoderAdvice =
        "Open it again with Open-MnemosyneEngine -TinyDecoderPath <madebyollin/taesdxl folder>, " +
        $"or run Install-MnemosyneModel {ModelResolver.TinyDecoderModel} and open it again: it is then taken from the Hugging Face cache.";

    /// <summary>
    /// A lease on the open engine. When none is open, opens the one that $env:MNEMOSYNE_MODEL names, else
    /// sdxl-base-1.0 from the Hugging Face cache (with the cached IP-Adapter when it is there); when neither
    /// is there, stops the command with a message that says what to do.
    /// </summary>
    internal EngineLease AcquireEngine()
    {
        if (ModuleState.TryAcquire() is { } open) return open;
        var model = Environment.GetEnvironmentVariable(ModelVariable);
        if (!string.IsNullOrWhiteSpace(model))
        {
            var options = ResolveEngineOptions(new ModelRequest
            {
                CheckpointPath = FileSystemPath(model),
                CheckpointSource = $"$env:{ModelVariable}",
                IpAdapterPath = OptionalPath(Environment.GetEnvironmentVariable(IPAdapterVariable)),
                ImageEncoderPath = OptionalPath(Environment.GetEnvironmentVariable(ImageEncoderVariable)),
            }, cachePath: null);
            return OpenEngine(options, $"$env:{ModelVariable}");
        }
        var resolver = OpenModelResolver(cachePath: null);
        var resolution = resolver.TryDefault();
        if (resolution is null)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"No Mnemosyne engine is open, and {ModelResolver.BaseModel} is not complete in the Hugging Face cache {resolver.Catalog.Cache.Root}. " +
                $"Either run Install-MnemosyneModel {ModelResolver.BaseModel}, {ModelResolver.IpAdapterModel}, {ModelResolver.ImageEncoderModel} " +
                "once, and it is opened from the cache when first needed; or open a checkpoint you have with " +
                "Open-MnemosyneEngine -Path <SDXL diffusers folder or single .safetensors file> (or -Model <name>), " +
                $"or set $env:{ModelVariable} to that path (and $env:{IPAdapterVariable} / $env:{ImageEncoderVariable}) to have it opened when first needed.",
                "NoEngineOpen", ErrorCategory.ResourceUnavailable, null));
        }
        foreach (var note in resolution!.Notes) WriteVerbose(note);
        return OpenEngine(resolution.Options, $"the Hugging Face cache ({ModelResolver.BaseModel})");
    }

    /// <summary>
    /// Opens an engine and makes it the module's open engine, replacing any other. With
    /// <paramref name="openedWhenNeeded"/> (where its options came from, when a command needs an engine and
    /// none is open) it leases one that another runspace opened meanwhile instead.
    /// </summary>
    internal EngineLease OpenEngine(EngineOptions options, string? openedWhenNeeded = null)
    {
        try
        {
            ModuleState.OpeningGate.Wait(StopToken);
        }
        catch (OperationCanceledException)
        {
            throw new PipelineStoppedException();
        }
        try
        {
            if (openedWhenNeeded is not null && ModuleState.TryAcquire() is { } opened) return opened;
            if (openedWhenNeeded is not null) WriteVerbose($"No engine is open; opening {options.CheckpointPath} from {openedWhenNeeded}.");
            const string activity = "Opening Mnemosyne engine";
            ReportProgress(ProgressActivityIds.Open, activity, options.CheckpointPath);
            SceneEngine engine;
            try
            {
                engine = RunOnWorker<SceneEngine, string>(
                    (log, token) => SceneEngine.Open(options, log, token),
                    message =>
                    {
                        WriteVerbose(message);
                        ReportProgress(ProgressActivityIds.Open, activity, message, currentOperation: options.CheckpointPath);
                    });
            }
            catch (Exception e) when (e is not PipelineStoppedException)
            {
                ThrowTerminatingError(ErrorRecords.From(e, "EngineOpenFailed", options.CheckpointPath));
                throw;
            }
            finally
            {
                ReportProgress(ProgressActivityIds.Open, activity, "Done", completed: true);
            }
            WriteEngineWarnings(engine);
            return ModuleState.Install(engine);
        }
        finally
        {
            ModuleState.OpeningGate.Release();
        }
    }

    /// <summary>
    /// What the engine's caches report (a session entry damaged or stale and replaced, one that could not be written, a
    /// damaged file of converted weights converted again).
    /// </summary>
    internal void WriteEngineWarnings(SceneEngine engine)
    {
        foreach (var warning in engine.SessionCache?.TakeWarnings() ?? []) WriteWarning(warning);
        foreach (var warning in ConvertedWeightCache.TakeWarnings()) WriteWarning(warning);
    }

    /// <summary>
    /// The options that open what <paramref name="request"/> names, as the engine's resolver decides them (which
    /// IP-Adapter, image encoder and base model go with the checkpoint); its notes are written as verbose messages
    /// and its warnings as warnings. A path or model that is not there stops the command with an ErrorRecord about
    /// it. <paramref name="cachePath"/> is the hub cache to look in (null: the environment's).
    /// </summary>
    internal EngineOptions ResolveEngineOptions(ModelRequest request, string? cachePath)
    {
        ModelResolution resolution;
        try
        {
            resolution = OpenModelResolver(cachePath).Resolve(request);
        }
        catch (Exception e) when (e is ModelPathException or ModelNotInstalledException or ArgumentException)
        {
            object? names = request.UnetModel is null ? request.Model : request.Model is null ? request.UnetModel : new[] { request.Model, request.UnetModel };
            ThrowTerminatingError(ErrorRecords.From(e, "InvalidModelName", names));
            throw;
        }
        foreach (var warning in resolution.Warnings) WriteWarning(warning);
        foreach (var note in resolution.Notes) WriteVerbose(note);
        return resolution.Options;
    }

    /// <summary>
    /// The known models over the hub cache <paramref name="cachePath"/> names (null: the environment's), read when first
    /// needed; a broken manifest folder or cache path then stops the command.
    /// </summary>
    internal ModelResolver OpenModelResolver(string? cachePath) => new(() => OpenModelCatalog(cachePath));

    internal ModelCatalog OpenModelCatalog(string? cachePath)
    {
        try
        {
            var catalog = ModelCatalog.Default(OptionalPath(cachePath));
            foreach (var warning in catalog.Warnings) WriteWarning(warning);
            return catalog;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(ErrorRecords.From(e, ErrorRecords.ModelCacheErrorId(e), cachePath ?? ModelCatalog.DefaultManifestFolder, ErrorCategory.WriteError));
            throw;
        }
    }

    /// <summary>A path that may be left out (null or blank) as a file-system path.</summary>
    internal string? OptionalPath(string? path) => string.IsNullOrWhiteSpace(path) ? null : FileSystemPath(path);

    /// <summary>A PowerShell path (relative to the current location, ~, a PSDrive) as a file-system path; need not exist.</summary>
    internal string FileSystemPath(string path)
    {
        var resolved = SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out var provider, out _);
        if (provider.ImplementingType != typeof(Microsoft.PowerShell.Commands.FileSystemProvider))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"{path} is not a file-system path ({provider.Name}). Give a path to a file or folder.",
                "NotAFileSystemPath", ErrorCategory.InvalidArgument, path));
        }
        return resolved;
    }

    /// <summary>
    /// True for a regular file; otherwise writes a non-terminating error: a named pipe or a device
    /// would block the session or read without end, and a broken link fails with a bare I/O error, so
    /// each is refused before it is opened.
    /// </summary>
    internal bool IsRegularFile(string file)
    {
        if (InputFiles.SpecialKind(file) is not { } kind) return true;
        WriteError(ErrorRecords.Create(
            $"{file} is {kind}, not a regular file that can be read. Give the path of a file on disk.",
            "NotARegularFile", ErrorCategory.InvalidArgument, file));
        return false;
    }

    /// <summary>
    /// The files a -Path argument names: wildcards are expanded unless a file has that literal name
    /// (names with [ ] are common for pictures). Writes a non-terminating error for a path that
    /// matches nothing and returns no files for it.
    /// </summary>
    internal IReadOnlyList<string> ResolveInputFiles(string path)
    {
        var literal = FileSystemPath(path);
        if (File.Exists(literal) || !WildcardPattern.ContainsWildcardCharacters(path))
        {
            if (File.Exists(literal)) return IsRegularFile(literal) ? [literal] : [];
            var message = Directory.Exists(literal)
                ? $"{literal} is a folder; give the files in it (for example {Path.Combine(literal, "*.png")})."
                : $"File not found: {literal}. Check the path (Get-ChildItem shows what is there).";
            WriteError(ErrorRecords.Create(message, "FileNotFound",
                Directory.Exists(literal) ? ErrorCategory.InvalidArgument : ErrorCategory.ObjectNotFound, literal));
            return [];
        }
        try
        {
            var matches = GetResolvedProviderPathFromPSPath(path, out _).Where(File.Exists).ToList();
            if (matches.Count > 0) return matches.Where(IsRegularFile).ToList();
        }
        catch (ItemNotFoundException)
        {
        }
        WriteError(ErrorRecords.Create($"No file matches {path}. Check the folder and the pattern (Get-ChildItem {path} lists what matches).", "FileNotFound", ErrorCategory.ObjectNotFound, path));
        return [];
    }
}

/// <summary>Hands progress reports from the worker thread to the pipeline thread.</summary>
internal sealed class ChannelProgress<T>(ChannelWriter<T> writer) : IProgress<T>
{
    public void Report(T value) => writer.TryWrite(value);
}

/// <summary>Reports of several kinds through one channel, so that they arrive in the order they were made.</summary>
internal sealed class ReportAs<T>(IProgress<object> reports) : IProgress<T> where T : notnull
{
    public void Report(T value) => reports.Report(value);
}

/// <summary>Distinct progress bars, so that opening the engine and making a scene show separately.</summary>
internal static class ProgressActivityIds
{
    public const int Open = 0x4d6e0001;
    public const int Scene = 0x4d6e0002;
    public const int Reference = 0x4d6e0003;
    public const int Install = 0x4d6e0004;
    /// <summary>A stream of scenes: the parent of each scene's bar.</summary>
    public const int Batch = 0x4d6e0005;
}
