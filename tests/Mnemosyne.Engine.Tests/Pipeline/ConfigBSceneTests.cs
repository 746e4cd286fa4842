using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// What config B's whole-scene cases (tests/reference/pipeline-b, all matched against diffusers by
/// <see cref="PipelineEquivalenceTests"/>) say beyond their pictures: that the few-step cases are the sampling the
/// model manifests give -Quality Fast, and how a guidance cutoff at or after the last step reads.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class ConfigBSceneTests(SceneEngineFixture engines) : IClassFixture<SceneEngineFixture>
{
    /// <summary>What -Quality Fast makes of the model's manifest must be the sampling diffusers ran for the case.</summary>
    [Theory]
    [MemberData(nameof(DiffusersSceneCases.FewStepUnetCases), MemberType = typeof(DiffusersSceneCases))]
    public void FewStepCasesAreTheManifestsSampling(string name, string unetModel)
    {
        var (request, _) = DiffusersSceneCases.Load(TinyModel.B, name, engines.Reference(TinyModel.B));
        var sampling = ModelManifest.Load(Path.Combine(TestPaths.RepositoryRoot, "models", unetModel + ".json")).Scheduler;
        var fromManifest = (request with { Steps = 20, GuidanceScale = 5, Spacing = null }).ForFewStepUnet(sampling);
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
        Assert.Contains(", CFG scale: 5, CFG cutoff: 0.4, Seed: 5,", early.ParametersText());
        Assert.Equal(0.4, early.GuidanceCutoff);
    }
}
