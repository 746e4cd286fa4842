using System.Text.Json;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Sampling;

/// <summary>A test that needs tests/reference/schedulers (the reference harness's scheduler cases); skipped where absent.</summary>
public sealed class SchedulerCasesFactAttribute : FactAttribute
{
    public static string Folder => Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "schedulers");

    public SchedulerCasesFactAttribute()
    {
        if (!File.Exists(Path.Combine(Folder, "index.json")))
            Skip = $"{Folder} is absent: the reference harness writes the diffusers scheduler cases there (tests/reference/README.md).";
    }
}

/// <summary>
/// Every scheduler case of the reference harness (diffusers v0.30.0, PyTorch 1.13): timesteps, sigmas,
/// the initial noise scale, the scaled model input, every intermediate latent of a whole loop with a
/// fake model and each step's estimate of the denoised sample must equal diffusers' float32 values bit for bit, and the noise Euler ancestral
/// and LCM add between steps must be the draws of <c>torch.Generator('cpu').manual_seed(7)</c>.
/// </summary>
public class HarnessSchedulerCaseTests
{
    private const ulong AncestralSeed = 7;

    [SchedulerCasesFact]
    public void EveryCaseMatchesDiffusersBitForBit()
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(SchedulerCasesFactAttribute.Folder, "index.json")));
        var files = index.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("file").GetString()!).ToList();
        Assert.NotEmpty(files);
        foreach (var file in files) CheckCase(file);
    }

    private static void CheckCase(string file)
    {
        // The harness writes with Python's json module: the resolved DPM config holds a bare -Infinity.
        var text = SchedulerConfig.QuotePythonNonFiniteNumbers(File.ReadAllText(Path.Combine(SchedulerCasesFactAttribute.Folder, file)));
        using var document = JsonDocument.Parse(text);
        var root = document.RootElement;
        string name = root.GetProperty("name").GetString()!;
        int steps = root.GetProperty("steps").GetInt32();
        var config = SchedulerConfig.Parse(root.GetProperty("source_config").GetRawText(), file);
        (SchedulerKind kind, TimestepSpacing? spacing) = name switch
        {
            "euler" => (SchedulerKind.Euler, (TimestepSpacing?)null),
            "euler-trailing" => (SchedulerKind.Euler, TimestepSpacing.Trailing),
            "euler-ancestral" => (SchedulerKind.EulerAncestral, null),
            "dpmpp-2m" => (SchedulerKind.DpmPlusPlus2M, null),
            "dpmpp-2m-karras" => (SchedulerKind.DpmPlusPlus2MKarras, null),
            "ddim" => (SchedulerKind.Ddim, null),
            "ddim-defaults" => (SchedulerKind.Ddim, null),
            "lcm" => (SchedulerKind.Lcm, null),
            _ => throw new InvalidDataException($"{file}: unknown case name {name}."),
        };
        if (name == "ddim-defaults") config = config with { ClipSample = null, SetAlphaToOne = null };
        var scheduler = Schedulers.Create(kind, config, steps, spacing);

        AssertBits(Floats(root.GetProperty("timesteps")), [.. scheduler.Timesteps], $"{file} timesteps");
        if (root.TryGetProperty("sigmas", out var sigmas))
        {
            IReadOnlyList<float> ours = scheduler switch
            {
                EulerDiscreteScheduler e => e.Sigmas,
                EulerAncestralScheduler a => a.Sigmas,
                DpmSolverMultistepScheduler d => d.Sigmas,
                _ => throw new InvalidDataException($"{file}: {kind} has no sigmas."),
            };
            AssertBits(Floats(sigmas), [.. ours], $"{file} sigmas");
        }
        // LCM has one too, but never reaches it: its last step returns the estimate itself.
        if (root.TryGetProperty("final_alpha_cumprod", out var finalAlpha) && kind == SchedulerKind.Ddim)
            AssertBits([finalAlpha.GetSingle()], [((DdimScheduler)scheduler).FinalAlphaCumprod], $"{file} final_alpha_cumprod");
        AssertBits([root.GetProperty("init_noise_sigma").GetSingle()], [scheduler.InitNoiseSigma], $"{file} init_noise_sigma");

        var latents = Floats(root.GetProperty("noise"));
        for (int i = 0; i < latents.Length; i++) latents[i] *= scheduler.InitNoiseSigma;
        var modelTerm = Floats(root.GetProperty("model_term"));
        float gain = root.GetProperty("model_gain").GetSingle();
        var expected = root.GetProperty("latents").EnumerateArray().Select(Floats).ToArray();
        var expectedOriginals = root.GetProperty("pred_original").EnumerateArray().Select(Floats).ToArray();
        Assert.Equal(scheduler.Timesteps.Count, expectedOriginals.Length);
        Assert.True(scheduler.PredictedOriginal.IsEmpty, $"{file}: an estimate before the first step");
        Assert.Equal(scheduler.Timesteps.Count + 1, expected.Length);
        AssertBits(expected[0], latents, $"{file} latents[0]");

        if (root.TryGetProperty("ancestral_noise", out var ancestralNoise))
        {
            var draws = new TorchGenerator(AncestralSeed);
            foreach (var (draw, step) in ancestralNoise.EnumerateArray().Select((d, s) => (d, s)))
                AssertBits(Floats(draw), draws.Randn(latents.Length), $"{file} ancestral noise of step {step}");
        }

        var generator = new TorchGenerator(AncestralSeed);
        for (int step = 0; step < scheduler.Timesteps.Count; step++)
        {
            var input = (float[])latents.Clone();
            scheduler.ScaleModelInput(input, step);
            if (step == 0) AssertBits(Floats(root.GetProperty("first_scaled_model_input")), input, $"{file} first scaled model input");
            var modelOutput = new float[input.Length];
            for (int i = 0; i < input.Length; i++) modelOutput[i] = gain * input[i] + modelTerm[i];
            scheduler.Step(modelOutput, step, latents, generator);
            AssertBits(expected[step + 1], latents, $"{file} latents[{step + 1}]");
            AssertBits(expectedOriginals[step], scheduler.PredictedOriginal.ToArray(), $"{file} pred_original[{step}]");
        }
    }

    private static float[] Floats(JsonElement array) => array.EnumerateArray().Select(e => e.GetSingle()).ToArray();

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} values, diffusers has {expected.Length}.");
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, diffusers gives {expected[i]:R}.");
    }
}
