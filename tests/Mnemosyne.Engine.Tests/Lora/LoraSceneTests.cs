using System.Text.Json;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Tests.Pipeline;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Lora;

/// <summary>
/// Scenes with LoRAs against diffusers with the same LoRAs fused (tests/reference/lora-b, made by make_lora_cases.py):
/// kohya and PEFT files for the UNet and both encoders, two at once at different weights, a conv LoRA.
/// </summary>
public sealed class LoraSceneTests(SceneEngineFixture engines, ITestOutputHelper output) : IClassFixture<SceneEngineFixture>
{
    private static readonly string Folder = Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "lora-b");

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in TinyModel.SceneCases(Folder)) data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    /// <summary>The manifest's scene with the case's LoRAs.</summary>
    private SceneRequest Request(string name)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "manifest.json")));
        var scene = manifest.RootElement.GetProperty("scene");
        var loras = manifest.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name)
            .GetProperty("loras").EnumerateArray()
            .Select(l => new LoraRequest(Path.Combine(Folder, l[0].GetString()!), l[1].GetSingle())).ToList();
        return new SceneRequest
        {
            Prompt = scene.GetProperty("prompt").GetString()!,
            NegativePrompt = scene.GetProperty("negative").GetString(),
            Width = scene.GetProperty("w").GetInt32(),
            Height = scene.GetProperty("h").GetInt32(),
            Steps = scene.GetProperty("steps").GetInt32(),
            GuidanceScale = scene.GetProperty("g").GetSingle(),
            ReferenceWeight = scene.GetProperty("ip").GetSingle(),
            Seed = scene.GetProperty("seed").GetInt64(),
            Scheduler = Enum.Parse<SchedulerKind>(scene.GetProperty("sched").GetString()!),
            Reference = engines.Reference(TinyModel.B),
            Loras = loras,
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesDiffusersWithTheLorasFused(string name)
    {
        var engine = engines.Engine(TinyModel.B);
        var request = Request(name);
        var scene = engine.Generate(request);
        var plain = engine.Generate(request with { Loras = [] });

        var expected = NpyFile.Read(Path.Combine(Folder, name, "final-latents.npy"));
        var error = expected.Data.Zip(scene.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        var effect = expected.Data.Zip(plain.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        var image = SafeImageDecoder.Default.Decode(Path.Combine(Folder, name, "image.png"));
        int within = image.Rgb.Zip(scene.Image.Rgb, (a, b) => Math.Abs(a - b) <= 1 ? 1 : 0).Sum();
        output.WriteLine($"{name}: final latents max-abs {error:E2} (the LoRAs move them by {effect:E2}); {within}/{image.Rgb.Length} 8-bit values within 1 level");
        Assert.True(error <= 1e-4, $"final latents differ by {error}");
        Assert.Equal(image.Rgb.Length, within);
        Assert.True(effect > 1e-2, $"the LoRAs changed the latents by only {effect}");
    }

    [Fact]
    public void ScenesRecordTheirLoras_AndSwitchingBackGivesThePlainScene()
    {
        var engine = engines.Engine(TinyModel.B);
        var request = Request("kira-and-film");
        var before = engine.Generate(request with { Loras = [] });
        var scene = engine.Generate(request);
        var after = engine.Generate(request with { Loras = [] });

        Assert.Equal(before.FinalLatents.Data, after.FinalLatents.Data);
        Assert.Equal(["kira", "film"], scene.Loras.Select(l => l.Name));
        Assert.Equal([0.8f, -0.5f], scene.Loras.Select(l => l.Weight));
        Assert.All(scene.Loras, l => Assert.Matches("^[0-9a-f]{12}$", l.Hash));
        var text = scene.ParametersText();
        Assert.Contains($", Lora hashes: \"kira: {scene.Loras[0].Hash}, film: {scene.Loras[1].Hash}\", Lora weights: \"kira: 0.8, film: -0.5\"", text);
        Assert.DoesNotContain("Lora", after.ParametersText());
    }

    [Fact]
    public void ARefusedLoraLeavesTheEngineAsItWas()
    {
        var engine = engines.Engine(TinyModel.B);
        var request = Request("kohya-kira");
        var first = engine.Generate(request);
        var missing = Path.Combine(Folder, "no-such-lora.safetensors");

        Assert.Throws<FileNotFoundException>(() => engine.Generate(request with { Loras = [.. request.Loras, new LoraRequest(missing, 1)] }));

        Assert.Equal(first.FinalLatents.Data, engine.Generate(request).FinalLatents.Data);
    }

    [Fact]
    public void Int8EnginesRefuseLoras()
    {
        using var fixture = new Int8EngineFixture();
        var request = Request("peft-film") with { Reference = fixture.Reference(TinyModel.B) };
        var error = Assert.Throws<InvalidOperationException>(() => fixture.Engine(TinyModel.B).Generate(request));
        Assert.Contains("Float32", error.Message);
    }
}
