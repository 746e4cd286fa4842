using System.Management.Automation;
using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.PowerShell;

/// <summary>Runs when the module is imported and removed.</summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport() => OnnxRuntimeNative.Register();

    public void OnRemove(PSModuleInfo psModuleInfo) => ModuleState.Reset();
}
