using System.Text.Json;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tests.Networks;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// Whole scenes against diffusers v0.30.0 on config B, the engine's own tiny checkpoint regenerated from its seed
/// (tests/reference/pipeline-b): guidance that stops after a fraction of the steps, as diffusers'
/// SDXLCFGCutoffCallback, and SDXL-Lightning's 2-, 4- and 8-step sampling as the model manifests give it, with
/// the tiny UNet standing in for Lightning's. Needs nothing outside the repository.
/// </summary>
public sealed class ConfigBSceneTests(ConfigBSceneTests.Engine engine, ITestOutputHelper output) : IClassFixture<ConfigBSceneTests.Engine>
{
    /// <summary>Config B's checkpoint and an engine over it, with the sample character (module/Samples/kira.png) as the reference.</summary>
    public sealed class Engine : IDisposable
    {
        private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-config-b-scenes-").FullName;

        public Engine()
        {
            RandomCheckpoint.Write(root, CheckpointShape.Tiny, ConfigBCheckpoint.Seed);
            Scenes = SceneEngine.Open(new EngineOptions
            {
                CheckpointPath = root,
                IpAdapterPath = Path.Combine(root, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath),
            });
            Reference = Scenes.EncodeReference([Path.Combine(TestPaths.RepositoryRoot, "module", "Samples", "kira.png")], "kira");
        }

        public SceneEngine Scenes { get; }

        public CharacterReference Reference { get; }

        public void Dispose()
        {
            Scenes.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void TheCasesWereMadeFromTheCheckpointRegeneratedHere()
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(DiffusersSceneCases.ConfigBFolder, "manifest.json")));
        Assert.Equal(
            $"dotnet pwsh ./build.ps1 TinyModel -Output out/tiny-b -Seed {ConfigBCheckpoint.Seed} -Size Tiny",
            manifest.RootElement.GetProperty("command").GetString());
        Assert.Equal("module/Samples/kira.png", manifest.RootElement.GetProperty("reference").GetString());
    }

    [Theory]
    [MemberData(nameof(DiffusersSceneCases.ConfigB), MemberType = typeof(DiffusersSceneCases))]
    public void MatchesDiffusers(string name)
    {
        var (request, folder, unetModel) = DiffusersSceneCases.LoadConfigB(name, engine.Reference);
        if (unetModel is not null)
        {
            // What -Quality Fast makes of the model's manifest must be the sampling diffusers ran.
            var sampling = ModelManifest.Load(Path.Combine(TestPaths.RepositoryRoot, "models", unetModel + ".json")).Scheduler;
            var fromManifest = (request with { Steps = 20, GuidanceScale = 5, Spacing = null }).ForFewStepUnet(sampling);
            Assert.Equal(request, fromManifest);
        }

        var scene = engine.Scenes.Generate(request);

        DiffusersSceneCases.AssertMatches(scene, folder, name, output, latentTolerance: 1e-4, pixelFraction: 1);
    }

    [Fact]
    public void ACutoffAfterTheLastStepIsFullGuidance_AndTheSceneRecordsOnlyAnEarlierOne()
    {
        var guided = new SceneRequest { Prompt = "a knight in the rain", Seed = 5, Steps = 6, Width = 64, Height = 64, Reference = engine.Reference };
        var full = engine.Scenes.Generate(guided);
        // int(6 × 0.9) = 5, the last step: guidance would stop after the scene is done.
        var late = engine.Scenes.Generate(guided with { GuidanceCutoff = 0.9 });
        var early = engine.Scenes.Generate(guided with { GuidanceCutoff = 0.4 });

        Assert.Equal(full.FinalLatents.Data, late.FinalLatents.Data);
        Assert.NotEqual(full.FinalLatents.Data, early.FinalLatents.Data);
        Assert.DoesNotContain("CFG cutoff", full.ParametersText());
        Assert.Contains(", CFG scale: 5, CFG cutoff: 0.4, Seed: 5,", early.ParametersText());
        Assert.Equal(0.4, early.GuidanceCutoff);
    }
}
