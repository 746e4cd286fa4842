namespace Mnemosyne.PowerShell;

/// <summary>What the module keeps between commands: the open engine, shared by every runspace.</summary>
internal static class ModuleState
{
    private static readonly object Gate = new();

    internal static void Reset()
    {
        lock (Gate)
        {
        }
    }
}
