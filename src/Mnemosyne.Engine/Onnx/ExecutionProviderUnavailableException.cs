namespace Mnemosyne.Engine.Onnx;

/// <summary>What an execution provider lacks on this machine.</summary>
public enum ExecutionProviderShortfall
{
    /// <summary>The ONNX Runtime library loaded is not a build with the provider (the module's own is the CPU build).</summary>
    OnnxRuntimeBuild,

    /// <summary>The provider's build is there, but libraries it needs (CUDA runtime, cuBLAS, cuDNN) are not found.</summary>
    Libraries,

    /// <summary>The libraries load, but there is no device to run on (no GPU, no driver, or one the libraries cannot use).</summary>
    Device,
}

/// <summary>An engine was asked for an execution provider this machine cannot give; the message names what is missing.</summary>
public sealed class ExecutionProviderUnavailableException(ExecutionProvider provider, ExecutionProviderShortfall shortfall, string message, Exception? inner = null)
    : InvalidOperationException(message, inner)
{
    public ExecutionProvider Provider { get; } = provider;

    public ExecutionProviderShortfall Shortfall { get; } = shortfall;
}
