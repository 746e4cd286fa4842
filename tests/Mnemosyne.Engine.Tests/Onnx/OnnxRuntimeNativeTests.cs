using Microsoft.ML.OnnxRuntime;
using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.Engine.Tests.Onnx;

public class OnnxRuntimeNativeTests
{
    [Fact]
    public void LoadsTheNativeRuntime()
    {
        OnnxRuntimeNative.Register();
        Assert.StartsWith("1.31", OrtEnv.Instance().GetVersionString());
    }
}
