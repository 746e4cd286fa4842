using System.Text.Json;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Tests.Pipeline;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Lora;

/// <summary>
/// Scenes with LoRAs against diffusers with the same LoRAs fused (tests/reference/lora-b, made by make_lora_cases.py):
/// kohya and PEFT files for the UNet and both encoders, two at once at different weights, a conv LoRA.
/// </summary>
public sealed class LoraSceneTests(SceneEngineFixture engines, ITestOutputHelper output) : IClassFixture<SceneEngineFixture>, IDisposable
{
    private readonly string temporary = Directory.CreateTempSubdirectory("mnemosyne-lora-scenes-").FullName;
    private readonly Lazy<Int8EngineFixture> int8 = new(() => new Int8EngineFixture());

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

    /// <summary>
    /// Another set of LoRAs or other weights change the inputs of the one UNet with LoRA branches, never its session, and
    /// give what a fresh engine gives with that set.
    /// </summary>
    [Fact]
    public void SwitchingLorasOrWeightsMakesNoNewSession_AndGivesWhatAFreshEngineGives()
    {
        // An engine of its own, whose LoRA sessions no other test has made.
        using var own = new SceneEngineFixture();
        var engine = own.Engine(TinyModel.B);
        var kira = Request("kohya-kira") with { Reference = own.Reference(TinyModel.B) };
        var both = Request("kira-and-film") with { Reference = own.Reference(TinyModel.B) };
        var reweighted = both with { Loras = [both.Loras[0] with { Weight = 0.3f }, both.Loras[1] with { Weight = 0.9f }] };
        Assert.Null(engine.LoraUnetLoads);
        var first = engine.Generate(kira).FinalLatents.Data;
        var loads = engine.LoraUnetLoads;

        var switched = engine.Generate(both).FinalLatents.Data;
        var changed = engine.Generate(reweighted).FinalLatents.Data;
        var back = engine.Generate(kira).FinalLatents.Data;

        Assert.Equal(1, loads);
        Assert.Equal(loads, engine.LoraUnetLoads);
        Assert.Equal(first, back);
        Assert.NotEqual(switched, changed);
        using var fresh = new SceneEngineFixture();
        Assert.Equal(fresh.Engine(TinyModel.B).Generate(both with { Reference = fresh.Reference(TinyModel.B) }).FinalLatents.Data, switched);
        using var freshReweighted = new SceneEngineFixture();
        Assert.Equal(freshReweighted.Engine(TinyModel.B).Generate(reweighted with { Reference = freshReweighted.Reference(TinyModel.B) }).FinalLatents.Data, changed);
    }

