using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// The VAE encoder against diffusers' vae.encode(...).latent_dist on config B's starting pictures
/// (tests/reference/img2img-b, make_img2img_cases.py), read from the diffusers folder and from the same weights as a
/// single-file checkpoint.
/// </summary>
public sealed class VaeEncoderTests(ITestOutputHelper output) : IDisposable
{
    private const float Tolerance = 1e-4f;

    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-vae-encoder-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static string Case(string file) => Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "img2img-b", file);

    private static VaeConfig TinyConfig => ConfigJson.Read<VaeConfig>(Path.Combine(TinyModel.B.Vae, "config.json"));

    public static TheoryData<string, bool> Pictures() => new()
    {
        { "init-64", false }, { "init-96x64", false }, { "init-64", true }, { "init-96x64", true },
    };

    [Theory]
    [MemberData(nameof(Pictures))]
    public void EncodesAsDiffusersDoes(string picture, bool singleFile)
    {
        using var weights = singleFile ? (IDisposable)SingleFile() : SafetensorsFile.Open(Path.Combine(TinyModel.B.Vae, "diffusion_pytorch_model.safetensors"));
        IWeightSource source = weights is SingleFileCheckpoint single ? single.Vae : (SafetensorsFile)weights;
        using var encoder = VaeEncoder.Load(TinyConfig, source, SessionSettings.Default);
        var pixels = ImageToImage.Pixels(SafeImageDecoder.Default.Decode(Case(picture + ".png")));

        var distribution = encoder.Run(pixels);

        var mean = NpyFile.Read(Case($"vae-encoder-{picture}-mean.npy"));
        var logVariance = NpyFile.Read(Case($"vae-encoder-{picture}-logvar.npy"));
        Assert.Equal(mean.Shape, distribution.Mean.Shape);
        Assert.Equal(logVariance.Shape, distribution.LogVariance.Shape);
        float meanError = MaxAbs(mean.Data, distribution.Mean.Data), logVarianceError = MaxAbs(logVariance.Data, distribution.LogVariance.Data);
        output.WriteLine($"{picture} ({(singleFile ? "single file" : "diffusers folder")}): mean max-abs {meanError:E2}, log-variance {logVarianceError:E2}");
        Assert.True(meanError <= Tolerance, $"mean differs by {meanError}");
        Assert.True(logVarianceError <= Tolerance, $"log-variance differs by {logVarianceError}");
    }

    /// <summary>The scaled latents are mean + std·ε (ε the generator's next draw) times scaling_factor.</summary>
    [Fact]
    public void ScaledLatentsSampleTheDistributionWithTheGeneratorsNextDraw()
    {
        var mean = new FloatTensor([1f, -2f, 0.5f, 0f], [1, 4, 1, 1]);
        var logVariance = new FloatTensor([0f, -30f, 2f, 25f], [1, 4, 1, 1]);
        var config = new VaeConfig { ScalingFactor = 0.5f };
        var epsilon = new TorchGenerator(9).Randn(1, 4, 1, 1);

        var latents = new LatentDistribution(mean, logVariance, config).Scaled(new TorchGenerator(9), useLatentsMeanStd: true).Data;

        for (int i = 0; i < 4; i++)
            Assert.Equal(0.5f * (mean.Data[i] + MathF.Exp(0.5f * logVariance.Data[i]) * epsilon[i]), latents[i], 6);
        var shifted = new LatentDistribution(mean, logVariance, config with { LatentsMean = [1, 1, 1, 1], LatentsStd = [2, 2, 2, 2] });
        Assert.Equal(0.5f * (mean.Data[0] + epsilon[0] - 1f) / 2f, shifted.Scaled(new TorchGenerator(9), useLatentsMeanStd: true).Data[0], 6);
        Assert.Equal(latents[0], shifted.Scaled(new TorchGenerator(9), useLatentsMeanStd: false).Data[0]);
    }

    private SingleFileCheckpoint SingleFile()
    {
        var path = Path.Combine(dir, "tiny.safetensors");
        RandomCheckpoint.WriteSingleFile(path, CheckpointShape.Tiny, TinyModel.ConfigBSeed);
        var tiny = CheckpointShape.Tiny;
        return SingleFileCheckpoint.Open(path, new SdxlConfigs(tiny.Unet, tiny.Vae, tiny.TextEncoder, tiny.TextEncoder2));
    }

    private static float MaxAbs(float[] a, float[] b) => a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
}
