using Microsoft.ML.OnnxRuntime;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Tests.Onnx;

public class OnnxRuntimeNativeTests
{
    [Fact]
    public void LoadsTheNativeRuntime()
    {
        OnnxRuntimeNative.Register();
        Assert.StartsWith("1.32", OrtEnv.Instance().GetVersionString());
    }

    /// <summary>The tests run on the CPU build, which the module ships: a CUDA engine is refused before any file is read.</summary>
    [Fact]
    public void CudaWithoutItsBuildIsRefusedNamingIt()
    {
        Assert.False(File.Exists(Path.Combine(OnnxRuntimeNative.CudaFolder, OperatingSystem.IsWindows() ? "onnxruntime.dll" : "libonnxruntime.so")));
        var options = new EngineOptions { CheckpointPath = Path.Combine(Path.GetTempPath(), "no-such-checkpoint"), ExecutionProvider = ExecutionProvider.Cuda };
        var e = Assert.Throws<ExecutionProviderUnavailableException>(() => SceneEngine.Open(options));
        Assert.Equal(ExecutionProviderShortfall.OnnxRuntimeBuild, e.Shortfall);
        Assert.Contains("CUDA build", e.Message);
        Assert.Contains(OnnxRuntimeNative.CudaFolder, e.Message);
    }
}
