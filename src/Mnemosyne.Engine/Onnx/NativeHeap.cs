using System.Runtime.InteropServices;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// ONNX Runtime allocates with the C heap. glibc keeps freed memory for reuse instead of giving it
/// back, so after a multi-GB session is released the process would stay as large as before; trimming
/// returns it, so the next network can use it.
/// </summary>
public static partial class NativeHeap
{
    /// <summary>Gives the C heap's free memory back to the system; a no-op where that is not glibc.</summary>
    public static void Trim()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // musl and other C libraries have no malloc_trim; they return memory differently.
        }
    }

    /// <summary>What the system can still hand out without swapping (Linux MemAvailable), if known.</summary>
    public static long? AvailableBytes()
    {
        const string meminfo = "/proc/meminfo";
        if (!File.Exists(meminfo)) return null;
        foreach (var line in File.ReadLines(meminfo))
            if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)
                && long.TryParse(line["MemAvailable:".Length..].Replace("kB", "").Trim(), out var kib))
                return kib * 1024;
        return null;
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
