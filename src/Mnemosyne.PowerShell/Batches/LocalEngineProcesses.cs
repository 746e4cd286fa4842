using System.Collections.Concurrent;
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
    private readonly List<Runspace> runspaces;

    private LocalEngineProcesses(List<Runspace> runspaces) => this.runspaces = runspaces;

    /// <summary>Starts <paramref name="count"/> processes at once; when one cannot start, those started are closed.</summary>
    public static LocalEngineProcesses Start(int count)
    {
        var runspaces = Enumerable.Range(0, count).Select(_ => RunspaceFactory.CreateOutOfProcessRunspace(null)).ToList();
        var processes = new LocalEngineProcesses(runspaces);
        try
        {
            Task.WaitAll(runspaces.Select(r => Task.Run(r.Open)).ToArray());
            return processes;
        }
        catch
        {
            processes.Dispose();
            throw;
        }
    }

    public IEnumerable<BatchHost> Hosts(BlockingCollection<BatchEvent> events)
        => runspaces.Select((runspace, i) => new BatchHost(runspace, string.Create(CultureInfo.InvariantCulture, $"local engine process {i + 1}"), runspace, events));

    public void Dispose()
    {
        foreach (var runspace in runspaces)
        {
            // A process that died already (a killed engine) leaves a broken runspace: closing it is no news.
            try { runspace.Close(); }
            catch (Exception e) when (e is InvalidRunspaceStateException or System.Management.Automation.Remoting.PSRemotingTransportException) { }
            runspace.Dispose();
        }
    }
}
