using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// Finds ONNX Runtime's native library under runtimes/&lt;rid&gt;/native/ beside the engine assembly.
/// Hosts such as pwsh do not read a module's deps.json, so the default probing misses it.
/// </summary>
public static class OnnxRuntimeNative
{
    private static int registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref registered, 1) == 1) return;
        NativeLibrary.SetDllImportResolver(typeof(OrtEnv).Assembly, Resolve);
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!name.Contains("onnxruntime", StringComparison.OrdinalIgnoreCase)) return IntPtr.Zero;
        var baseDir = Path.GetDirectoryName(typeof(OnnxRuntimeNative).Assembly.Location) ?? AppContext.BaseDirectory;
        foreach (var candidate in Candidates(baseDir))
            if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out var handle)) return handle;
        return IntPtr.Zero; // fall back to the default probing
    }

    private static IEnumerable<string> Candidates(string baseDir)
    {
        var file = OperatingSystem.IsWindows() ? "onnxruntime.dll"
            : OperatingSystem.IsMacOS() ? "libonnxruntime.dylib" : "libonnxruntime.so";
        yield return Path.Combine(baseDir, file);
        yield return Path.Combine(baseDir, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", file);
        var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        var arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        yield return Path.Combine(baseDir, "runtimes", $"{os}-{arch}", "native", file);
    }
}
