using System.Management.Automation;

namespace Mnemosyne.PowerShell;

/// <summary>Runs when the module is removed: closes the open engine.</summary>
public sealed class ModuleCleanup : IModuleAssemblyCleanup
{
    public void OnRemove(PSModuleInfo psModuleInfo) => ModuleState.Reset();
}
