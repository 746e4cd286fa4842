using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.PowerShell.Batches;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Makes a batch of scenes on other machines over PowerShell remoting: the scenes (prompts, rows with New-MnemosyneScene's
/// properties) get their seeds here, are dealt to the sessions a hand at a time, made there by New-MnemosyneScene and
/// Save-MnemosyneImage, and come back as the PNG files' bytes, saved here whole or not at all. A session whose host fails
/// hands its unfinished scenes to the others; scenes already saved in the folder (a re-run) are not made again.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "MnemosyneBatch", HelpUri = HelpUris.Readme + "invoke-mnemosynebatch")]
[OutputType(typeof(FileInfo))]
public sealed class InvokeMnemosyneBatchCommand : MnemosyneCmdlet
{
    /// <summary>Its own progress activity, beside New-MnemosyneScene's (Mn + 0x10).</summary>
    private const int BatchActivityId = 0x4d6e0010;

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    public PSObject[] InputObject { get; set; } = null!;

    /// <summary>Remoting sessions to other machines (or to this one); with <see cref="LocalProcess"/> or alone.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public PSSession[] Session { get; set; } = [];

    /// <summary>
    /// Engine processes to start on this machine for the batch, each a host of its own with <see cref="ThreadsPerProcess"/>
    /// threads, ended when the batch ends: on a many-core machine several smaller engines can make more scenes per hour.
    /// </summary>
    [Parameter]
    [ValidateRange(1, 256)]
    public int LocalProcess { get; set; }

    /// <summary>ONNX Runtime threads of each local engine process; 0 (the default) shares the cores out evenly.</summary>
    [Parameter]
    [ValidateRange(0, 1024)]
    public int ThreadsPerProcess { get; set; }

    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Directory { get; set; } = null!;

    /// <summary>New-MnemosyneScene's parameters for every scene (Steps, Width, Quality, …); they win over a row's own.</summary>
    [Parameter]
    [ValidateNotNull]
    public Hashtable Setting { get; set; } = [];

    /// <summary>The character for every scene, sent to each host.</summary>
    [Parameter]
    public CharacterReference? Reference { get; set; }

    /// <summary>How many scenes a session is dealt at once (an engine makes them one after another).</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int ThrottleLimit { get; set; } = 1;

    /// <summary>Where the module is on the hosts, for those that have not imported it; left out, it is imported by name.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ModulePath { get; set; }

    private readonly List<BatchScene> scenes = [];
    private int inputCount;

    private int LocalThreads => ThreadsPerProcess > 0 ? ThreadsPerProcess : Math.Max(1, Environment.ProcessorCount / Math.Max(1, LocalProcess));

    protected override void BeginProcessing()
    {
        if (ThreadsPerProcess > 0 && LocalProcess == 0)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"-ThreadsPerProcess {ThreadsPerProcess} is for the engine processes -LocalProcess starts; give -LocalProcess too (a session's engine has the threads it was opened with).",
                "ThreadsWithoutLocalProcess", ErrorCategory.InvalidArgument, ThreadsPerProcess));
        }
        if (Session.Length == 0 && LocalProcess == 0)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                "Give the batch somewhere to run: -Session (remoting sessions to other machines), -LocalProcess (engine processes on this one), or both.",
                "NoHosts", ErrorCategory.InvalidArgument, null));
        }
        foreach (var key in Setting.Keys.Cast<object>().Select(k => $"{k}"))
        {
            if (!NewMnemosyneSceneCommand.ByPropertyName.ContainsKey(key) || key.Equals("Prompt", StringComparison.OrdinalIgnoreCase))
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"-Setting names '{key}', which is not a scene setting. Use New-MnemosyneScene's: " +
                    $"{string.Join(", ", NewMnemosyneSceneCommand.ByPropertyName.Keys.Where(k => k != "Prompt"))}; each scene's prompt comes from its input.",
                    "UnknownSetting", ErrorCategory.InvalidArgument, key));
            }
        }
    }

    protected override void ProcessRecord()
    {
        foreach (var input in InputObject)
        {
            inputCount++;
            if (Parse(input, inputCount) is { } scene) scenes.Add(scene);
        }
    }

    protected override void EndProcessing()
    {
        var folder = FileSystemPath(Directory);
        if (!System.IO.Directory.Exists(folder))
        {
            ThrowTerminatingError(new ErrorRecord(
                new DirectoryNotFoundException($"The folder {folder} does not exist. Create it first (New-Item -ItemType Directory)."),
                "FolderNotFound", ErrorCategory.ObjectNotFound, folder));
        }
        HostEngine expected;
        Hashtable open, openLocal;
        using (var lease = ModuleState.TryAcquire())
        {
            if (lease is null)
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    "No Mnemosyne engine is open in this session. Open the model the hosts are to use (Open-MnemosyneEngine): each host's engine is checked against it.",
                    "NoEngine", ErrorCategory.InvalidOperation, null));
            }
            var info = lease!.Info;
            expected = new HostEngine(Environment.MachineName, Environment.ProcessId, MyInvocation.MyCommand.Module?.Version.ToString(),
                info.Model, info.ModelHash, info.Precision.ToString());
            open = OpenParameters(lease.Engine.Options);
            openLocal = LocalOpenParameters(lease.Engine);
        }

        var saved = System.IO.Directory.EnumerateFiles(folder, "*.png").Select(Path.GetFileName).ToList();
        var toMake = new List<BatchScene>();
        foreach (var scene in scenes)
        {
            if (saved.FirstOrDefault(name => scene.IsSavedAs(name!)) is { } name) WriteVerbose($"{scene.Describe()} is already saved as {name}; not made again.");
            else toMake.Add(scene);
        }
        if (toMake.Count == 0)
        {
            WriteVerbose($"Every scene of the batch ({scenes.Count}) is already in {folder}; nothing to make.");
            return;
        }
        using var local = StartLocalProcesses();
        Run(toMake, folder, expected, open, openLocal, local);
    }

    private LocalEngineProcesses? StartLocalProcesses()
    {
        if (LocalProcess == 0) return null;
        WriteVerbose(string.Create(CultureInfo.InvariantCulture, $"Starting {LocalProcess} local engine processes, {LocalThreads} threads each."));
        try
        {
            return LocalEngineProcesses.Start(LocalProcess);
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            ThrowTerminatingError(new ErrorRecord(
                new InvalidOperationException($"The local engine processes could not be started: {e.Message}", e),
                "LocalProcessFailed", ErrorCategory.ResourceUnavailable, LocalProcess));
            throw;
        }
    }

    private void Run(List<BatchScene> toMake, string folder, HostEngine expected, Hashtable open, Hashtable openLocal, LocalEngineProcesses? local)
    {
        var dealer = new SceneDealer(toMake);
        using var events = new BlockingCollection<BatchEvent>();
        var reference = Reference is null ? null : ReferenceValues(Reference);
        // A local process imports this very module, and opens this session's engine with its own threads and saved sessions.
        var thisModule = MyInvocation.MyCommand.Module is { } module ? Path.Combine(module.ModuleBase, module.Name + ".psd1") : null;
        var hosts = Session.DistinctBy(s => s.InstanceId).Select(s => (Host: new BatchHost(s, events), ModulePath, Open: open))
            .Concat(local?.Hosts(events).Select(h => (Host: h, ModulePath: thisModule, Open: openLocal)) ?? [])
            .ToList();
        // Stopped with the command, or when this loop fails (a downstream command that wants no more): no host goes on unheard.
        using var halt = CancellationTokenSource.CreateLinkedTokenSource(StopToken);
        var workers = hosts.Select(h => Task.Factory.StartNew(
            () => h.Host.Run(dealer, ThrottleLimit, expected, h.ModulePath, h.Open, reference, halt.Token),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        int running = hosts.Count, ready = 0, made = 0, failed = 0;
        var activity = string.Create(CultureInfo.InvariantCulture, $"Invoke-MnemosyneBatch ({toMake.Count} scenes, {hosts.Count} sessions)");
        try
        {
            while (running > 0)
            {
                switch (events.Take(halt.Token))
                {
                    case HostReady e:
                        ready++;
                        WriteVerbose($"{e.Host.Name} is ready: computer {e.Engine.Computer}, process {e.Engine.ProcessId}, engine '{e.Engine.Model}'.");
                        break;
                    case HostRefused e:
                        WriteError(e.Error);
                        break;
                    case HostLost e:
                        WriteWarning($"{e.Host.Name} failed ({e.Reason.Message.TrimEnd('.')}); " +
                            (e.HandedBack == 1 ? "its unfinished scene goes" : $"its {e.HandedBack} unfinished scenes go") + " to the other sessions.");
                        break;
                    case SceneMade e:
                        if (Save(e, folder)) made++;
                        else failed++;
                        break;
                    case SceneFailed e:
                        failed++;
                        WriteError(new ErrorRecord(new InvalidOperationException($"{e.Scene.Describe()} failed on {e.Host.Name}: {e.Message}"),
                            string.IsNullOrEmpty(e.ErrorId) ? "SceneFailed" : e.ErrorId.Split(',')[0], e.Category, e.Scene.Source));
                        break;
                    case HostDone:
                        running--;
                        break;
                }
                ReportProgress(BatchActivityId, activity,
                    string.Create(CultureInfo.InvariantCulture, $"{made} of {toMake.Count} saved, {failed} failed; {ready} sessions making scenes"),
                    100 * (made + failed) / toMake.Count);
            }
        }
        catch (Exception e)
        {
            halt.Cancel();
            // Each worker ends by itself; what one threw while stopping is no news.
            try { Task.WaitAll(workers, CancellationToken.None); } catch (AggregateException) { }
            if (e is OperationCanceledException && StopToken.IsCancellationRequested) throw new PipelineStoppedException();
            throw;
        }
        ReportProgress(BatchActivityId, activity, "Done", completed: true);
        foreach (var scene in dealer.Leftover())
        {
            WriteError(ErrorRecords.Create(
                $"{scene.Describe()} was not made: no session was left to make it (see the errors and warnings above). Run the batch again to make what is missing.",
                "SceneNotMade", ErrorCategory.ResourceUnavailable, scene.Source));
        }
    }

    /// <summary>Writes a made scene's file (whole or not at all) and outputs it, with the session that made it.</summary>
    private bool Save(SceneMade made, string folder)
    {
        var path = Path.Combine(folder, made.Scene.FileName);
        try
        {
            AtomicFile.Write(path, stream => stream.Write(made.Png));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(OutputFiles.WriteFailure(e, path, force: false));
            return false;
        }
        foreach (var warning in made.Warnings) WriteWarning($"{made.Scene.Describe()}: {warning}");
        WriteVerbose($"Saved {path} (made by {made.Host.Name}).");
        var item = InvokeProvider.Item.Get([path], force: true, literalPath: true)[0];
        item.Properties.Add(new PSNoteProperty("Session", made.Host.Session));
        WriteObject(item);
        return true;
    }

    /// <summary>A scene from one input: a prompt, or an object with New-MnemosyneScene's properties; null after an error.</summary>
    private BatchScene? Parse(PSObject input, int index)
    {
        var parameters = new Hashtable(StringComparer.OrdinalIgnoreCase);
        var bad = new List<string>();
        var row = string.Create(CultureInfo.InvariantCulture, $"Input {index}");
        switch (input.BaseObject)
        {
            case CharacterReference:
                WriteError(ErrorRecords.Create($"{row} is a character reference; give it with -Reference, and the scenes as prompts or rows.",
                    "ReferenceAsScene", ErrorCategory.InvalidArgument, input));
                return null;
            case string or ValueType:
                parameters["Prompt"] = input.BaseObject.ToString();
                break;
            default:
                foreach (var property in input.Properties.Where(p => p.IsGettable))
                {
                    if (NewMnemosyneSceneCommand.ByPropertyName.ContainsKey(property.Name)) Add(parameters, property.Name, property.Value, bad);
                }
                break;
        }
        foreach (DictionaryEntry entry in Setting) Add(parameters, $"{entry.Key}", entry.Value, bad);
        if (bad.Count > 0)
        {
            WriteError(ErrorRecords.Create($"{row}: {string.Join("; ", bad)}. Correct it; no scene was made from it.",
                "InvalidSceneSetting", ErrorCategory.InvalidArgument, input));
            return null;
        }
        if (parameters["Prompt"] is not string prompt || string.IsNullOrWhiteSpace(prompt))
        {
            WriteError(ErrorRecords.Create(
                $"{row} has no prompt (an empty line, or a row without a Prompt value); describe the scene. " +
                "To skip the blank lines of a prompt file, filter them out: Get-Content prompts.txt | Where-Object { $_.Trim() } | Invoke-MnemosyneBatch ….",
                "EmptyPrompt", ErrorCategory.InvalidArgument, input));
            return null;
        }
        // Fixed here, before dealing, so that the picture does not depend on the host that makes it.
        var seed = parameters["Seed"] is long given ? given : Random.Shared.NextInt64(NewMnemosyneSceneCommand.DrawnSeedLimit);
        parameters["Seed"] = seed;
        return new BatchScene(index, prompt, seed, parameters, input);
    }

    /// <summary>A setting as the host receives it: text or a number (a seed as a whole number), under the parameter's own name.</summary>
    private static void Add(Hashtable parameters, string name, object? value, List<string> bad)
    {
        var parameter = NewMnemosyneSceneCommand.ByPropertyName[name];
        value = value is PSObject wrapped ? wrapped.BaseObject : value;
        if (value is null || value is string text && string.IsNullOrWhiteSpace(text) && parameter.Name != "Prompt") return;
        if (parameter.Name == nameof(NewMnemosyneSceneCommand.InitialNoisePath))
        {
            bad.Add("InitialNoisePath names a file on this machine, which the hosts cannot read; a batch takes no initial noise");
            return;
        }
        if (parameter.Name == nameof(NewMnemosyneSceneCommand.Seed))
        {
            try
            {
                value = (long)LanguagePrimitives.ConvertTo(value, typeof(long), CultureInfo.InvariantCulture);
            }
            catch (PSInvalidCastException)
            {
                bad.Add($"Seed is '{value}', which is not a whole number");
                return;
            }
        }
        else if (value is Enum) value = value.ToString();
        else if (value is not (string or ValueType))
        {
            bad.Add($"{parameter.Name} is a {value.GetType().Name}, not text or a number");
            return;
        }
        parameters[parameter.Name] = value;
    }

    /// <summary>Open-MnemosyneEngine's parameters for the same files as this session's engine, for a host with none open.</summary>
    private static Hashtable OpenParameters(EngineOptions options)
    {
        var open = new Hashtable { ["Path"] = options.CheckpointPath, ["Precision"] = options.Precision.ToString() };
        if (options.BaseModelPath is { } baseModel) open["BaseModelPath"] = baseModel;
        if (options.IpAdapterPath is { } adapter) open["IPAdapterPath"] = adapter;
        if (options.ImageEncoderPath is { } encoder) open["ImageEncoderPath"] = encoder;
        if (options.UnetWeightsPath is { } unet) open["UnetPath"] = unet;
        if (options.TinyDecoderPath is { } tiny) open["TinyDecoderPath"] = tiny;
        // A known model from the hub cache is opened by its name in the same cache (<cache>/models--…/snapshots/<commit>):
        // by its folder it would lose its name and its variant (fp16 files), and be refused.
        if (options.ModelName is { } model && System.IO.Directory.GetParent(Path.TrimEndingDirectorySeparator(options.CheckpointPath))?.Parent?.Parent is { } cache)
        {
            open.Remove("Path");
            open["Model"] = model;
            open["CachePath"] = cache.FullName;
        }
        return open;
    }

    /// <summary>
    /// For a local engine process: this engine's files and settings, with <see cref="ThreadsPerProcess"/> threads (by default the
    /// cores shared out), and this engine's saved sessions, which every process then maps: their weights are in memory once.
    /// </summary>
    private Hashtable LocalOpenParameters(SceneEngine engine)
    {
        var open = OpenParameters(engine.Options);
        open["Threads"] = LocalThreads;
        if (engine.SessionCache is { } cache) open["SessionCachePath"] = cache.Root;
        else open["NoSessionCache"] = true;
        if (engine.Options.LowMemory) open["LowMemory"] = true;
        if (engine.Options.ExecutionProvider != ExecutionProvider.Cpu) open["ExecutionProvider"] = engine.Options.ExecutionProvider.ToString();
        return open;
    }

    /// <summary>The character as values that travel unchanged: its embedding as the floats' bytes, exact on every host.</summary>
    private static Hashtable ReferenceValues(CharacterReference reference)
    {
        static byte[] Bytes(float[] values)
        {
            var bytes = new byte[values.Length * sizeof(float)];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            return bytes;
        }
        var values = new Hashtable
        {
            ["Name"] = reference.Name,
            ["Encoder"] = reference.Encoder,
            ["Sources"] = reference.Sources.Select(s => new object[] { s.Path, s.Sha256 }).ToArray(),
            ["Embedding"] = Bytes(reference.Embedding),
            ["AdapterKind"] = reference.AdapterKind.ToString(),
        };
        // An IP-Adapter Plus reference: the hidden states its engine's resampler reads.
        if (reference.HiddenStates is { } states)
        {
            values["HiddenStates"] = Bytes(states.Data);
            values["HiddenStatesShape"] = states.Shape;
        }
        return values;
    }
}
