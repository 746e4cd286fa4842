using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// NaN or infinity out of a network whose inputs were finite comes from its weights or config (damaged,
/// edited, or overflowing float16). It is caught where it first appears and blamed on that file, instead
/// of surfacing as a NaN picture after the whole scene.
/// </summary>
internal static class NonFiniteOutput
{
    /// <param name="network">As messages name it: "The UNet".</param>
    /// <param name="source">The file (or folder) the network was loaded from.</param>
    /// <param name="what">What the values are: "its first noise prediction".</param>
    /// <exception cref="CheckpointException">A value is not finite.</exception>
    public static void Check(ReadOnlySpan<float> values, string network, string source, string what)
    {
        if (FloatTensorOps.FirstNonFinite(values) is not { } at) return;
        throw new CheckpointException(
            $"{network} gave {values[at]} at value {at + 1} of {values.Length} of {what}, from finite inputs: its weights or config in {source} " +
            "hold non-finite or extreme values (a damaged or edited file, or a float16 overflow). Download or copy the model again.", source);
    }
}
