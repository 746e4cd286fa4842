namespace Mnemosyne.Engine.Safetensors;

/// <summary>
/// Where a network's graph gets its weights by name: a checkpoint file, or (in the tests' generator) a
/// recorder that lists what the network needs, which is how random checkpoints get every key and shape.
/// </summary>
public interface IWeightSource
{
    string Path { get; }

    /// <summary>The tensor, checked against the shape the network's config asks for.</summary>
    TensorInfo Expect(string name, long[] shape);
}
