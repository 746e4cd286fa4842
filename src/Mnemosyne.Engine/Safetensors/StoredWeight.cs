namespace Mnemosyne.Engine.Safetensors;

/// <summary>
/// Where the values of a weight a network asks for lie: a tensor of a safetensors file, or a run of
/// its leading rows (one of a fused q/k/v, which is contiguous), stored either as the network reads it
/// or transposed (a 2-D matrix kept the other way round).
/// </summary>
/// <param name="Tensor">The stored values: dtype, stored shape, absolute offset and length in <paramref name="File"/>.</param>
/// <param name="Transposed">The network needs the transpose of <paramref name="Tensor"/>.</param>
public sealed record StoredWeight(SafetensorsFile File, TensorInfo Tensor, bool Transposed = false);

/// <summary>
/// A weight source backed by safetensors files, possibly under other names and layouts than the
/// network asks for (see <see cref="Checkpoints.SingleFileCheckpoint"/>). Graphs use <see cref="Locate"/>
/// so that renamed, reshaped and sliced weights still reach ONNX Runtime as external data, without a copy.
/// </summary>
public interface IStoredWeightSource : IWeightSource
{
    /// <summary>Where the tensor <paramref name="name"/> of <paramref name="shape"/> is stored; checked as <see cref="IWeightSource.Expect"/> checks.</summary>
    StoredWeight Locate(string name, long[] shape);
}
