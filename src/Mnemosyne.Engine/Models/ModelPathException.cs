namespace Mnemosyne.Engine.Models;

/// <summary>What is wrong with a path a <see cref="ModelRequest"/> gives.</summary>
public enum ModelPathProblem
{
    CheckpointNotFound,

    /// <summary>A checkpoint file that is not .safetensors (pickles can run code when loaded).</summary>
    CheckpointNotSupported,

    BaseModelNotFound,
    IpAdapterNotFound,

    /// <summary>A folder given for the IP-Adapter holds several (Plus and Plus-Face) and not the base one.</summary>
    IpAdapterAmbiguous,
    ImageEncoderNotFound,
    UnetNotFound,
    TinyDecoderNotFound,
}

/// <summary>
/// A path given for one part of a model that is not there, or a checkpoint file in a format that is not read.
/// <see cref="Path"/> is what to fix; a base model missing from the cache has the <see cref="ModelNotInstalledException"/> inside.
/// </summary>
public sealed class ModelPathException(string message, ModelPathProblem problem, string path, Exception? inner = null)
    : IOException(message, inner)
{
    public ModelPathProblem Problem { get; } = problem;

    public string Path { get; } = path;
}
