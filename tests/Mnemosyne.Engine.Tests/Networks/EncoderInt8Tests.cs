using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// The CLIP text and image encoders with 8-bit linear weights (<see cref="WeightPrecision.Int8"/>) against the
/// transformers outputs of the tiny models' network cases: the deviation is reported, and bounded relative to the outputs' size.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
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

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void TextEncodersStayCloseToTransformers(string model)
    {
        var tiny = TinyModel.Named(model);
        using var encoder1 = ClipTextEncoder.Load(tiny.TextEncoder, Int8);
        using var encoder2 = ClipTextEncoder.Load(tiny.TextEncoder2, Int8);
        var first = encoder1.Run(IdRows(tiny.NetworkCase("text-ids.json"), "tokenizer"));
        var second = encoder2.Run(IdRows(tiny.NetworkCase("text-ids.json"), "tokenizer_2"));

        Check($"config {model} text_encoder penultimate", ReadNpy(tiny.NetworkCase("text-encoder-penultimate.npy")), first.PenultimateHiddenStates);
        Check($"config {model} text_encoder_2 penultimate", ReadNpy(tiny.NetworkCase("text-encoder-2-penultimate.npy")), second.PenultimateHiddenStates);
        Check($"config {model} text_encoder_2 text_embeds", ReadNpy(tiny.NetworkCase("text-encoder-2-text-embeds.npy")), second.TextEmbeds!);
        // Each encoder has its own folder of converted weights.
        Assert.Equal(2, Directory.GetDirectories(cache).Length);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void TheImageEncoderStaysCloseToTransformers(string model)
    {
        var tiny = TinyModel.Named(model);
        using var encoder = ClipVisionEncoder.Load(IpAdapterFiles.FromRepository(tiny.IpAdapterRepository), Int8);
        Check($"config {model} image_embeds, random pixels", ReadNpy(tiny.NetworkCase("image-encoder-random-image-embeds.npy")),
            encoder.Run(tiny.RandomPixelValues()));
        Check($"config {model} image_embeds, reference image", ReadNpy(Path.Combine(tiny.ReferenceFolder, "reference-image-embeds.npy")),
            encoder.Run(ReadNpy(Path.Combine(tiny.ReferenceFolder, "reference-pixel-values.npy"))));
    }
}
