using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>What the module keeps between commands: the open engine, shared by every runspace.</summary>
internal static class ModuleState
{
    private static readonly object Gate = new();
    private static SharedEngine? current;

    /// <summary>Held while an engine is being opened, so that two runspaces never open two at once.</summary>
    internal static SemaphoreSlim OpeningGate { get; } = new(1, 1);

    /// <summary>A lease on the open engine, or null when none is open.</summary>
    internal static EngineLease? TryAcquire()
    {
        lock (Gate)
        {
            return current is not null && current.TryEnter() ? new EngineLease(current) : null;
        }
    }

    /// <summary>Makes <paramref name="engine"/> the open engine (closing the previous one) and leases it.</summary>
    internal static EngineLease Install(SceneEngine engine)
    {
        var shared = new SharedEngine(engine, DateTimeOffset.Now);
        shared.TryEnter();
        SharedEngine? previous;
        lock (Gate)
        {
            previous = current;
            current = shared;
        }
        previous?.Close();
        return new EngineLease(shared);
    }

    /// <summary>Closes the open engine; false when none was open.</summary>
    internal static bool Close()
    {
        SharedEngine? previous;
        lock (Gate)
        {
            previous = current;
            current = null;
        }
        previous?.Close();
        return previous is not null;
    }

    internal static void Reset() => Close();
}

/// <summary>
/// An engine with its users counted: closing it while another runspace is making a scene only
/// marks it closed, and the last user disposes it, so no ONNX session is freed mid-run.
/// </summary>
internal sealed class SharedEngine(SceneEngine engine, DateTimeOffset openedAt)
{
    private readonly object gate = new();
    private int users;
    private bool closed;

    public SceneEngine Engine { get; } = engine;
    public DateTimeOffset OpenedAt { get; } = openedAt;

    /// <summary>Read once, when first asked for (it reads samples of every weights file).</summary>
    public Lazy<string> ModelHash { get; } = new(() => ModelFingerprint.Of(engine));

    public bool TryEnter()
    {
        lock (gate)
        {
            if (closed) return false;
            users++;
            return true;
        }
    }

    public void Exit()
    {
        lock (gate)
        {
            users--;
            if (!closed || users > 0) return;
        }
        Engine.Dispose();
    }

    public void Close()
    {
        lock (gate)
        {
            if (closed) return;
            closed = true;
            if (users > 0) return;
        }
        Engine.Dispose();
    }
}

/// <summary>One command's use of the open engine; dispose it when the engine call is over.</summary>
internal sealed class EngineLease(SharedEngine shared) : IDisposable
{
    private int disposed;

    public SceneEngine Engine => shared.Engine;
    public MnemosyneEngineInfo Info => new(shared.Engine, shared.OpenedAt, shared.ModelHash);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 0) shared.Exit();
    }
}
