using System.Collections.Concurrent;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The acceptance test of the whole pipeline: diffusers' own scenes on the tiny models.</summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class PipelineEquivalenceTests(SceneEngineFixture engines, ITestOutputHelper output) : IClassFixture<SceneEngineFixture>
{
    [Theory]
    [MemberData(nameof(DiffusersSceneCases.All), MemberType = typeof(DiffusersSceneCases))]
    public void MatchesDiffusers(string model, string name)
    {
        var tiny = TinyModel.Named(model);
        var (request, folder) = DiffusersSceneCases.Load(tiny, name, engines.Reference(tiny));

        var scene = engines.Engine(tiny).Generate(request);

        DiffusersSceneCases.AssertMatches(output, $"{model} {name}", folder, scene, latentBound: 2e-4);
    }

    /// <summary>The DeepCache cases are DeepCache's: the whole UNet at every step makes other latents.</summary>
    [Theory]
    [InlineData("euler-deepcache3")]
    [InlineData("dpm2m-deepcache2-unguided")]
    public void DeepCacheCasesDifferFromTheWholeUnetsScene(string name)
    {
        var (request, folder) = DiffusersSceneCases.Load(TinyModel.B, name, engines.Reference(TinyModel.B));
        Assert.True(request.DeepCacheInterval > 1);

        var whole = engines.Engine(TinyModel.B).Generate(request with { DeepCacheInterval = 1 });

        var expected = NpyFile.Read(Path.Combine(folder, "final-latents.npy"));
        var difference = expected.Data.Zip(whole.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{name}: the whole UNet's latents are {difference:E2} from DeepCache's");
        Assert.True(difference > 1e-2, $"DeepCache changed the latents by only {difference}");
        Assert.DoesNotContain("DeepCache", whole.ParametersText());
    }

    [Fact]
    public void WarnsWhenThePromptIsTruncated()
    {
        var prompt = string.Join(' ', Enumerable.Repeat("a lighthouse keeper with a lantern on a stormy cliff", 12));
        var scene = engines.Engine(TinyModel.B).Generate(new SceneRequest { Prompt = prompt, Seed = 1, Steps = 1, Width = 64, Height = 64, PromptStyle = PromptStyle.Diffusers });
        Assert.Contains(scene.Warnings, w => w.Contains("tokens were dropped"));
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void TheReferenceEmbeddingIsDiffusersImageEmbeds(string model)
    {
        var tiny = TinyModel.Named(model);
        var expected = NpyFile.Read(Path.Combine(tiny.ReferenceFolder, "reference-image-embeds.npy"));
        var error = expected.Data.Zip(engines.Reference(tiny).Embedding, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(error <= 1e-4, $"image embeds differ by {error}");
    }
}

/// <summary>One engine per tiny model, opened on first use and shared by the tests of a class; Int8 ones convert into a temporary cache.</summary>
public class SceneEngineFixture : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<(SceneEngine Engine, CharacterReference Reference)>> engines = new();
    private readonly string cache = Directory.CreateTempSubdirectory("mnemosyne-scene-engines-").FullName;

    protected virtual WeightPrecision Precision => WeightPrecision.Float32;

    public SceneEngine Engine(TinyModel model) => Open(model).Engine;

    public CharacterReference Reference(TinyModel model) => Open(model).Reference;

    private (SceneEngine Engine, CharacterReference Reference) Open(TinyModel model) => engines.GetOrAdd(model.Name, _ => new(() =>
    {
        var engine = SceneEngine.Open(new EngineOptions
        {
            CheckpointPath = model.Folder,
            IpAdapterPath = model.IpAdapterFile,
            Precision = Precision,
            ConvertedWeightsPath = cache,
        });
        return (engine, engine.EncodeReference([model.ReferenceImage], "tiny-" + model.Name));
    })).Value;

    public void Dispose()
    {
        foreach (var entry in engines.Values.Where(e => e.IsValueCreated)) entry.Value.Engine.Dispose();
        Directory.Delete(cache, recursive: true);
        GC.SuppressFinalize(this);
    }
}
