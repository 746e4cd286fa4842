using System.Text.Json;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// The whole-scene cases diffusers made on the tiny models (<see cref="TinyModel"/>): config B's
/// (tests/reference/pipeline-b) always; config A's, the shared ones and the repository's own made the same way
/// (tests/reference/pipeline-a), where ../shared is present; config B's img2img and inpainting cases (tests/reference/img2img-b). As scene requests with their expected files.
/// </summary>
public static class DiffusersSceneCases
{
    /// <summary>
    /// How far <paramref name="scene"/> is from diffusers' case in <paramref name="folder"/> (final-latents.npy, image.png):
    /// the final latents' largest difference and the share of 8-bit values within 1 level; the shapes must be the same.
    /// </summary>
    public static (float LatentError, double WithinOneLevel) Compare(string folder, Scene scene)
    {
        var expectedLatents = NpyFile.Read(Path.Combine(folder, "final-latents.npy"));
        Assert.Equal(expectedLatents.Shape, scene.FinalLatents.Shape);
        float latentError = expectedLatents.Data.Zip(scene.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        var expectedImage = SafeImageDecoder.Default.Decode(Path.Combine(folder, "image.png"));
        Assert.Equal((expectedImage.Width, expectedImage.Height), (scene.Image.Width, scene.Image.Height));
        int within = expectedImage.Rgb.Zip(scene.Image.Rgb, (a, b) => Math.Abs(a - b) <= 1 ? 1 : 0).Sum();
        return (latentError, within / (double)expectedImage.Rgb.Length);
    }

    /// <summary>
    /// The project's bar for a scene against diffusers' case: final latents within <paramref name="latentBound"/> (1e-4 unless a
    /// scheduler's float32 rounding needs more), 99.9 % of the 8-bit values within 1 level; both written to <paramref name="output"/>.
    /// </summary>
    public static void AssertMatches(ITestOutputHelper output, string label, string folder, Scene scene, double latentBound = 1e-4)
    {
        var (latentError, within) = Compare(folder, scene);
        output.WriteLine($"{label}: final latents max-abs {latentError:E2}; {within:P3} of 8-bit values within 1 level");
        Assert.True(latentError <= latentBound, $"final latents differ by {latentError}");
        Assert.True(within >= 0.999, $"only {within:P3} of pixels within 1 level");
    }

    /// <summary>(model, case name) for a theory.</summary>
    public static TheoryData<string, string> All()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in TinyModel.Present)
            foreach (var source in model.SceneSources)
                foreach (var c in TinyModel.SceneCases(source))
                    data.Add(model.Name, c.GetProperty("name").GetString()!);
        return data;
    }

    /// <summary>Config B's cases that follow a few-step UNet's or speed LoRA's manifest (their "unet_model" or "lora_model"), with that model's name.</summary>
    public static TheoryData<string, string> FewStepUnetCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var source in TinyModel.B.SceneSources)
            foreach (var c in TinyModel.SceneCases(source))
                if (c.TryGetProperty("unet_model", out var model) || c.TryGetProperty("lora_model", out model))
                    data.Add(c.GetProperty("name").GetString()!, model.GetString()!);
        return data;
    }

    /// <summary>The case's request (with <paramref name="reference"/>) and the folder of its expected results.</summary>
    public static (SceneRequest Request, string Folder) Load(TinyModel model, string name, CharacterReference reference)
    {
        var (source, c) = model.SceneSources
            .SelectMany(s => TinyModel.SceneCases(s).Select(e => (Source: s, Case: e)))
            .Single(e => e.Case.GetProperty("name").GetString() == name);
        var folder = TinyModel.CaseFolder(source, name);
        return (Request(c, folder, source, reference), folder);
    }

    /// <summary>
    /// The request a manifest's case describes (the reference scripts' keys: prompt, w, h, steps, sched, ...);
    /// <paramref name="caseFolder"/> holds its own files, <paramref name="source"/> the pictures beside the cases.
    /// </summary>
    public static SceneRequest Request(JsonElement c, string caseFolder, string source, CharacterReference reference)
    {
        var seed = c.GetProperty("seed");
        var request = new SceneRequest
        {
            Prompt = c.GetProperty("prompt").GetString()!,
            // diffusers' own prompt encoding: plain text, cut to 77 tokens (the long-prompt case is cut).
            PromptStyle = PromptStyle.Diffusers,
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
            InitialNoise = c.TryGetProperty("initial_noise", out var noise) ? NpyFile.Read(Path.Combine(caseFolder, noise.GetString()!)) : null,
            DeepCacheInterval = c.TryGetProperty("deepcache", out var interval) ? interval.GetInt32() : 1,
            Reference = reference,
        };
        // img2img and inpainting (tests/reference/img2img-b): the pictures lie beside the cases.
        if (c.TryGetProperty("init", out var init))
        {
            var initPath = Path.Combine(source, init.GetString()!);
            request = request with { InitImage = SafeImageDecoder.Default.Decode(initPath), InitImagePath = initPath, Strength = c.GetProperty("strength").GetDouble() };
        }
        if (c.TryGetProperty("mask", out var mask))
        {
            var maskPath = Path.Combine(source, mask.GetString()!);
            request = request with { Mask = SafeImageDecoder.Default.Decode(maskPath), MaskPath = maskPath };
        }
        return request;
    }
}
