using System.Text.Json;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The acceptance test of the whole pipeline: diffusers' own scenes on the tiny fidelity checkpoint.</summary>
public sealed class FidelityPipelineTests(FidelityEngineFixture engine, ITestOutputHelper output) : IClassFixture<FidelityEngineFixture>
{
    /// <summary>The shared cases, and the repository's own made the same way (tests/reference/pipeline-a).</summary>
    private static readonly string[] CaseFolders =
    [
        TestPaths.Fidelity,
        Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "pipeline-a"),
    ];

    public static TheoryData<int, string> Cases()
    {
        var data = new TheoryData<int, string>();
        for (int source = 0; source < CaseFolders.Length; source++)
        {
            if (!TestPaths.HasFidelity) { data.Add(source, "absent"); continue; }
            foreach (var c in Manifest(source)) data.Add(source, c.GetProperty("name").GetString()!);
        }
        return data;
    }

    private static JsonElement[] Manifest(int source)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(CaseFolders[source], "manifest.json")));
        return manifest.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    }

    [FidelityTheory]
    [MemberData(nameof(Cases))]
    public void MatchesDiffusers(int source, string name)
    {
        var c = Manifest(source).Single(e => e.GetProperty("name").GetString() == name);
        var folder = source == 0 ? Path.Combine(CaseFolders[source], "cases", name) : Path.Combine(CaseFolders[source], name);
        var seed = c.GetProperty("seed");
        var noise = c.TryGetProperty("initial_noise", out var noiseFile) ? NpyFile.Read(Path.Combine(folder, noiseFile.GetString()!)) : null;
        var request = new SceneRequest
        {
            Prompt = c.GetProperty("prompt").GetString()!,
            NegativePrompt = c.GetProperty("negative").ValueKind == JsonValueKind.Null ? null : c.GetProperty("negative").GetString(),
            Width = c.GetProperty("w").GetInt32(),
            Height = c.GetProperty("h").GetInt32(),
            Steps = c.GetProperty("steps").GetInt32(),
            GuidanceScale = c.GetProperty("g").GetSingle(),
            ReferenceWeight = c.GetProperty("ip").GetSingle(),
            Seed = seed.ValueKind == JsonValueKind.Null ? 0 : seed.GetInt64(),
            Scheduler = Enum.Parse<SchedulerKind>(c.GetProperty("sched").GetString()!),
            InitialNoise = noise,
            Reference = engine.Reference,
        };

        var scene = engine.Engine.Generate(request);

        var expectedLatents = NpyFile.Read(Path.Combine(folder, "final-latents.npy"));
        Assert.Equal(expectedLatents.Shape, scene.FinalLatents.Shape);
        var latentError = expectedLatents.Data.Zip(scene.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        var expectedImage = SafeImageDecoder.Default.Decode(Path.Combine(folder, "image.png"));
        Assert.Equal((expectedImage.Width, expectedImage.Height), (scene.Image.Width, scene.Image.Height));
        int within = expectedImage.Rgb.Zip(scene.Image.Rgb, (a, b) => Math.Abs(a - b) <= 1 ? 1 : 0).Sum();
        double fraction = within / (double)expectedImage.Rgb.Length;
        output.WriteLine($"{name}: final latents max-abs {latentError:E2}; {fraction:P3} of 8-bit values within 1 level");
        Assert.True(latentError <= 1e-3, $"final latents differ by {latentError}");
        Assert.True(fraction >= 0.999, $"only {fraction:P3} of pixels within 1 level");
    }

    [FidelityFact]
    public void WarnsWhenThePromptIsTruncated()
    {
        var prompt = string.Join(' ', Enumerable.Repeat("a lighthouse keeper with a lantern on a stormy cliff", 12));
        var scene = engine.Engine.Generate(new SceneRequest { Prompt = prompt, Seed = 1, Steps = 1, Width = 64, Height = 64 });
        Assert.Contains(scene.Warnings, w => w.Contains("tokens were dropped"));
    }

    [FidelityFact]
    public void TheReferenceEmbeddingIsDiffusersImageEmbeds()
    {
        var expected = NpyFile.Read(Path.Combine(TestPaths.Fidelity, "reference-image-embeds.npy"));
        var error = expected.Data.Zip(engine.Reference.Embedding, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(error <= 1e-4, $"image embeds differ by {error}");
    }
}

/// <summary>One engine over the fidelity checkpoint, shared by the tests of a class.</summary>
public sealed class FidelityEngineFixture : IDisposable
{
    private SceneEngine? engine;
    private CharacterReference? reference;

    public SceneEngine Engine => engine ??= SceneEngine.Open(new EngineOptions
    {
        CheckpointPath = TestPaths.FidelityModel,
        IpAdapterPath = Path.Combine(TestPaths.FidelityModel, "ip-adapter", "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"),
    });

    public CharacterReference Reference => reference ??= Engine.EncodeReference([Path.Combine(TestPaths.Fidelity, "reference.png")], "fidelity");

    public void Dispose() => engine?.Dispose();
}
