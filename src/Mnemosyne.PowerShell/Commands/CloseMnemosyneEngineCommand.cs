using System.Management.Automation;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>Closes the open engine and frees its memory; a scene still being made elsewhere finishes first.</summary>
[Cmdlet(VerbsCommon.Close, "MnemosyneEngine", HelpUri = HelpUris.Readme + "close-mnemosyneengine")]
public sealed class CloseMnemosyneEngineCommand : MnemosyneCmdlet
{
    protected override void ProcessRecord()
    {
        WriteVerbose(ModuleState.Close() ? "Closed the Mnemosyne engine." : "No Mnemosyne engine was open.");
    }
}
