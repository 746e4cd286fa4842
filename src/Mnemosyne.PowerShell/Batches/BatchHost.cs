using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace Mnemosyne.PowerShell.Batches;

/// <summary>What the main thread hears from the sessions' workers.</summary>
internal abstract record BatchEvent(BatchHost Host);
/// <summary>The session has the module and an engine with this session's model.</summary>
internal sealed record HostReady(BatchHost Host, HostEngine Engine) : BatchEvent(Host);
/// <summary>The session cannot take scenes (no module, no engine, another model): nothing was dealt to it.</summary>
internal sealed record HostRefused(BatchHost Host, ErrorRecord Error) : BatchEvent(Host);
/// <summary>The session broke (its host or process died, the connection dropped) with scenes unfinished, handed back.</summary>
internal sealed record HostLost(BatchHost Host, Exception Reason, int HandedBack) : BatchEvent(Host);
internal sealed record SceneMade(BatchHost Host, BatchScene Scene, byte[] Png, IReadOnlyList<string> Warnings) : BatchEvent(Host);
/// <summary>The host ran the scene and it failed (a bad setting, say): another host would fail alike, so it is not dealt again.</summary>
internal sealed record SceneFailed(BatchHost Host, BatchScene Scene, string Message, ErrorCategory Category, string ErrorId) : BatchEvent(Host);
internal sealed record HostDone(BatchHost Host) : BatchEvent(Host);

/// <summary>What a host's engine must match: this session's module version and engine.</summary>
internal sealed record HostEngine(string Computer, int ProcessId, string? ModuleVersion, string? Model, string? ModelHash, string? Precision);

/// <summary>
/// One session's worker: it readies the session (the module imported, an engine open, checked against this session's),
/// then takes scenes from the dealer a hand at a time and runs them there through New-MnemosyneScene and
/// Save-MnemosyneImage, sending each picture back as the PNG file's bytes the moment it is made.
/// </summary>
/// <param name="ended">Cancelled when the host's process is known to have ended (a local engine process): PowerShell's
/// out-of-process transport notices a killed child only a minute later, so its scenes are handed back at once instead.</param>
internal sealed class BatchHost(Runspace runspace, string name, object session, BlockingCollection<BatchEvent> events, CancellationToken ended = default)
{
    /// <summary>Imports the module and opens the engine where missing, and says what the session has.</summary>
    private const string ReadyScript = """
        param([string] $ModulePath, [hashtable] $Open)
        $ErrorActionPreference = 'Stop'
        if (-not (Get-Module Mnemosyne)) { Import-Module $(if ($ModulePath) { $ModulePath } else { 'Mnemosyne' }) }
        if (-not (Mnemosyne\Get-MnemosyneEngine) -and $Open) { Mnemosyne\Open-MnemosyneEngine @Open }
        $engine = Mnemosyne\Get-MnemosyneEngine
        [pscustomobject]@{
            Computer = [Environment]::MachineName; ProcessId = $PID; ModuleVersion = "$((Get-Module Mnemosyne).Version)"
            Model = $engine.Model; ModelHash = $engine.ModelHash; Precision = "$($engine.Precision)"
        }
        """;

    /// <summary>
    /// Makes a hand of scenes one after another, writing each out as it is done: the bytes of the PNG file
    /// Save-MnemosyneImage wrote, or what went wrong with it.
    /// </summary>
    private const string MakeScript = """
        param([object[]] $Scenes, [hashtable] $Reference)
        $ErrorActionPreference = 'Stop'
        $character = if ($Reference) {
            $embedding = [float[]]::new($Reference.Embedding.Length / 4)
            [Buffer]::BlockCopy($Reference.Embedding, 0, $embedding, 0, $Reference.Embedding.Length)
            $states = if ($Reference.HiddenStates) {
                $values = [float[]]::new($Reference.HiddenStates.Length / 4)
                [Buffer]::BlockCopy($Reference.HiddenStates, 0, $values, 0, $Reference.HiddenStates.Length)
                [Mnemosyne.Engine.Tensors.FloatTensor]::new($values, [int[]]$Reference.HiddenStatesShape)
            }
            [Mnemosyne.Engine.Pipeline.CharacterReference]@{
                Name = $Reference.Name; Encoder = $Reference.Encoder; Embedding = $embedding
                AdapterKind = $Reference.AdapterKind; HiddenStates = $states
                Sources = [Mnemosyne.Engine.Pipeline.ReferenceSource[]]@($Reference.Sources | ForEach-Object { [Mnemosyne.Engine.Pipeline.ReferenceSource]::new($_[0], $_[1]) })
            }
        }
        $folder = Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-batch-$([guid]::NewGuid().ToString('n'))"
        $null = New-Item -ItemType Directory $folder
        try {
            foreach ($item in $Scenes) {
                $settings = $item.Parameters
                if ($character) { $settings.Reference = $character }
                try {
                    $scene = Mnemosyne\New-MnemosyneScene @settings -WarningAction SilentlyContinue
                    $file = Join-Path $folder "$($item.Index).png"
                    Mnemosyne\Save-MnemosyneImage -Scene $scene -Path $file -Force
                    [pscustomobject]@{ Index = $item.Index; Png = [IO.File]::ReadAllBytes($file); Warnings = [string[]]@($scene.Warnings) }
                    Remove-Item -LiteralPath $file
                }
                catch {
                    [pscustomobject]@{ Index = $item.Index; Error = $_.Exception.Message; Category = "$($_.CategoryInfo.Category)"; ErrorId = $_.FullyQualifiedErrorId }
                }
            }
        }
        finally { Remove-Item -LiteralPath $folder -Recurse -Force -ErrorAction SilentlyContinue }
        """;

