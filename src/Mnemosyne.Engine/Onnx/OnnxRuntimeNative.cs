using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// Finds ONNX Runtime's native library under runtimes/&lt;rid&gt;/native/ beside the engine assembly (hosts such as
/// pwsh do not read a module's deps.json, so the default probing misses it), or its CUDA build in <see cref="CudaFolder"/>
/// where one was put, and turns its telemetry off.
/// </summary>
public static partial class OnnxRuntimeNative
{
    /// <summary>ONNX Runtime's own switch: a true value (1, true, yes, on, y) turns its telemetry off before it starts.</summary>
    public const string TelemetryVariable = "ORT_DISABLE_TELEMETRY";

    private static int registered;

    /// <summary>
    /// cuda/&lt;rid&gt;/ beside the engine assembly: where ONNX Runtime's CUDA build goes (its library and provider libraries,
    /// from NuGet's Microsoft.ML.OnnxRuntime.Gpu.Linux or .Gpu.Windows of the engine's ONNX Runtime version). Where present it is
    /// loaded instead of the CPU build for every engine of the process: the same version, with the same CPU kernels, plus
    /// the CUDA provider. The module's package leaves it out (hundreds of MB); <c>build.ps1 Package -Gpu</c> makes it.
    /// </summary>
    public static string CudaFolder => Path.Combine(BaseDirectory, "cuda", RuntimeIdentifier);

    /// <summary>The ONNX Runtime library this process loaded, when it was found here (null before, or when the default probing found it).</summary>
    public static string? LoadedFrom { get; private set; }

    /// <summary>Call before anything else of ONNX Runtime's: the telemetry switch is read when its library starts.</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref registered, 1) == 1) return;
        bool telemetryOff = DisableTelemetryUnlessChosen();
        NativeLibrary.SetDllImportResolver(typeof(OrtEnv).Assembly, Resolve);
        // Windows' builds report through ETW, which the switch does not reach; this API does.
        if (telemetryOff) OrtEnv.Instance().DisableTelemetryEvents();
    }

    /// <summary>
    /// ONNX Runtime 1.31's Linux and macOS builds keep a device id and a store of usage events under
    /// ~/.cache/Microsoft/DeveloperTools/.onnxruntime and send them to Microsoft, unless <see cref="TelemetryVariable"/> is set
    /// in the process's environment when the library starts; its DisableTelemetryEvents API still leaves the device id and
    /// the first event. A value the user set is kept (so 0 turns it back on); otherwise it is set to 1. On Unix .NET keeps
    /// its own copy of the environment, which native code does not see, so the value goes to the C library's too.
    /// </summary>
    /// <returns>Whether telemetry stays off.</returns>
    private static bool DisableTelemetryUnlessChosen()
    {
        var chosen = Environment.GetEnvironmentVariable(TelemetryVariable);
        var value = string.IsNullOrWhiteSpace(chosen) ? "1" : chosen;
        Environment.SetEnvironmentVariable(TelemetryVariable, value);
        if (!OperatingSystem.IsWindows()) _ = SetNativeEnvironment(TelemetryVariable, value, overwrite: 1);
        return value.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on" or "y";
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetNativeEnvironment(string name, string value, int overwrite);

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!name.Contains("onnxruntime", StringComparison.OrdinalIgnoreCase)) return IntPtr.Zero;
        foreach (var candidate in Candidates(BaseDirectory))
        {
            if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out var handle))
            {
                LoadedFrom = candidate;
                return handle;
            }
        }
        return IntPtr.Zero; // fall back to the default probing
    }

    private static string BaseDirectory => Path.GetDirectoryName(typeof(OnnxRuntimeNative).Assembly.Location) ?? AppContext.BaseDirectory;

    /// <summary>The portable runtime identifier (linux-x64, win-arm64, …): the folder names of NuGet's runtimes/.</summary>
    private static string RuntimeIdentifier
    {
        get
        {
            var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
            return $"{os}-{RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}";
        }
    }

    private static IEnumerable<string> Candidates(string baseDir)
    {
        var file = OperatingSystem.IsWindows() ? "onnxruntime.dll"
            : OperatingSystem.IsMacOS() ? "libonnxruntime.dylib" : "libonnxruntime.so";
        // ONNX Runtime finds its provider libraries beside the library it was loaded from.
        yield return Path.Combine(CudaFolder, file);
        yield return Path.Combine(baseDir, file);
        yield return Path.Combine(baseDir, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", file);
        yield return Path.Combine(baseDir, "runtimes", RuntimeIdentifier, "native", file);
    }
}
