using System.Management.Automation;
using System.Threading.Channels;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>
/// What every Mnemosyne cmdlet shares: Ctrl+C as a CancellationToken, engine calls on a worker
/// thread (so that progress is written from the pipeline thread, where PowerShell requires it),
/// the open engine, and PowerShell paths turned into file-system paths.
/// </summary>
public abstract class MnemosyneCmdlet : PSCmdlet, IDisposable
{
    internal const string ModelVariable = "MNEMOSYNE_MODEL";
    internal const string IPAdapterVariable = "MNEMOSYNE_IP_ADAPTER";
    internal const string ImageEncoderVariable = "MNEMOSYNE_IMAGE_ENCODER";

    private readonly CancellationTokenSource stopping = new();

    protected CancellationToken StopToken => stopping.Token;

    protected override void StopProcessing() => stopping.Cancel();

    public void Dispose()
    {
        stopping.Dispose();
        GC.SuppressFinalize(this);
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
        int secondsRemaining = -1, string? currentOperation = null, bool completed = false)
    {
        WriteProgress(new ProgressRecord(activityId, activity, status)
        {
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
            var options = ResolveEngineOptions(model, Environment.GetEnvironmentVariable(IPAdapterVariable),
                Environment.GetEnvironmentVariable(ImageEncoderVariable), threads: 0, $"$env:{ModelVariable}");
            return OpenEngine(WithTinyDecoder(options, tinyDecoder: null, cachePath: null), $"$env:{ModelVariable}");
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

    /// <summary>What the engine's session cache reports (an entry damaged or stale and replaced, one that could not be written).</summary>
    internal void WriteEngineWarnings(SceneEngine engine)
    {
        foreach (var warning in engine.SessionCache?.TakeWarnings() ?? []) WriteWarning(warning);
    }

    /// <summary>
    /// The options for a checkpoint path: a diffusers folder, or a single-file .safetensors checkpoint whose
    /// tokenizers and scheduler come from <paramref name="baseModel"/> or else the cached sdxl-base-1.0. The
    /// IP-Adapter is the one given, else the folder's ip-adapter/, else the cached one (see
    /// <see cref="WithIPAdapter"/>). <paramref name="source"/> names where the path came from, for messages;
    /// <paramref name="cachePath"/> is the hub cache to look in (null: the environment's).
    /// </summary>
    internal EngineOptions ResolveEngineOptions(string checkpoint, string? ipAdapter, string? imageEncoder, int threads, string source,
        string? baseModel = null, string? cachePath = null)
    {
        var checkpointPath = FileSystemPath(checkpoint);
        var isSingleFile = File.Exists(checkpointPath);
        if (isSingleFile && !checkpointPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"{checkpointPath} (from {source}) is not a .safetensors file. Give the folder of an SDXL checkpoint in the diffusers layout (the one with model_index.json), " +
                "or a single-file .safetensors checkpoint (.ckpt and other pickles can run code when loaded: convert them to safetensors first).",
                "CheckpointNotSupported", ErrorCategory.InvalidArgument, checkpointPath));
        }
        if (!isSingleFile && !Directory.Exists(checkpointPath))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"{checkpointPath} (from {source}) does not exist. Give the folder of an SDXL checkpoint in the diffusers layout (the one with model_index.json), " +
                "or a single-file .safetensors checkpoint.",
                "CheckpointNotFound", ErrorCategory.ObjectNotFound, checkpointPath));
        }
        if (!isSingleFile && baseModel is not null)
            WriteWarning($"-BaseModelPath is ignored: {checkpointPath} is a diffusers folder, which has its own tokenizers, scheduler and configs.");

        var options = new EngineOptions
        {
            CheckpointPath = checkpointPath,
            BaseModelPath = isSingleFile ? ResolveBaseModelPath(baseModel, checkpointPath, cachePath) : null,
            Threads = threads,
        };
        return WithIPAdapter(options, ipAdapter, imageEncoder, isSingleFile ? null : Path.Combine(checkpointPath, IPAdapterLayout.ConventionalFolder), cachePath);
    }

    /// <summary>
    /// Fills in the IP-Adapter and image encoder: the paths given (an encoder left out is looked for beside
    /// the adapter, in the h94/IP-Adapter layout: sdxl_models/ip-adapter_sdxl_vit-h.safetensors beside
    /// models/image_encoder); else the adapter in <paramref name="conventionalFolder"/>; else the cached
    /// ip-adapter-sdxl-vit-h and its encoder when both are complete. Without any, scenes have no references.
    /// </summary>
    internal EngineOptions WithIPAdapter(EngineOptions options, string? ipAdapter, string? imageEncoder, string? conventionalFolder, string? cachePath)
    {
        string? adapterFile = null;
        if (!string.IsNullOrWhiteSpace(ipAdapter))
        {
            var given = FileSystemPath(ipAdapter);
            adapterFile = IPAdapterLayout.FindAdapter(given);
            if (adapterFile is null)
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"No IP-Adapter at {given}. Give {IPAdapterLayout.AdapterFileName}, or the h94/IP-Adapter folder that holds sdxl_models/{IPAdapterLayout.AdapterFileName}.",
                    "IPAdapterNotFound", ErrorCategory.ObjectNotFound, given));
            }
        }
        else if (conventionalFolder is not null)
        {
            adapterFile = IPAdapterLayout.FindAdapter(conventionalFolder);
        }

        string? encoderFolder = null;
        if (!string.IsNullOrWhiteSpace(imageEncoder))
        {
            encoderFolder = FileSystemPath(imageEncoder);
            if (!Directory.Exists(encoderFolder))
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"{encoderFolder} is not a folder. Give the CLIP ViT-H image encoder folder (config.json + model.safetensors; models/image_encoder in h94/IP-Adapter).",
                    "ImageEncoderNotFound", ErrorCategory.ObjectNotFound, encoderFolder));
            }
        }
        else if (adapterFile is not null)
        {
            encoderFolder = IPAdapterLayout.FindImageEncoder(adapterFile);
            if (encoderFolder is null)
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"The IP-Adapter {adapterFile} needs the CLIP ViT-H image encoder, which is not in the usual place beside it (models/image_encoder). Give it with -ImageEncoderPath.",
                    "ImageEncoderNotFound", ErrorCategory.ObjectNotFound, adapterFile));
            }
        }

        if (adapterFile is null && encoderFolder is null)
        {
            var resolution = OpenModelResolver(cachePath).WithCachedIpAdapter(options);
            foreach (var note in resolution.Notes) WriteVerbose(note);
            return resolution.Options;
        }
        return options with { IpAdapterPath = adapterFile, ImageEncoderPath = encoderFolder };
    }

    /// <summary>
    /// Fills in the tiny decoder: the folder (or weights file) given, else the cached taesdxl when it is complete.
    /// Without one, scenes can be made, but not with -Decoder Tiny or live previews.
    /// </summary>
    internal EngineOptions WithTinyDecoder(EngineOptions options, string? tinyDecoder, string? cachePath)
    {
        if (!string.IsNullOrWhiteSpace(tinyDecoder))
        {
            var given = FileSystemPath(tinyDecoder);
            if (!File.Exists(given) && !Directory.Exists(given))
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"No tiny decoder at {given}. Give madebyollin/taesdxl's folder (config.json + diffusion_pytorch_model.safetensors), " +
                    $"or run Install-MnemosyneModel {ModelResolver.TinyDecoderModel} and leave -TinyDecoderPath out.",
                    "TinyDecoderNotFound", ErrorCategory.ObjectNotFound, given));
            }
            return options with { TinyDecoderPath = given };
        }
        var resolution = OpenModelResolver(cachePath).WithCachedTinyDecoder(options);
        foreach (var note in resolution.Notes) WriteVerbose(note);
        return resolution.Options;
    }

    /// <summary>The folder a single-file checkpoint takes its tokenizers, scheduler and configs from: the one given, else the cached sdxl-base-1.0.</summary>
    private string ResolveBaseModelPath(string? baseModel, string checkpointFile, string? cachePath)
    {
        if (baseModel is not null)
        {
            var given = FileSystemPath(baseModel);
            if (!Directory.Exists(given))
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"{given} is not a folder. Give -BaseModelPath a folder in the diffusers SDXL layout (stabilityai/stable-diffusion-xl-base-1.0) with tokenizer/, tokenizer_2/ and scheduler/.",
                    "BaseModelNotFound", ErrorCategory.ObjectNotFound, given));
            }
            return given;
        }
        try
        {
            var found = OpenModelResolver(cachePath).FindSingleFileBase();
            WriteVerbose($"Tokenizers, scheduler and configs for {checkpointFile} from {found}.");
            return found;
        }
        catch (ModelNotInstalledException e)
        {
            var record = new ErrorRecord(
                new FileNotFoundException(
                    $"{checkpointFile} is a single-file checkpoint, which carries no tokenizers or scheduler. Give them with Open-MnemosyneEngine -BaseModelPath " +
                    $"<a diffusers SDXL folder with tokenizer/, tokenizer_2/ and scheduler/>, or run {e.InstallCommand} to have them taken from the Hugging Face cache. ({e.Message})",
                    e.FileName, e),
                "BaseModelNotFound", ErrorCategory.ObjectNotFound, checkpointFile);
            record.ErrorDetails = new ErrorDetails(record.Exception.Message) { RecommendedAction = e.InstallCommand };
            ThrowTerminatingError(record);
            throw;
        }
    }

    /// <summary>The known models over the hub cache <paramref name="cachePath"/> names (null: the environment's); a broken manifest folder stops the command.</summary>
    internal ModelResolver OpenModelResolver(string? cachePath)
    {
        try
        {
            return new ModelResolver(ModelCatalog.Default(ModelCommandSupport.ResolveCachePath(this, cachePath)));
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(ModelCommandSupport.ToErrorRecord(e, cachePath ?? ModelCatalog.DefaultManifestFolder));
            throw;
        }
    }

    /// <summary>Runs a resolver call; its errors stop the command as ErrorRecords about <paramref name="target"/>.</summary>
    internal T Resolve<T>(Func<T> resolve, object target)
    {
        try
        {
            return resolve();
        }
        catch (ModelNotInstalledException e)
        {
            var record = new ErrorRecord(e, "ModelNotInstalled", ErrorCategory.ObjectNotFound, target);
            record.ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = e.InstallCommand };
            ThrowTerminatingError(record);
            throw;
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorRecords.From(e, "InvalidModelName", target));
            throw;
        }
    }

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
    /// The files a -Path argument names: wildcards are expanded unless a file has that literal name
    /// (names with [ ] are common for pictures). Writes a non-terminating error for a path that
    /// matches nothing and returns no files for it.
    /// </summary>
    internal IReadOnlyList<string> ResolveInputFiles(string path)
    {
        var literal = FileSystemPath(path);
        if (File.Exists(literal) || !WildcardPattern.ContainsWildcardCharacters(path))
        {
            if (File.Exists(literal)) return [literal];
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
            if (matches.Count > 0) return matches;
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

/// <summary>Distinct progress bars, so that opening the engine and making a scene show separately.</summary>
internal static class ProgressActivityIds
{
    public const int Open = 0x4d6e0001;
    public const int Scene = 0x4d6e0002;
    public const int Reference = 0x4d6e0003;
}