    /// <summary>
    /// DeepCache's shallow UNet has the branches of its own layers (conv_in, the last up layer, the head) and is fed
    /// them as the whole one is (a branch input left unfed fails the run): a DeepCache scene with a conv LoRA runs, and
    /// differs both from the scene without it and from the whole-UNet scene with it.
    /// </summary>
    [Fact]
    public void DeepCacheShallowStepsTakeTheLorasToo()
    {
        var engine = engines.Engine(TinyModel.B);
        var request = Request("conv-texture") with { DeepCacheInterval = 2 };

        var cached = engine.Generate(request).FinalLatents.Data;
        var plain = engine.Generate(request with { Loras = [] }).FinalLatents.Data;
        var whole = engine.Generate(request with { DeepCacheInterval = 1 }).FinalLatents.Data;

        Assert.NotEqual(plain, cached);
        Assert.NotEqual(whole, cached);
        Assert.All(cached, v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>
    /// Int8 engines take LoRAs: the branches stay float32 beside the 8-bit products. Bounded as the other Int8 scenes
    /// are (the int8 deviation of a few steps), and the LoRAs' effect must stand well out of it.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8EnginesApplyLoras(string name)
    {
        var fixture = int8.Value;
        var request = Request(name) with { Reference = fixture.Reference(TinyModel.B) };
        var engine = fixture.Engine(TinyModel.B);
        var scene = engine.Generate(request);
        var plain = engine.Generate(request with { Loras = [] });

        var expected = NpyFile.Read(Path.Combine(Folder, name, "final-latents.npy"));
        double error = expected.Data.Zip(scene.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        double effect = expected.Data.Zip(plain.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        double peak = expected.Data.Max(Math.Abs);
        output.WriteLine($"{name}: int8 with LoRAs, final latents max-abs {error:E2} from diffusers with the LoRAs fused (latents up to {peak:F2}: {error / peak:P2}); " +
                         $"the int8 scene without them is {effect:E2} away");
        Assert.Equal(WeightPrecision.Int8, scene.Precision);
        Assert.True(error <= 0.1 * peak, $"int8 final latents with LoRAs are {error:E2} from diffusers, over 10% of {peak:F2}");
        Assert.True(error < effect / 2, $"the LoRAs' effect ({effect:E2}) does not stand out of the int8 deviation ({error:E2})");
    }

    /// <summary>sd-scripts' SDXL LoRAs name UNet layers by their ldm modules (lora_unet_input_blocks_4_1_…): the same layers, the same scene.</summary>
    [Fact]
    public void SdScriptsLdmNamesChangeTheSameLayers()
    {
        var unetFolder = TinyModel.B.Unet;
        var config = ConfigJson.Read<UnetConfig>(Path.Combine(unetFolder, "config.json"));
        using var unet = SafetensorsFile.Open(Path.Combine(unetFolder, "diffusion_pytorch_model.safetensors"));
        var ldm = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in unet.Tensors.Keys.Where(n => n.EndsWith(".weight", StringComparison.Ordinal)))
            if (SingleFileLayout.Unet(name, config) is { } key)
                ldm["lora_unet_" + name[..^".weight".Length].Replace('.', '_')] = "lora_unet_" + key.Key[SingleFileLayout.UnetPrefix.Length..^".weight".Length].Replace('.', '_');
        using var kira = SafetensorsFile.Open(Path.Combine(Folder, "kira.safetensors"));
        var renamed = 0;
        var entries = kira.Tensors.Keys.Select(k =>
        {
            var dot = k.IndexOf('.');
            var name = ldm.TryGetValue(k[..dot], out var other) ? other + k[dot..] : k;
            if (name != k) renamed++;
            return new SafetensorsWriter.Entry(name, kira[k].Shape, () => kira.ReadFloat32(k));
        }).ToList();
        var path = Path.Combine(temporary, "kira-ldm.safetensors");
        SafetensorsWriter.Write(path, entries);
        Assert.True(renamed > 100, $"only {renamed} tensors have another name in ldm");

        var engine = engines.Engine(TinyModel.B);
        var request = Request("kohya-kira");
        var expected = engine.Generate(request).FinalLatents.Data;
        Assert.Equal(expected, engine.Generate(request with { Loras = [new LoraRequest(path, request.Loras[0].Weight)] }).FinalLatents.Data);
    }

    public static TheoryData<string, long[], long[], string> MisfitLoras() => new()
    {
        { "lora_unet_down_blocks_7_attentions_0_proj_in", [2, 64], [64, 2], "layers this model does not have" },
        { "lora_te2_text_model_encoder_layers_99_mlp_fc1", [2, 32], [37, 2], "'text_model_encoder_layers_99_mlp_fc1' of the second text encoder" },
        { "lora_unet_conv_in", [2, 4, 3, 3], [33, 2, 1, 1], "shapes do not fit this model" },
        { "lora_unet_conv_in", [2, 4], [32, 2], "shapes do not fit this model" },
        { "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k", [2, 768], [64, 2], "a LoRA for Stable Diffusion 1.x" },
        { "lora_te1_text_model_embeddings_position_embedding", [2, 32], [77, 2], "which is no linear or convolution layer (an embedding)" },
    };

    /// <summary>A LoRA with one layer the model lacks (or that does not fit) is refused whole, beside a good one: the scene's networks stay as they were.</summary>
    [Theory]
    [MemberData(nameof(MisfitLoras))]
    public void ALoraThatDoesNotFitTheModelIsRefusedWhole(string layer, long[] down, long[] up, string message)
    {
        using var film = SafetensorsFile.Open(Path.Combine(Folder, "film.safetensors"));
        var entries = film.Tensors.Keys.Select(k => new SafetensorsWriter.Entry(k, film[k].Shape, () => film.ReadFloat32(k))).ToList();
        entries.Add(new(layer + ".lora_down.weight", down, () => new float[down.Aggregate(1L, (a, b) => a * b)]));
        entries.Add(new(layer + ".lora_up.weight", up, () => new float[up.Aggregate(1L, (a, b) => a * b)]));
        var path = Path.Combine(temporary, $"misfit-{Guid.NewGuid():N}.safetensors");
        SafetensorsWriter.Write(path, entries);
        var engine = engines.Engine(TinyModel.B);
        var request = Request("peft-film");
        var expected = engine.Generate(request).FinalLatents.Data;

        var error = Assert.Throws<CheckpointException>(() => engine.Generate(request with { Loras = [new LoraRequest(path, 1)] }));

        Assert.Contains(message, error.Message);
        Assert.Equal(path, error.FilePath);
        Assert.Equal(expected, engine.Generate(request).FinalLatents.Data);
    }

    public void Dispose()
    {
        if (int8.IsValueCreated) int8.Value.Dispose();
        Directory.Delete(temporary, recursive: true);
    }
}
