using System.Management.Automation;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>Shows the open engine; writes nothing when none is open.</summary>
[Cmdlet(VerbsCommon.Get, "MnemosyneEngine", HelpUri = HelpUris.Readme + "get-mnemosyneengine")]
[OutputType(typeof(MnemosyneEngineInfo))]
public sealed class GetMnemosyneEngineCommand : MnemosyneCmdlet
{
    protected override void ProcessRecord()
    {
        using var lease = ModuleState.TryAcquire();
        if (lease is null)
        {
            WriteVerbose("No Mnemosyne engine is open.");
            return;
        }
        WriteObject(lease.Info);
    }
}
