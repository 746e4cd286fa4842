using System.Text.Json;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The hires fix against diffusers' text-to-image then img2img pipelines, chained (tests/reference/hires-b).</summary>
public sealed class HiresFixTests(SceneEngineFixture engines, ITestOutputHelper output) : IClassFixture<SceneEngineFixture>
{
    private static readonly string Folder = Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "hires-b");

    private static JsonElement Case(string name) => JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "manifest.json")))
        .RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    private (SceneRequest Request, HiresFix Hires) Load(string name)
    {
        var c = Case(name);
        var request = DiffusersSceneCases.Request(c, Path.Combine(Folder, name), Folder, engines.Reference(TinyModel.B));
        var hires = new HiresFix
        {
            Scale = c.GetProperty("scale").GetDouble(),
            Strength = c.GetProperty("strength").GetDouble(),
            Upscale = Enum.Parse<HiresUpscale>(c.GetProperty("upscale").GetString()!, ignoreCase: true),
        };
        return (request, hires);
    }

    /// <summary>Latent upscale: the whole chain, base scene included, to diffusers' final latents.</summary>
    [Fact]
    public void LatentUpscaleMatchesDiffusersPipelinesChained()
    {
        var (request, hires) = Load("hires-latent-euler");

        var scene = hires.Generate(engines.Engine(TinyModel.B), request);

        var (latentError, fraction) = Compare("hires-latent-euler", scene);
        Assert.True(latentError <= 1e-4, $"final latents differ by {latentError}");
        Assert.True(fraction >= 0.999, $"only {fraction:P3} of pixels within 1 level");
        Assert.Equal((96, 96, 64, 64), (scene.Width, scene.Height, scene.BaseWidth, scene.BaseHeight));
        var text = scene.ParametersText();
        Assert.Contains("Size: 64x64, ", text);
        Assert.Contains("Denoising strength: 0.5, Hires upscale: 1.5, Hires upscaler: Latent", text);
        Assert.DoesNotContain("Init image", text);

        // Read back, the settings make the same scene: Size is the base size, the hires settings beside it.
        var settings = SceneSettings.Parse(text);
        Assert.Equal((64, 64, 1.5, 0.5, HiresUpscale.Latent), (settings.Width, settings.Height, settings.HiresScale, settings.HiresStrength, settings.HiresUpscale));
        Assert.DoesNotContain("Hires upscale", settings.Extra.Keys);
    }

    /// <summary>An A1111 hires fix with an upscaler Mnemosyne does not have is kept as text, and its settings make the base scene.</summary>
    [Fact]
    public void LeavesAnotherUpscalersHiresFixInExtra()
    {
        var settings = SceneSettings.Parse("a cat\nSteps: 20, Seed: 1, Size: 512x512, Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: R-ESRGAN 4x+");
        Assert.Null(settings.HiresScale);
        Assert.Null(settings.HiresStrength);
        Assert.Null(settings.HiresUpscale);
        Assert.Equal(("0.4", "2", "R-ESRGAN 4x+"), (settings.Extra["Denoising strength"], settings.Extra["Hires upscale"], settings.Extra["Hires upscaler"]));
    }

    /// <summary>
    /// Pixel upscale: the refine pass from diffusers' own base picture, resized here, to diffusers' final latents (the
    /// resize to the byte); then the whole chain. The base picture is 8-bit: one value a level off (as the bar for
    /// pictures allows) moves the refined latents by about 1e-3, so the whole chain is held to its pixels.
    /// </summary>
    [Fact]
    public void PixelUpscaleMatchesDiffusersPipelinesChained()
    {
        const string name = "hires-pixel-euler-noref";
        var (request, hires) = Load(name);
        var basePicture = SafeImageDecoder.Default.Decode(Path.Combine(Folder, name, "base.png"));
        var upscaled = PillowResampler.ResizeLanczos(basePicture, 96, 96);
        Assert.Equal(SafeImageDecoder.Default.Decode(Path.Combine(Folder, name, "upscaled.png")).Rgb, upscaled.Rgb);

        var refined = engines.Engine(TinyModel.B).Generate(request with { Width = 96, Height = 96, InitImage = upscaled, Strength = hires.Strength });
        var (refineError, _) = Compare(name, refined);
        Assert.True(refineError <= 1e-4, $"the refine pass's final latents differ by {refineError}");

        var scene = hires.Generate(engines.Engine(TinyModel.B), request);
        var (latentError, fraction) = Compare(name, scene);
        Assert.True(latentError <= 2e-3, $"final latents differ by {latentError}");
        Assert.True(fraction >= 0.999, $"only {fraction:P3} of pixels within 1 level");
        Assert.Contains("Size: 64x64, ", scene.ParametersText());
        Assert.Contains("Hires upscaler: Lanczos", scene.ParametersText());
    }

    private (float LatentError, double Fraction) Compare(string name, Scene scene)
    {
        var (latentError, fraction) = DiffusersSceneCases.Compare(Path.Combine(Folder, name), scene);
        output.WriteLine($"{name}: final latents max-abs {latentError:E2}; {fraction:P3} of 8-bit values within 1 level");
        return (latentError, fraction);
    }

    /// <summary>interpolate's bilinear with align_corners False: the corners are copied, the inside mixes neighbours.</summary>
    [Fact]
    public void UpscalesLatentsAsTorchsBilinearInterpolation()
    {
        var latents = new FloatTensor([0f, 1f, 2f, 3f], [1, 1, 2, 2]);
        var upscaled = HiresFix.UpscaleLatents(latents, 4, 4);
        // Sample points (o + 0.5)/2 − 0.5: 0 (clamped), 0.25, 0.75, 1 (then the last input twice).
        Assert.Equal([0f, 0.25f, 0.75f, 1f], upscaled.Data[..4]);
        Assert.Equal([2f, 2.25f, 2.75f, 3f], upscaled.Data[12..]);
    }

    public static TheoryData<double, double, int, string> BadSettings() => new()
    {
        { 1.0, 0.5, 64, "more than 1" },
        { 4.5, 0.5, 64, "at most 4" },
        { double.NaN, 0.5, 64, "more than 1" },
        { 1.5, 1.5, 64, "from 0 to 1" },
        { 1.5, -0.1, 64, "from 0 to 1" },
        { 1.5, 0.5, 72, "not a multiple of 8" },
        { 1.5, 0.1, 64, "runs none" },
        { 4.0, 0.5, 1088, "largest side" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void RefusesBadSettingsWithOneClearMessage(double scale, double strength, int width, string message)
    {
        var request = new SceneRequest { Prompt = "a lighthouse", Seed = 1, Steps = 4, Width = width, Height = 64 };
        var error = Assert.ThrowsAny<ArgumentException>(() => new HiresFix { Scale = scale, Strength = strength }.Validate(request));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void RefusesAStartingPicture()
    {
        var request = new SceneRequest { Prompt = "a lighthouse", Seed = 1, Width = 64, Height = 64, InitImage = new RgbImage(64, 64, new byte[64 * 64 * 3]) };
        var error = Assert.Throws<ArgumentException>(() => new HiresFix { Scale = 2 }.Validate(request));
        Assert.Contains("made from text", error.Message);
    }
}
