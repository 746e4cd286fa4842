namespace Mnemosyne.Engine.Onnx;

/// <summary>Where ONNX Runtime runs the networks.</summary>
public enum ExecutionProvider
{
    /// <summary>The processor, with ONNX Runtime's CPU kernels (MLAS): the default, and what every figure and test is about.</summary>
    Cpu,

    /// <summary>
    /// An NVIDIA GPU through ONNX Runtime's CUDA execution provider (operators it lacks stay on the CPU). Needs ONNX Runtime's
    /// CUDA build (see <see cref="OnnxRuntimeNative.CudaFolder"/>), the CUDA runtime, cuBLAS and cuDNN libraries it was built
    /// against, and a GPU with its driver; <see cref="CudaProvider.EnsureAvailable"/> names what is missing.
    /// </summary>
    Cuda,
}
