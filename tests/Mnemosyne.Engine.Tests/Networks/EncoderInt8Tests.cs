using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// The CLIP text and image encoders with 8-bit linear weights (<see cref="WeightPrecision.Int8"/>) against the
/// transformers outputs of networks-a: the deviation is reported, and bounded relative to the outputs' size.
/// </summary>
public sealed class EncoderInt8Tests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Bound on max-abs(int8 − reference) / max-abs(reference); a wrong scale or layout gives errors of the output's size.</summary>
    private const float RelativeBound = 0.05f;

    private readonly string cache = Directory.CreateTempSubdirectory("mnemosyne-int8-encoders-").FullName;

    public void Dispose() => Directory.Delete(cache, recursive: true);

    private SessionSettings Int8 => new() { Precision = WeightPrecision.Int8, ConvertedWeightsRoot = cache };

    private void Check(string what, FloatTensor expected, FloatTensor actual)
    {
        float error = MaxAbsError(expected, actual), peak = expected.Data.Max(Math.Abs);
        output.WriteLine($"{what}: int8 max-abs error {error:g3} (outputs up to {peak:g3}: {error / peak:P2})");
        Assert.True(error <= RelativeBound * peak, $"{what}: int8 is {error:g3} from transformers, over {RelativeBound:P0} of {peak:g3}");
    }

    [FidelityFact]
    public void TextEncodersStayCloseToTransformers()
    {
        using var encoder1 = ClipTextEncoder.Load(FidelityTextEncoder, Int8);
        using var encoder2 = ClipTextEncoder.Load(FidelityTextEncoder2, Int8);
        var first = encoder1.Run(NetworksAIds("tokenizer"));
        var second = encoder2.Run(NetworksAIds("tokenizer_2"));

        Check("text_encoder penultimate", ReadNpy(Path.Combine(NetworksA, "text-encoder-penultimate.npy")), first.PenultimateHiddenStates);
        Check("text_encoder_2 penultimate", ReadNpy(Path.Combine(NetworksA, "text-encoder-2-penultimate.npy")), second.PenultimateHiddenStates);
        Check("text_encoder_2 text_embeds", ReadNpy(Path.Combine(NetworksA, "text-encoder-2-text-embeds.npy")), second.TextEmbeds!);
        // Each encoder has its own folder of converted weights.
        Assert.Equal(2, Directory.GetDirectories(cache).Length);
    }

    [FidelityFact]
    public void TheImageEncoderStaysCloseToTransformers()
    {
        using var encoder = ClipVisionEncoder.Load(IpAdapterFiles.FromRepository(FidelityIpAdapter), Int8);
        Check("image_embeds, random pixels", ReadNpy(Path.Combine(NetworksA, "image-encoder-random-image-embeds.npy")),
            encoder.Run(ReadNpy(Path.Combine(NetworksA, "image-encoder-random-pixel-values.npy"))));
        Check("image_embeds, reference image", ReadNpy(Path.Combine(TestPaths.Fidelity, "reference-image-embeds.npy")),
            encoder.Run(ReadNpy(Path.Combine(TestPaths.Fidelity, "reference-pixel-values.npy"))));
    }
}
