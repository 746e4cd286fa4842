using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// ONNX Runtime's CUDA execution provider: whether this process can use it, and adding it to a session's options. Its
/// three needs are checked in the order they fail, so that the error names the first thing missing: ONNX Runtime's CUDA
/// build, the CUDA libraries its provider library links to, a GPU.
/// </summary>
public static class CudaProvider
{
    /// <summary>ONNX Runtime's name for it in <see cref="OrtEnv.GetAvailableProviders"/>.</summary>
    public const string Name = "CUDAExecutionProvider";

    /// <summary>
    /// What ONNX Runtime 1.32's CUDA provider library links to (CUDA 13, the driver's library) or loads when it starts (cuDNN 9),
    /// from its NuGet package; ONNX Runtime's own error names none of them.
    /// </summary>
    public static IReadOnlyList<string> Libraries { get; } = OperatingSystem.IsWindows()
        ? ["cudart64_13.dll", "cublasLt64_13.dll", "cublas64_13.dll", "curand64_10.dll", "cudnn64_9.dll", "nvcuda.dll"]
        : ["libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudnn.so.9", "libcuda.so.1"];

    private const string LibrariesInWords = "the CUDA 13 runtime and cuBLAS, cuRAND, cuDNN 9 and the NVIDIA driver";

    private static readonly Lazy<ExecutionProviderUnavailableException?> Problem = new(Probe);

    /// <summary>Throws <see cref="ExecutionProviderUnavailableException"/> naming what is missing, unless a CUDA session can be made.</summary>
    public static void EnsureAvailable()
    {
        if (Problem.Value is { } problem)
            throw new ExecutionProviderUnavailableException(problem.Provider, problem.Shortfall, problem.Message, problem.InnerException);
    }

    /// <summary>Adds the provider on GPU 0 to <paramref name="options"/>; the CPU provider stays behind it for the operators CUDA lacks.</summary>
    internal static void Append(SessionOptions options) => options.AppendExecutionProvider_CUDA(0);

    /// <summary>The outcome is the same for the whole process: the library and the devices do not change under it.</summary>
    private static ExecutionProviderUnavailableException? Probe()
    {
        OnnxRuntimeNative.Register();
        var version = OrtEnv.Instance().GetVersionString();
        var loaded = OnnxRuntimeNative.LoadedFrom is { } path ? $" from {path}" : "";
        var providers = OrtEnv.Instance().GetAvailableProviders();
        if (!providers.Contains(Name))
        {
            return new(ExecutionProvider.Cuda, ExecutionProviderShortfall.OnnxRuntimeBuild,
                $"The CUDA execution provider needs ONNX Runtime's CUDA build, which is not installed: this process runs ONNX Runtime {version}{loaded}, " +
                $"a build with {string.Join(", ", providers)} only. Put the CUDA build of the same version (the files of NuGet's " +
                $"Microsoft.ML.OnnxRuntime.Gpu.Linux or .Gpu.Windows {version}, made by `build.ps1 Package -Gpu`) into {OnnxRuntimeNative.CudaFolder}, " +
                "then start a new PowerShell (a process keeps the ONNX Runtime it loaded first). The engine runs on the CPU without -ExecutionProvider.");
        }
        try
        {
            using var options = new SessionOptions();
            Append(options);
            var graph = new OnnxGraph("cuda-probe", null);
            var x = graph.Input("x", DataType.Float, 1);
            graph.Output(graph.Node("Add", [x, graph.Scalar(1)]), "y", DataType.Float, 1);
            using var session = new InferenceSession(graph.ToBytes(), options);
            return null;
        }
        catch (OnnxRuntimeException e)
        {
            var missing = Libraries.Where(library => !CanLoad(library)).ToList();
            if (missing.Count > 0)
            {
                return new(ExecutionProvider.Cuda, ExecutionProviderShortfall.Libraries,
                    $"ONNX Runtime's CUDA build {version}{loaded} is installed, but libraries its CUDA provider needs are not found: {string.Join(", ", missing)} " +
                    $"({LibrariesInWords}). Install them, or put them on the library path ({(OperatingSystem.IsWindows() ? "PATH" : "LD_LIBRARY_PATH")}), " +
                    $"then start a new PowerShell. ONNX Runtime said: {Brief(e.Message)}", e);
            }
            if (e.Message.Contains("CUDA failure", StringComparison.Ordinal) || e.Message.Contains("CUDA error", StringComparison.Ordinal))
            {
                return new(ExecutionProvider.Cuda, ExecutionProviderShortfall.Device,
                    "ONNX Runtime's CUDA provider loaded, but found no GPU it can use (none, or a driver older than CUDA 13 needs). " +
                    $"ONNX Runtime said: {Brief(e.Message)}", e);
            }
            return new(ExecutionProvider.Cuda, ExecutionProviderShortfall.Libraries,
                $"ONNX Runtime's CUDA provider ({version}{loaded}) could not be started: {Brief(e.Message)} It needs {LibrariesInWords} " +
                $"({string.Join(", ", Libraries)}), and an NVIDIA GPU.", e);
        }
    }

    private static bool CanLoad(string library)
    {
        if (!NativeLibrary.TryLoad(library, out var handle)) return false;
        NativeLibrary.Free(handle);
        return true;
    }

    private static string Brief(string message)
    {
        var text = message.Trim();
        return text.EndsWith('.') ? text : text + ".";
    }
}
