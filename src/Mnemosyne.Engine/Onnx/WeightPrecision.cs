namespace Mnemosyne.Engine.Onnx;

/// <summary>How a network holds the weights of its linear layers.</summary>
public enum WeightPrecision
{
    /// <summary>As the checkpoint has them, computed in float32: the reference numbers.</summary>
    Float32,

    /// <summary>
    /// The linear layers of the UNet (attention projections, feed-forwards, transformer projections, time
    /// embeddings, the IP-Adapter's keys and values) and of the CLIP text and image encoders with 8-bit weights
    /// in blocks of 32 along the input features, each block with its own float32 scale, run by ONNX Runtime's
    /// MatMulNBits with int8 compute; convolutions, norms, the VAE and the image projection stay float32. Faster
    /// and about a third of the memory, at a small numeric deviation from <see cref="Float32"/>. The quantised
    /// weights are made from the checkpoint once and cached on disk (<see cref="SessionSettings.ConvertedWeightsRoot"/>).
    /// </summary>
    Int8,
}
