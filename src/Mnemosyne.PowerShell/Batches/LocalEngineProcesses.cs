using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Management.Automation.Runspaces;

namespace Mnemosyne.PowerShell.Batches;

/// <summary>
/// Engine processes on this machine for one batch: PowerShell processes started as Start-Job starts its own (an
/// out-of-process runspace that talks over the child's standard input and output: no SSH, no listener, on every
/// platform), each a host of its own to <see cref="BatchHost"/>; closing them ends the processes.
/// </summary>
internal sealed class LocalEngineProcesses : IDisposable
{
    /// <summary>How long a live process is given to close before it is ended.</summary>
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(10);

    private readonly List<Engine> engines = [];

    private sealed record Engine(Runspace Runspace, Process Process, CancellationTokenSource Ended);

    /// <summary>Starts <paramref name="count"/> processes at once; when one cannot start, those started are ended.</summary>
    public static LocalEngineProcesses Start(int count)
    {
        var starting = Enumerable.Range(0, count).Select(_ => Task.Run(StartOne)).ToArray();
        try { Task.WaitAll(starting); }
        catch (AggregateException) { } // seen below
        var processes = new LocalEngineProcesses();
        processes.engines.AddRange(starting.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result));
        if (starting.FirstOrDefault(t => t.IsFaulted) is { } failed)
        {
            processes.Dispose();
            throw failed.Exception!.InnerExceptions[0];
        }
        return processes;
    }

    private static Engine StartOne()
    {
        var runspace = RunspaceFactory.CreateOutOfProcessRunspace(null);
        runspace.Open();
        // The process itself, to hear at once when it ends: the runspace notices a killed child only after a minute.
        using var powershell = System.Management.Automation.PowerShell.Create();
        powershell.Runspace = runspace;
        var id = (int)powershell.AddScript("$PID").Invoke()[0].BaseObject;
        var process = Process.GetProcessById(id);
        var ended = new CancellationTokenSource();
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) =>
        {
            try { ended.Cancel(); }
            catch (ObjectDisposedException) { } // after the batch
        };
        if (process.HasExited) ended.Cancel();
        return new Engine(runspace, process, ended);
    }

    public IEnumerable<BatchHost> Hosts(BlockingCollection<BatchEvent> events)
        => engines.Select((e, i) => new BatchHost(e.Runspace, string.Create(CultureInfo.InvariantCulture, $"local engine process {i + 1}"), e.Runspace, events, e.Ended.Token));

    public void Dispose()
    {
        foreach (var engine in engines)
        {
            if (!engine.Process.HasExited)
            {
                var close = Task.Run(engine.Runspace.Close);
                try
                {
                    if (close.Wait(CloseTimeout)) engine.Runspace.Dispose();
                }
                catch (AggregateException) { } // a broken runspace: the process is ended below
            }
            if (!engine.Process.HasExited)
            {
                try { engine.Process.Kill(); }
                catch (InvalidOperationException) { } // it ended meanwhile
            }
            // A runspace whose process died unnoticed waits a minute for its transport's timeout: that is not waited for here.
            var state = engine.Runspace.RunspaceStateInfo.State;
            if (state == RunspaceState.Broken) engine.Runspace.Dispose();
            else if (state != RunspaceState.Closed) _ = Task.Run(engine.Runspace.Dispose);
            engine.Process.Dispose();
            engine.Ended.Dispose();
        }
    }
}