    /// <summary>A remoting session to another machine.</summary>
    public BatchHost(PSSession session, BlockingCollection<BatchEvent> events)
        : this(session.Runspace, string.Create(CultureInfo.InvariantCulture, $"session {session.Name} ({session.ComputerName})"), session, events)
    {
    }

    /// <summary>What the host is to the user: its PSSession, or the runspace of a local engine process.</summary>
    public object Session { get; } = session;

    public string Name { get; } = name;

    /// <summary>Readies the session, then makes scenes until none are left, the session fails, or the batch stops.</summary>
    /// <param name="expected">This session's module version and engine, which the host's must match.</param>
    /// <param name="open">Open-MnemosyneEngine's parameters for a host with no engine open.</param>
    /// <param name="reference">The character as plain values: Name, Encoder, Sources (path, SHA-256 pairs), Embedding (its floats' bytes), AdapterKind, and for Plus HiddenStates (bytes) and HiddenStatesShape.</param>
    public void Run(SceneDealer dealer, int handSize, HostEngine expected, string? modulePath, Hashtable open, Hashtable? reference,
        CancellationToken cancellation)
    {
        try
        {
            if (Ready(expected, modulePath, open, cancellation) is not { } engine) return;
            events.Add(new HostReady(this, engine), CancellationToken.None);
            while (dealer.Deal(handSize, cancellation) is { } hand)
            {
                if (!Make(hand, dealer, reference, cancellation)) return;
            }
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
        }
        finally
        {
            events.Add(new HostDone(this), CancellationToken.None);
        }
    }

    private HostEngine? Ready(HostEngine expected, string? modulePath, Hashtable open, CancellationToken cancellation)
    {
        if (runspace.RunspaceStateInfo.State != RunspaceState.Opened)
        {
            Refuse($"{Name} is {runspace.RunspaceStateInfo.State}, not open, so it takes no scenes. Open a new one (New-PSSession).",
                "SessionNotOpen", ErrorCategory.ResourceUnavailable);
            return null;
        }
        PSObject info;
        try
        {
            var output = Invoke(ReadyScript, new() { ["ModulePath"] = modulePath, ["Open"] = open }, null, cancellation);
            if (output.Count != 1) throw new InvalidOperationException($"it answered with {output.Count} objects, not one");
            info = output[0];
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var where = modulePath is null ? "installed there (Install-PSResource Mnemosyne), or give -ModulePath" : $"at {modulePath} there";
            Refuse($"{Name} could not be readied: {Message(e)} It needs the Mnemosyne module {where}, and an engine open with this " +
                "session's model (opened there with this engine's files, at the same paths, when none is open).",
                "HostNotReady", ErrorCategory.ResourceUnavailable);
            return null;
        }
        string? Text(string name) => info.Properties[name]?.Value?.ToString();
        var engine = new HostEngine(Text("Computer") ?? "?", info.Properties["ProcessId"]?.Value is int pid ? pid : 0,
            Text("ModuleVersion"), Text("Model"), Text("ModelHash"), Text("Precision"));
        var where2 = $"{Name} (computer {engine.Computer}, process {engine.ProcessId})";
        if (expected.ModuleVersion is not null && engine.ModuleVersion != expected.ModuleVersion)
        {
            Refuse($"{where2} has Mnemosyne {engine.ModuleVersion}, this session {expected.ModuleVersion}: other versions may make other pictures. " +
                "Install the same version there.", "ModuleVersionMismatch", ErrorCategory.InvalidData);
            return null;
        }
        if (engine.ModelHash != expected.ModelHash || engine.Precision != expected.Precision || engine.Model != expected.Model)
        {
            Refuse($"{where2} has the engine '{engine.Model}' ({engine.Precision}, model hash {engine.ModelHash}), but this session's is " +
                $"'{expected.Model}' ({expected.Precision}, model hash {expected.ModelHash}): it would make other pictures, so it takes no scenes. " +
                "Open the same checkpoint, adapter, decoder and precision there (Invoke-Command -Session $s { Open-MnemosyneEngine ... }).",
                "ModelMismatch", ErrorCategory.InvalidData);
            return null;
        }
        return engine;
    }

