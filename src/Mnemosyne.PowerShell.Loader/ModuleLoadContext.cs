using System.Reflection;
using System.Runtime.Loader;

namespace Mnemosyne.PowerShell.Loader;

/// <summary>
/// The module's own load context: the engine and everything it depends on (ONNX Runtime, Protobuf,
/// ImageSharp, the tokenizers) load from the module's dependencies folder into it, so another
/// module's copies of those libraries in the same session neither block nor replace them.
/// </summary>
internal sealed class ModuleLoadContext : AssemblyLoadContext
{
    internal const string EngineName = "Mnemosyne.Engine";

    private readonly string folder;

    private ModuleLoadContext(string folder) : base("Mnemosyne") => this.folder = folder;

    internal static ModuleLoadContext Instance { get; } = new(Path.Combine(
        Path.GetDirectoryName(typeof(ModuleLoadContext).Assembly.Location)!, "dependencies"));

    internal Assembly LoadEngine() => LoadFromAssemblyName(new AssemblyName(EngineName));

    protected override Assembly? Load(AssemblyName name)
    {
        var path = Path.Combine(folder, name.Name + ".dll");
        // Anything the module does not ship (the runtime, PowerShell itself) comes from the default context.
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }
}
