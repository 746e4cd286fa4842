using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// Turns SDXL latents as the sampler leaves them into a picture [batch, 3, f·h, f·w] in about [-1, 1]:
/// the VAE's decoder (<see cref="VaeDecoder"/>), or a tiny distilled one (<see cref="TinyAutoencoderDecoder"/>).
/// </summary>
public interface ILatentDecoder : IDisposable
{
    int LatentChannels { get; }

    /// <summary>The weights file or folder the decoder was loaded from, for messages.</summary>
    string Source { get; }

    /// <summary>Pixels per latent along each side.</summary>
    int UpscaleFactor { get; }

    FloatTensor Run(FloatTensor latents, CancellationToken cancellation = default);
}

/// <summary>The checks every latent decoder makes of its input before running.</summary>
internal static class LatentInput
{
    /// <param name="what">The decoder, as messages name it ("VAE", "Tiny decoder").</param>
    public static void Check(FloatTensor latents, int channels, string what)
    {
        ArgumentNullException.ThrowIfNull(latents);
        var shape = latents.Shape;
        if (shape.Length != 4 || shape[1] != channels || shape.Any(d => d <= 0))
            throw new ArgumentException(
                $"{what} latents must be [batch, {channels}, height, width] with every size positive; got [{string.Join(", ", shape)}].",
                nameof(latents));
        if (latents.Length != shape.Aggregate(1L, (a, d) => a * d))
            throw new ArgumentException(
                $"{what} latents hold {latents.Length} values but their shape [{string.Join(", ", shape)}] needs {shape.Aggregate(1L, (a, d) => a * d)}.",
                nameof(latents));
    }
}
