using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Conversion;

/// <summary>
/// A linear layer's weight [rows = out, columns = in] held block-quantised for MatMulNBits: <paramref name="Blocks"/>
/// U8 [rows, blockCount, blockSize·bits/8] and <paramref name="Scales"/> F32 [rows, blockCount], both in <paramref name="File"/>.
/// </summary>
public sealed record QuantisedWeight(SafetensorsFile File, TensorInfo Blocks, TensorInfo Scales, int Bits, int BlockSize);

/// <summary>A weight source that can give a linear layer's weight quantised instead of in float32.</summary>
public interface IQuantisedWeightSource : IWeightSource
{
    /// <summary>
    /// The quantised form of the matrix <paramref name="name"/> [<paramref name="rows"/>, <paramref name="columns"/>], or null
    /// to have the layer read it in float32 (through <see cref="IWeightSource.Expect"/>) as usual.
    /// </summary>
    QuantisedWeight? LocateQuantised(string name, long rows, long columns);
}
