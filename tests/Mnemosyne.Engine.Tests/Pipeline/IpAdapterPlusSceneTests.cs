using System.Text.Json;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// Config B with its IP-Adapter Plus: diffusers' whole scenes (tests/reference/pipeline-plus-b), the references
/// such an engine makes and saves, and the refusal of references of the other kind.
/// </summary>
public sealed class IpAdapterPlusSceneTests(IpAdapterPlusSceneTests.Engines engines, ITestOutputHelper output) : IClassFixture<IpAdapterPlusSceneTests.Engines>
{
    private static readonly string Cases = Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "pipeline-plus-b");

    /// <summary>A Plus engine and a base engine on config B, each with a reference of the repository's picture.</summary>
    public sealed class Engines : IDisposable
    {
        private readonly Lazy<(SceneEngine, CharacterReference)> plus = new(() => Open(TinyModel.PlusAdapterFile));
        private readonly Lazy<(SceneEngine, CharacterReference)> based = new(() => Open(TinyModel.B.IpAdapterFile));

        public (SceneEngine Engine, CharacterReference Reference) Plus => plus.Value;

        public (SceneEngine Engine, CharacterReference Reference) Base => based.Value;

        private static (SceneEngine, CharacterReference) Open(string adapter)
        {
            var engine = SceneEngine.Open(new EngineOptions { CheckpointPath = TinyModel.B.Folder, IpAdapterPath = adapter });
            return (engine, engine.EncodeReference([TinyModel.B.ReferenceImage], "tiny-plus"));
        }

        public void Dispose()
        {
            if (plus.IsValueCreated) plus.Value.Item1.Dispose();
            if (based.IsValueCreated) based.Value.Item1.Dispose();
        }
    }

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in TinyModel.SceneCases(Cases)) data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void MatchesDiffusers(string name)
    {
        var c = TinyModel.SceneCases(Cases).Single(e => e.GetProperty("name").GetString() == name);
        var folder = TinyModel.CaseFolder(Cases, name);
        var scene = engines.Plus.Engine.Generate(DiffusersSceneCases.Request(c, folder, Cases, engines.Plus.Reference));

        // PipelineEquivalenceTests' bound: DPM++ 2M Karras with guidance carries float32 rounding to 1.1e-4 in the base cases too.
        DiffusersSceneCases.AssertMatches(output, name, folder, scene, latentBound: 2e-4);
    }

    [Fact]
    public void APlusReferenceHoldsTheAveragedHiddenStates_AndTheSameEmbeddingAsABaseOne()
    {
        var (engine, reference) = engines.Plus;
        Assert.Equal(IpAdapterKind.Plus, engine.AdapterKind);
        Assert.Equal(IpAdapterKind.Plus, reference.AdapterKind);
        Assert.Equal([257, 32], reference.HiddenStates!.Shape);
        Assert.Equal(engines.Base.Reference.Embedding, reference.Embedding);
        Assert.Null(engines.Base.Reference.HiddenStates);
        Assert.Equal(IpAdapterKind.Base, engines.Base.Reference.AdapterKind);
    }

    [Fact]
    public void EachEngineRefusesTheOtherKindsReference_NamingBoth()
    {
        var request = new SceneRequest { Prompt = "a knight", Seed = 1, Steps = 1, Width = 64, Height = 64 };
        var plusOnBase = Assert.Throws<ArgumentException>(() => engines.Base.Engine.Generate(request with { Reference = engines.Plus.Reference }));
        Assert.Equal("reference", plusOnBase.ParamName);
        Assert.Contains("was made for IP-Adapter Plus", plusOnBase.Message);
        Assert.Contains("this engine's IP-Adapter is the base IP-Adapter", plusOnBase.Message);
        var baseOnPlus = Assert.Throws<ArgumentException>(() => engines.Plus.Engine.Generate(request with { Reference = engines.Base.Reference }));
        Assert.Contains("was made for the base IP-Adapter", baseOnPlus.Message);
        // The engines stay usable.
        Assert.Equal(64, engines.Plus.Engine.Generate(request with { Reference = engines.Plus.Reference }).Image.Width);
    }

    [Fact]
    public void APlusReferenceSavesAndLoadsExactly_AsVersion2()
    {
        var reference = engines.Plus.Reference;
        var path = Path.Combine(Directory.CreateTempSubdirectory("mnemosyne-plus-ref-").FullName, "plus.json");
        using (var stream = File.Create(path)) reference.Save(stream);
        var loaded = CharacterReference.Load(path);
        Assert.Equal(IpAdapterKind.Plus, loaded.AdapterKind);
        Assert.Equal(reference.HiddenStates!.Shape, loaded.HiddenStates!.Shape);
        Assert.Equal(reference.HiddenStates.Data, loaded.HiddenStates.Data);
        Assert.Equal(reference.Embedding, loaded.Embedding);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal(2, json.RootElement.GetProperty("version").GetInt32());
        Assert.Equal("plus", json.RootElement.GetProperty("adapterKind").GetString());
        // The loaded copy makes the same scene.
        var request = new SceneRequest { Prompt = "a knight", Seed = 2, Steps = 2, Width = 64, Height = 64 };
        Assert.Equal(engines.Plus.Engine.Generate(request with { Reference = reference }).FinalLatents.Data,
            engines.Plus.Engine.Generate(request with { Reference = loaded }).FinalLatents.Data);
    }

    [Fact]
    public void AVersion1FileIsABaseReference()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("mnemosyne-v1-ref-").FullName, "v1.json");
        using (var stream = File.Create(path)) engines.Base.Reference.Save(stream);
        var text = File.ReadAllText(path).Replace("\"version\": 2", "\"version\": 1").Replace("\"adapterKind\": \"base\",", "");
        Assert.DoesNotContain("adapterKind", text);
        File.WriteAllText(path, text);
        var loaded = CharacterReference.Load(path);
        Assert.Equal(IpAdapterKind.Base, loaded.AdapterKind);
        Assert.Null(loaded.HiddenStates);
        Assert.Equal(64, engines.Base.Engine.Generate(new SceneRequest { Prompt = "a", Seed = 1, Steps = 1, Width = 64, Height = 64, Reference = loaded }).Image.Width);
    }

    /// <summary>Measure-MnemosyneConsistency's two halves: a picture's image_embeds against the reference's.</summary>
    [Fact]
    public void ConsistencyIsMeasuredWithAPlusEngine()
    {
        var (engine, reference) = engines.Plus;
        var same = Consistency.CosineSimilarity(engine.EmbedImage(SafeImageDecoder.Default.Decode(TinyModel.B.ReferenceImage)), reference.Embedding);
        var scene = engine.Generate(new SceneRequest { Prompt = "a knight", Seed = 3, Steps = 2, Width = 64, Height = 64, Reference = reference });
        var other = Consistency.CosineSimilarity(engine.EmbedImage(scene.Image), reference.Embedding);
        output.WriteLine($"consistency: the reference picture {same:F6}, a scene {other:F4}");
        Assert.Equal(1.0, same, 5);
        Assert.InRange(other, -1, 0.99999);
    }
}
