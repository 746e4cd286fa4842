using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Testing;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// IP-Adapter Plus's image side on config B against diffusers (tests/reference/networks-plus-b): the image
/// encoder's penultimate hidden states, the resampler, its Int8 deviation, and how the adapter's kind is told.
/// </summary>
public sealed class IpAdapterPlusImageProjectionTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>As <see cref="EncoderInt8Tests"/>: max-abs(int8 − reference) / max-abs(reference).</summary>
    private const float Int8RelativeBound = 0.05f;

    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-ip-plus-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static IpAdapterFiles Files => IpAdapterFiles.Open(TinyModel.PlusAdapterFile);

    private static IpAdapterPlusImageProjection Load(SessionSettings settings)
        => IpAdapterPlusImageProjection.Load(Files.AdapterPath, Files.ReadImageEncoderConfig(), DiffusersCheckpoint.Open(TinyModel.B.Folder).ReadUnetConfig(), settings);

    private static FloatTensor Inputs => ReadNpy(TinyModel.PlusNetworkCase("plus-projection-hidden-states.npy"));

    [Fact]
    public void TheEncodersPenultimateHiddenStatesMatchTransformers_ForZerosAndForPixels()
    {
        using var encoder = ClipVisionEncoder.Load(Files, SessionSettings.Default);
        var config = encoder.Config;
        var zeros = encoder.Encode(FloatTensorOps.Zeros(1, config.NumChannels, config.ImageSize, config.ImageSize));
        var pixels = encoder.Encode(TinyModel.B.RandomPixelValues());

        float zerosError = MaxAbsError(Rows(Inputs, 0, 1), zeros.PenultimateHiddenStates), pixelsError = MaxAbsError(Rows(Inputs, 1, 1), pixels.PenultimateHiddenStates);
        output.WriteLine($"penultimate hidden states: zeros {zerosError:E2}, random pixels {pixelsError:E2}");
        Assert.InRange(zerosError, 0, Tolerance);
        Assert.InRange(pixelsError, 0, Tolerance);
        // The same run still gives the base adapter's image_embeds.
        Assert.InRange(MaxAbsError(ReadNpy(TinyModel.B.NetworkCase("image-encoder-random-image-embeds.npy")), pixels.ImageEmbeds), 0, Tolerance);
    }

    [Fact]
    public void TheResamplerMatchesDiffusers()
    {
        using var projection = Load(SessionSettings.Default);
        Assert.Equal(CheckpointShape.Tiny.IpAdapterPlus, projection.Config);
        var error = MaxAbsError(ReadNpy(TinyModel.PlusNetworkCase("plus-projection-ip-tokens.npy")), projection.Run(Inputs));
        output.WriteLine($"resampler ip tokens (zeros' states, pixels' states, normal): {error:E2}");
        Assert.InRange(error, 0, Tolerance);
    }

    [Fact]
    public void TheInt8ResamplerStaysCloseToDiffusers()
    {
        using var projection = Load(new SessionSettings { Precision = WeightPrecision.Int8, ConvertedWeightsRoot = dir });
        var expected = ReadNpy(TinyModel.PlusNetworkCase("plus-projection-ip-tokens.npy"));
        float error = MaxAbsError(expected, projection.Run(Inputs)), peak = expected.Data.Max(Math.Abs);
        output.WriteLine($"resampler ip tokens: int8 max-abs error {error:g3} (outputs up to {peak:g3}: {error / peak:P2})");
        Assert.True(error <= Int8RelativeBound * peak, $"int8 is {error:g3} from diffusers, over {Int8RelativeBound:P0} of {peak:g3}");
        Assert.Single(Directory.GetDirectories(dir));
    }

    [Fact]
    public void TheKindIsToldByTheFilesKeys()
    {
        Assert.Equal(IpAdapterKind.Plus, Files.ReadKind());
        Assert.Equal(IpAdapterKind.Base, IpAdapterFiles.Open(TinyModel.B.IpAdapterFile).ReadKind());

        // An IP-Adapter "full" (image_proj.proj.0/.3) is neither.
        var sdxlModels = Directory.CreateDirectory(Path.Combine(dir, "repo", "sdxl_models")).FullName;
        var full = Path.Combine(sdxlModels, "ip-adapter-full.safetensors");
        SafetensorsWriter.Write(full, [new("image_proj.proj.0.weight", [4, 4], () => new float[16])]);
        var files = IpAdapterFiles.Open(full, Path.Combine(TinyModel.B.IpAdapterRepository, "models", "image_encoder"));
        var e = Assert.Throws<CheckpointException>(() => files.ReadKind());
        Assert.Contains("image_proj.latents", e.Message);
        Assert.Equal(full, e.FilePath);
    }

    [Fact]
    public void AResamplerForAnotherUnetIsRefusedWithItsSizes()
    {
        var unet = DiffusersCheckpoint.Open(TinyModel.B.Folder).ReadUnetConfig() with { CrossAttentionDim = 2048 };
        var e = Assert.Throws<CheckpointException>(() => IpAdapterPlusImageProjection.Load(Files.AdapterPath, Files.ReadImageEncoderConfig(), unet, SessionSettings.Default));
        Assert.Contains("makes tokens of 64", e.Message);
        Assert.Contains("takes 2048", e.Message);
    }
}
