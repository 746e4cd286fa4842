using System.Management.Automation;
using System.Threading.Channels;
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

    /// <summary>
    /// A lease on the open engine. When none is open, opens the one that $env:MNEMOSYNE_MODEL names;
    /// when that is not set either, stops the command with a message that says what to do.
    /// </summary>
    internal EngineLease AcquireEngine()
    {
        if (ModuleState.TryAcquire() is { } open) return open;
        var model = Environment.GetEnvironmentVariable(ModelVariable);
        if (string.IsNullOrWhiteSpace(model))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"No Mnemosyne engine is open. Open one with Open-MnemosyneEngine -Path <SDXL diffusers folder> " +
                $"(add -IPAdapterPath to use character references), or set $env:{ModelVariable} to that folder " +
                $"(and $env:{IPAdapterVariable} / $env:{ImageEncoderVariable}) to have it opened when first needed.",
                "NoEngineOpen", ErrorCategory.ResourceUnavailable, null));
        }
        var options = ResolveEngineOptions(model!, Environment.GetEnvironmentVariable(IPAdapterVariable),
            Environment.GetEnvironmentVariable(ImageEncoderVariable), threads: 0, $"$env:{ModelVariable}");
        return OpenEngine(options, reuseOpenEngine: true);
    }

    /// <summary>
    /// Opens an engine and makes it the module's open engine, replacing any other; with
    /// <paramref name="reuseOpenEngine"/>, leases one that another runspace opened meanwhile instead.
    /// </summary>
    internal EngineLease OpenEngine(EngineOptions options, bool reuseOpenEngine = false)
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
            if (reuseOpenEngine && ModuleState.TryAcquire() is { } opened) return opened;
            if (reuseOpenEngine) WriteVerbose($"No engine is open; opening {options.CheckpointPath} from $env:{ModelVariable}.");
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
            return ModuleState.Install(engine);
        }
        finally
        {
            ModuleState.OpeningGate.Release();
        }
    }

    /// <summary>
    /// Checks the paths and fills in the IP-Adapter and image encoder from the h94/IP-Adapter
    /// layout (sdxl_models/ip-adapter_sdxl_vit-h.safetensors beside models/image_encoder) when
    /// they are not given; <paramref name="source"/> names where the paths came from, for messages.
    /// </summary>
    internal EngineOptions ResolveEngineOptions(string checkpoint, string? ipAdapter, string? imageEncoder, int threads, string source)
    {
        var checkpointPath = FileSystemPath(checkpoint);
        if (!Directory.Exists(checkpointPath))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"{checkpointPath} (from {source}) is not a folder. Give the folder of an SDXL checkpoint in the diffusers layout (the one with model_index.json).",
                "CheckpointNotFound", ErrorCategory.ObjectNotFound, checkpointPath));
        }

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
        else
        {
            adapterFile = IPAdapterLayout.FindAdapter(Path.Combine(checkpointPath, IPAdapterLayout.ConventionalFolder));
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

        return new EngineOptions
        {
            CheckpointPath = checkpointPath,
            IpAdapterPath = adapterFile,
            ImageEncoderPath = encoderFolder,
            Threads = threads,
        };
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
