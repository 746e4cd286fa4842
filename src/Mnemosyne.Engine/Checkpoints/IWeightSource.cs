namespace Mnemosyne.Engine.Checkpoints;

/// <summary>
/// Where a network's graph gets its weights by name: a checkpoint file, or a <see cref="WeightRecorder"/>
/// that lists what the network needs (how the tiny-checkpoint generator knows every key and shape).
/// </summary>
public interface IWeightSource
{
    string Path { get; }

    /// <summary>The tensor, checked against the shape the network's config asks for.</summary>
    TensorInfo Expect(string name, long[] shape);
}