    /// <summary>Makes a hand of scenes; false when the session failed (its unfinished scenes are handed back).</summary>
    private bool Make(IReadOnlyList<BatchScene> hand, SceneDealer dealer, Hashtable? reference, CancellationToken cancellation)
    {
        var unfinished = hand.ToDictionary(s => s.Index);
        var gate = new object();
        void Arrived(PSObject result)
        {
            var index = result.Properties["Index"]?.Value is int i ? i : -1;
            BatchScene? scene;
            lock (gate)
            {
                if (!unfinished.Remove(index, out scene)) return;
            }
            if (result.Properties["Png"]?.Value is byte[] png)
            {
                var warnings = (result.Properties["Warnings"]?.Value as IEnumerable)?.Cast<object>().Select(w => $"{w}").ToList() ?? [];
                events.Add(new SceneMade(this, scene, png, warnings), CancellationToken.None);
            }
            else
            {
                var category = Enum.TryParse<ErrorCategory>(result.Properties["Category"]?.Value?.ToString(), out var c) ? c : ErrorCategory.NotSpecified;
                events.Add(new SceneFailed(this, scene, $"{result.Properties["Error"]?.Value}", category, $"{result.Properties["ErrorId"]?.Value}"),
                    CancellationToken.None);
            }
            dealer.Finished();
        }

        Exception? failure = null;
        try
        {
            var settings = new Hashtable { ["Scenes"] = hand.Select(s => s.ToRemote()).ToArray(), ["Reference"] = reference };
            Invoke(MakeScript, settings, Arrived, cancellation);
        }
        catch (Exception e)
        {
            failure = e;
        }
        List<BatchScene> left;
        lock (gate) left = [.. unfinished.Values];
        if (left.Count == 0 && failure is null) return true;
        dealer.HandBack(left);
        if (failure is OperationCanceledException || cancellation.IsCancellationRequested) return false;
        events.Add(new HostLost(this, failure ?? new InvalidOperationException("it stopped before it made them"), left.Count), CancellationToken.None);
        return false;
    }

    /// <summary>Runs a script in the session; each output object goes to <paramref name="arrived"/> as it comes, else into the list.</summary>
    private List<PSObject> Invoke(string script, Hashtable parameters, Action<PSObject>? arrived, CancellationToken cancellation)
    {
        var powershell = System.Management.Automation.PowerShell.Create();
        powershell.Runspace = runspace;
        powershell.AddScript(script).AddParameters(parameters);
        var output = new PSDataCollection<PSObject>();
        var results = new List<PSObject>();
        output.DataAdded += (_, e) =>
        {
            var item = output[e.Index];
            if (arrived is not null) arrived(item);
            else lock (results) results.Add(item);
        };
        var stop = cancellation.Register(() => powershell.BeginStop(null, null));
        var running = powershell.BeginInvoke<PSObject, PSObject>(null, output);
        if (WaitHandle.WaitAny([running.AsyncWaitHandle, ended.WaitHandle]) == 1 && !running.IsCompleted)
        {
            // Left to fail by itself (its transport's timeout), then disposed; nothing more can come from a dead process.
            stop.Dispose();
            _ = Task.Run(() =>
            {
                try { powershell.EndInvoke(running); }
                catch (RuntimeException) { }
                powershell.Dispose();
                output.Dispose();
            });
            throw new InvalidOperationException("its process ended");
        }
        try
        {
            powershell.EndInvoke(running);
            cancellation.ThrowIfCancellationRequested();
            if (powershell.HadErrors && powershell.Streams.Error.FirstOrDefault() is { } error)
                throw new InvalidOperationException(error.Exception?.Message ?? error.ToString());
            return results;
        }
        finally
        {
            stop.Dispose();
            powershell.Dispose();
            output.Dispose();
        }
    }

    private void Refuse(string message, string errorId, ErrorCategory category)
        => events.Add(new HostRefused(this, ErrorRecords.Create(message, errorId, category, Session)), CancellationToken.None);

    private static string Message(Exception e)
    {
        var text = (e is RuntimeException { ErrorRecord: { } record } ? record.ToString() : e.Message).TrimEnd();
        return text.EndsWith('.') ? text : text + ".";
    }
}
