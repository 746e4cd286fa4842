using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>Tiled decoding against diffusers' AutoencoderKL with enable_tiling() on config B (tests/reference/vae-tiled-b).</summary>
public sealed class TiledVaeDecoderTests(ITestOutputHelper output)
{
    private const float Tolerance = 1e-4f;

    private static string Case(string file) => Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "vae-tiled-b", file);

    private static VaeDecoder LoadVae() => VaeDecoder.Load(
        new ComponentFiles(TinyModel.B.Vae, Path.Combine(TinyModel.B.Vae, "config.json"), Path.Combine(TinyModel.B.Vae, "diffusion_pytorch_model.safetensors")),
        SessionSettings.Default);

    [Theory]
    [InlineData("tiled-18x22")]
    [InlineData("tiled-8x30")]
    public void DecodesInTilesAsDiffusersDoes(string name)
    {
        using var vae = LoadVae();
        var tiled = new TiledVaeDecoder(vae);
        Assert.Equal((128, 16), (tiled.TileSampleSize, tiled.TileLatentSize));
        var latents = NpyFile.Read(Case(name + "-latents.npy"));

        var image = tiled.Run(latents);

        var expected = NpyFile.Read(Case(name + "-sample.npy"));
        Assert.Equal(expected.Shape, image.Shape);
        float error = expected.Data.Zip(image.Data, (a, b) => MathF.Abs(a - b)).Max();
        // The seams are real: the whole decode differs where the tiles meet.
        var whole = vae.Run(latents);
        float fromWhole = whole.Data.Zip(image.Data, (a, b) => MathF.Abs(a - b)).Max();
        output.WriteLine($"{name}: max-abs {error:E2} from diffusers' tiled decode; {fromWhole:E2} from the whole decode");
        Assert.True(error <= Tolerance, $"differs from diffusers by {error}");
        Assert.True(fromWhole > 1e-3, $"the tiled picture is the whole one to {fromWhole}");
    }

    [Fact]
    public void DecodesLatentsOfOneTileWhole()
    {
        using var vae = LoadVae();
        var latents = new FloatTensor(new TorchGenerator(5).Randn(1, 4, 16, 12), [1, 4, 16, 12]);
        Assert.Equal(vae.Run(latents).Data, new TiledVaeDecoder(vae).Run(latents).Data);
    }
}
