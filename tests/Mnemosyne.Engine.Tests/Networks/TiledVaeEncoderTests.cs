using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Tests.Pipeline;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>Tiled encoding against diffusers' AutoencoderKL with enable_tiling() on config B (tests/reference/vae-tiled-b).</summary>
public sealed class TiledVaeEncoderTests(SceneEngineFixture engines, ITestOutputHelper output) : IClassFixture<SceneEngineFixture>
{
    private const float Tolerance = 1e-4f;

    private static string Case(string file) => Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "vae-tiled-b", file);

    private static VaeEncoder LoadEncoder(SafetensorsFile weights) =>
        VaeEncoder.Load(ConfigJson.Read<VaeConfig>(Path.Combine(TinyModel.B.Vae, "config.json")), weights, SessionSettings.Default);

    private static SafetensorsFile OpenWeights() => SafetensorsFile.Open(Path.Combine(TinyModel.B.Vae, "diffusion_pytorch_model.safetensors"));

    private static RgbImage Picture() => SafeImageDecoder.Default.Decode(Case("encode-136x168-picture.png"));

    [Fact]
    public void EncodesInTilesAsDiffusersDoes()
    {
        using var weights = OpenWeights();
        using var vae = LoadEncoder(weights);
        var tiled = new TiledVaeEncoder(vae);
        Assert.Equal((128, 16), (tiled.TileSampleSize, tiled.TileLatentSize));
        var pixels = ImageToImage.Pixels(Picture());

        var distribution = tiled.Run(pixels);

        var mean = NpyFile.Read(Case("encode-136x168-mean.npy"));
        var logVariance = NpyFile.Read(Case("encode-136x168-logvar.npy"));
        Assert.Equal(mean.Shape, distribution.Mean.Shape);
        Assert.Equal(logVariance.Shape, distribution.LogVariance.Shape);
        float meanError = MaxAbs(mean.Data, distribution.Mean.Data), logVarianceError = MaxAbs(logVariance.Data, distribution.LogVariance.Data);
        // The seams are real: the whole encode differs where the tiles meet.
        float fromWhole = MaxAbs(vae.Run(pixels).Mean.Data, distribution.Mean.Data);
        output.WriteLine($"mean max-abs {meanError:E2}, log-variance {logVarianceError:E2} from diffusers' tiled encode; mean {fromWhole:E2} from the whole encode");
        Assert.True(meanError <= Tolerance, $"mean differs by {meanError}");
        Assert.True(logVarianceError <= Tolerance, $"log-variance differs by {logVarianceError}");
        Assert.True(fromWhole > 1e-3, $"the tiled mean is the whole one to {fromWhole}");
    }

    [Fact]
    public void EncodesPicturesOfOneTileWhole()
    {
        using var weights = OpenWeights();
        using var vae = LoadEncoder(weights);
        var pixels = ImageToImage.Pixels(Picture());
        var small = new FloatTensor(pixels.Data[..(3 * 128 * 96)], [1, 3, 128, 96]);
        Assert.Equal(vae.Run(small).Mean.Data, new TiledVaeEncoder(vae).Run(small).Mean.Data);
    }

    /// <summary>
    /// A scene from a picture larger than a tile, decoded in tiles, encodes its picture in tiles too: its denoising
    /// differs from the Full scene's; a picture of one tile is encoded whole, so the latents are the Full scene's.
    /// </summary>
    [Fact]
    public void ScenesDecodedInTilesEncodeTheirPictureInTiles()
    {
        var engine = engines.Engine(TinyModel.B);
        var picture = Picture();
        var request = new SceneRequest { Prompt = "a portrait in the rain", Seed = 3, Steps = 2, Width = 168, Height = 136, InitImage = picture, Strength = 0.5 };
        float large = MaxAbs(engine.Generate(request).FinalLatents.Data, engine.Generate(request with { Decoder = SceneDecoder.Tiled }).FinalLatents.Data);
        var small = request with { Width = 96, Height = 64, InitImage = PillowResampler.ResizeBicubic(picture, 96, 64) };
        float oneTile = MaxAbs(engine.Generate(small).FinalLatents.Data, engine.Generate(small with { Decoder = SceneDecoder.Tiled }).FinalLatents.Data);
        output.WriteLine($"tiled against whole encode: {large:E2} at 168×136, {oneTile:E2} at 96×64");
        Assert.True(large > 1e-3, $"the tiled scene's latents are the whole one's to {large}");
        Assert.Equal(0f, oneTile);
    }

    private static float MaxAbs(float[] a, float[] b) => a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
}
