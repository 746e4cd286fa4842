using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The acceptance test of the whole pipeline: diffusers' own scenes on the tiny fidelity checkpoint.</summary>
public sealed class FidelityPipelineTests(FidelityEngineFixture engine, ITestOutputHelper output) : IClassFixture<FidelityEngineFixture>
{
    [FidelityTheory]
    [MemberData(nameof(DiffusersSceneCases.All), MemberType = typeof(DiffusersSceneCases))]
    public void MatchesDiffusers(int source, string name)
    {
        var (request, folder) = DiffusersSceneCases.Load(source, name, engine.Reference);

        var scene = engine.Engine.Generate(request);

        DiffusersSceneCases.AssertMatches(scene, folder, name, output, latentTolerance: 1e-3, pixelFraction: 0.999);
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
