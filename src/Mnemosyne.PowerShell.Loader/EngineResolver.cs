using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace Mnemosyne.PowerShell.Loader;

/// <summary>
/// Runs first when the module is imported (the manifest's first nested module), before PowerShell reads
/// the cmdlets' assembly, whose types already need the engine. The cmdlets live in PowerShell's default
/// load context; when they ask for the engine, the default context cannot find it (it is under
/// dependencies/) and this hands the request over to <see cref="ModuleLoadContext"/>.
/// </summary>
public sealed class EngineResolver : IModuleAssemblyInitializer
{
    private static int registered;

    public void OnImport()
    {
        // Once per process, and never taken back: the cmdlets' assembly cannot be unloaded, so its reference
        // to the engine must resolve for as long as the process lives, whichever runspace imported it.
        if (Interlocked.Exchange(ref registered, 1) == 1) return;
        AssemblyLoadContext.Default.Resolving += Resolve;
        PublishTypeNames(ModuleLoadContext.Instance.LoadEngine());
    }

    private static Assembly? Resolve(AssemblyLoadContext context, AssemblyName name)
        => name.Name == ModuleLoadContext.EngineName ? ModuleLoadContext.Instance.LoadEngine() : null;

    /// <summary>
    /// PowerShell looks a type name such as [Mnemosyne.Engine.Pipeline.Scene] up only in the default load
    /// context, so the engine's public types are made known to it as type accelerators under their full
    /// names, the way about_Classes_and_Modules exports a module's classes.
    /// </summary>
    private static void PublishTypeNames(Assembly engine)
    {
        var accelerators = typeof(PSObject).Assembly.GetType("System.Management.Automation.TypeAccelerators", throwOnError: true)!;
        var add = accelerators.GetMethod("Add", [typeof(string), typeof(Type)])
            ?? throw new MissingMethodException(accelerators.FullName, "Add");
        foreach (var type in engine.GetExportedTypes().Where(type => !type.IsGenericTypeDefinition))
            add.Invoke(null, [type.FullName, type]);
    }
}
