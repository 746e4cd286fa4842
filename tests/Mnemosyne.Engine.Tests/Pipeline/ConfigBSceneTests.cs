using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// What config B's whole-scene cases (tests/reference/pipeline-b, all matched against diffusers by
/// <see cref="PipelineEquivalenceTests"/>) say beyond their pictures: that the few-step cases are the sampling the
/// model manifests give -Quality Fast, and how a guidance cutoff at or after the last step reads.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class ConfigBSceneTests(SceneEngineFixture engines) : IClassFixture<SceneEngineFixture>
{
    /// <summary>What -Quality Fast makes of the model's (few-step UNet's or speed LoRA's) manifest must be the sampling diffusers ran for the case.</summary>
    [Theory]
    [MemberData(nameof(DiffusersSceneCases.FewStepUnetCases), MemberType = typeof(DiffusersSceneCases))]
    public void FewStepCasesAreTheManifestsSampling(string name, string model)
    {
        var (request, _) = DiffusersSceneCases.Load(TinyModel.B, name, engines.Reference(TinyModel.B));
        var sampling = ModelManifest.Load(Path.Combine(TestPaths.RepositoryRoot, "models", model + ".json")).Scheduler;
        var fromManifest = (request with { Steps = 20, GuidanceScale = 5, Scheduler = SchedulerKind.Ddim, Spacing = TimestepSpacing.Leading }).ForFewStepUnet(sampling);
        Assert.Equal(request, fromManifest);
    }

    [Fact]
    public void ACutoffAfterTheLastStepIsFullGuidance_AndTheSceneRecordsOnlyAnEarlierOne()
    {
        var engine = engines.Engine(TinyModel.B);
        var guided = new SceneRequest { Prompt = "a knight in the rain", Seed = 5, Steps = 6, Width = 64, Height = 64, Reference = engines.Reference(TinyModel.B) };
        var full = engine.Generate(guided);
        // int(6 × 0.9) = 5, the last step: guidance would stop after the scene is done.
        var late = engine.Generate(guided with { GuidanceCutoff = 0.9 });
        var early = engine.Generate(guided with { GuidanceCutoff = 0.4 });

        Assert.Equal(full.FinalLatents.Data, late.FinalLatents.Data);
        Assert.NotEqual(full.FinalLatents.Data, early.FinalLatents.Data);
        Assert.DoesNotContain("CFG cutoff", full.ParametersText());
        Assert.Contains(", CFG cutoff: 0.4,", early.ParametersText());
        Assert.Equal(0.4, early.GuidanceCutoff);
    }

    /// <summary>A1111's short hash of the UNet's weights file (a diffusers folder's unet/diffusion_pytorch_model.safetensors), in the scene and its text.</summary>
    [Fact]
    public void ScenesCarryTheShortSha256OfTheUnetWeightsFile()
    {
        var engine = engines.Engine(TinyModel.B);
        var scene = engine.Generate(new SceneRequest { Prompt = "a knight", Seed = 1, Steps = 1, Width = 64, Height = 64 });

        var weights = Path.Combine(TinyModel.B.Unet, "diffusion_pytorch_model.safetensors");
        var expected = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(weights)))[..10].ToLowerInvariant();
        Assert.Equal(expected, scene.ModelHash);
        Assert.Equal(expected, engine.ModelHash);
        Assert.Contains($", Model hash: {expected}, Model: {engine.ModelName},", scene.ParametersText());
    }
}
