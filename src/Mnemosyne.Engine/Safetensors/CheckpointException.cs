namespace Mnemosyne.Engine.Safetensors;

/// <summary>A defect in a checkpoint file: names the file and, where known, the tensor.</summary>
public sealed class CheckpointException(string message, string path, string? tensor = null, Exception? inner = null)
    : Exception(message, inner)
{
    public string FilePath { get; } = path;

    public string? TensorName { get; } = tensor;
}
