using System.Text.Json;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// The whole-scene cases diffusers made: on the fidelity checkpoint the shared ones and the repository's own made
/// the same way (tests/reference/pipeline-a); on config B the repository's tests/reference/pipeline-b. Each as a
/// scene request with its expected files.
/// </summary>
public static class DiffusersSceneCases
{
    private static readonly string[] Sources =
    [
        TestPaths.Fidelity,
        Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "pipeline-a"),
    ];

    /// <summary>Config B's cases: tests/reference/pipeline-b, made by make_pipeline_cases.py --set b.</summary>
    public static string ConfigBFolder { get; } = Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "pipeline-b");

    /// <summary>(source, case name) for a theory; one placeholder row per source where ../shared is absent.</summary>
    public static TheoryData<int, string> All()
    {
        var data = new TheoryData<int, string>();
        for (int source = 0; source < Sources.Length; source++)
        {
            if (!TestPaths.HasFidelity) { data.Add(source, "absent"); continue; }
            foreach (var c in Manifest(Sources[source])) data.Add(source, c.GetProperty("name").GetString()!);
        }
        return data;
    }

    /// <summary>Config B's case names: in the repository, so never skipped.</summary>
    public static TheoryData<string> ConfigB() => new(Manifest(ConfigBFolder).Select(c => c.GetProperty("name").GetString()!));

    /// <summary>The case's request (with <paramref name="reference"/>) and the folder of its expected results.</summary>
    public static (SceneRequest Request, string Folder) Load(int source, string name, CharacterReference reference)
    {
        var c = Case(Sources[source], name);
        var folder = source == 0 ? Path.Combine(Sources[source], "cases", name) : Path.Combine(Sources[source], name);
        return (Request(c, folder, reference), folder);
    }

    /// <summary>A config B case: its request, its folder, and the models/*.json whose sampling it follows (null for none).</summary>
    public static (SceneRequest Request, string Folder, string? UnetModel) LoadConfigB(string name, CharacterReference reference)
    {
        var c = Case(ConfigBFolder, name);
        var folder = Path.Combine(ConfigBFolder, name);
        return (Request(c, folder, reference), folder, c.TryGetProperty("unet_model", out var model) ? model.GetString() : null);
    }

    /// <summary>
    /// Checks a scene against diffusers' final latents (max-abs) and picture (the share of 8-bit values within one
    /// level), writing both numbers to <paramref name="output"/>.
    /// </summary>
    public static void AssertMatches(Scene scene, string folder, string name, ITestOutputHelper output, double latentTolerance, double pixelFraction)
    {
        var expectedLatents = NpyFile.Read(Path.Combine(folder, "final-latents.npy"));
        Assert.Equal(expectedLatents.Shape, scene.FinalLatents.Shape);
        var latentError = expectedLatents.Data.Zip(scene.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        var expectedImage = SafeImageDecoder.Default.Decode(Path.Combine(folder, "image.png"));
        Assert.Equal((expectedImage.Width, expectedImage.Height), (scene.Image.Width, scene.Image.Height));
        int within = expectedImage.Rgb.Zip(scene.Image.Rgb, (a, b) => Math.Abs(a - b) <= 1 ? 1 : 0).Sum();
        double fraction = within / (double)expectedImage.Rgb.Length;
        output.WriteLine($"{name}: final latents max-abs {latentError:E2}; {fraction:P3} of 8-bit values within 1 level");
        Assert.True(latentError <= latentTolerance, $"final latents differ by {latentError}");
        Assert.True(fraction >= pixelFraction, $"only {fraction:P3} of pixels within 1 level");
    }

    private static SceneRequest Request(JsonElement c, string folder, CharacterReference reference)
    {
        var seed = c.GetProperty("seed");
        return new SceneRequest
        {
            Prompt = c.GetProperty("prompt").GetString()!,
            NegativePrompt = c.GetProperty("negative").ValueKind == JsonValueKind.Null ? null : c.GetProperty("negative").GetString(),
            Width = c.GetProperty("w").GetInt32(),
            Height = c.GetProperty("h").GetInt32(),
            Steps = c.GetProperty("steps").GetInt32(),
            GuidanceScale = c.GetProperty("g").GetSingle(),
            // SDXLCFGCutoffCallback's cutoff_step_ratio, a Python float: read as the same double.
            GuidanceCutoff = c.TryGetProperty("cutoff", out var cutoff) ? cutoff.GetDouble() : 1,
            ReferenceWeight = c.GetProperty("ip").GetSingle(),
            Seed = seed.ValueKind == JsonValueKind.Null ? 0 : seed.GetInt64(),
            Scheduler = Enum.Parse<SchedulerKind>(c.GetProperty("sched").GetString()!),
            Spacing = c.TryGetProperty("spacing", out var spacing) ? Enum.Parse<TimestepSpacing>(spacing.GetString()!, ignoreCase: true) : null,
            InitialNoise = c.TryGetProperty("initial_noise", out var noise) ? NpyFile.Read(Path.Combine(folder, noise.GetString()!)) : null,
            Reference = reference,
        };
    }

    private static JsonElement Case(string source, string name) => Manifest(source).Single(e => e.GetProperty("name").GetString() == name);

    private static JsonElement[] Manifest(string source)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(source, "manifest.json")));
        return manifest.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    }
}
