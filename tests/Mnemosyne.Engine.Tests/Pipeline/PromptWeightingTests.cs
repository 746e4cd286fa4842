using System.Text.Json;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Text;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// A1111-style prompts (emphasis, BREAK, 75-token chunks) against tests/reference/prompts-b, made by
/// make_prompt_weighting_cases.py on diffusers' text encoders and StableDiffusionXLPipeline with config B.
/// </summary>
public sealed class PromptWeightingTests(SceneEngineFixture engines, ITestOutputHelper output) : IClassFixture<SceneEngineFixture>, IDisposable
{
    private static readonly string Cases = Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "prompts-b");
    private static readonly Lazy<JsonElement> Manifest = new(() => JsonDocument.Parse(File.ReadAllText(Path.Combine(Cases, "manifest.json"))).RootElement.Clone());

    private readonly ClipTokenizer tokenizer = ClipTokenizer.Load(Path.Combine(TinyModel.B.Folder, "tokenizer"));
    private readonly ClipTokenizer tokenizer2 = ClipTokenizer.Load(Path.Combine(TinyModel.B.Folder, "tokenizer_2"));
    private readonly OnDemandNetwork<ClipTextEncoder> encoder = new(() => ClipTextEncoder.Load(TinyModel.B.TextEncoder, SessionSettings.Default), keepLoaded: true);
    private readonly OnDemandNetwork<ClipTextEncoder> encoder2 = new(() => ClipTextEncoder.Load(TinyModel.B.TextEncoder2, SessionSettings.Default), keepLoaded: true);

    public void Dispose()
    {
        encoder.Dispose();
        encoder2.Dispose();
    }

    public static TheoryData<string> CaseNames() => Names("cases");

    public static TheoryData<string> SceneNames() => Names("scenes");

    private static TheoryData<string> Names(string list)
    {
        var data = new TheoryData<string>();
        foreach (var c in Manifest.Value.GetProperty(list).EnumerateArray()) data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    private static JsonElement Entry(string list, string name) =>
        Manifest.Value.GetProperty(list).EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    private static (string Prompt, string? Negative) Texts(string caseName)
    {
        var c = Entry("cases", caseName);
        var negative = c.GetProperty("negative");
        return (c.GetProperty("prompt").GetString()!, negative.ValueKind == JsonValueKind.Null ? null : negative.GetString());
    }

    private PromptEncoder Encoder() => new(tokenizer, tokenizer2, encoder, encoder2);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void ParsesAndChunksAsTheReference(string name)
    {
        var (prompt, negative) = Texts(name);
        using var chunks = JsonDocument.Parse(File.ReadAllText(Path.Combine(Cases, name, "chunks.json")));
        foreach (var (text, key) in new[] { (prompt, "prompt"), (negative ?? "", "negative") })
        {
            var expected = chunks.RootElement.GetProperty(key);
            var pieces = PromptSyntax.Parse(text);
            var runs = expected.GetProperty("runs").EnumerateArray().ToList();
            Assert.Equal(runs.Count, pieces.Count);
            for (int i = 0; i < runs.Count; i++)
            {
                Assert.Equal(runs[i][0].GetString(), pieces[i].Text);
                Assert.Equal(runs[i][1].ValueKind == JsonValueKind.Null, pieces[i].IsBreak);
                if (!pieces[i].IsBreak) Assert.Equal(runs[i][1].GetDouble(), pieces[i].Weight);
            }
            foreach (var (tokens, tokenizerKey) in new[] { (tokenizer, "tokenizer"), (tokenizer2, "tokenizer_2") })
            {
                var actual = tokens.EncodeChunks(pieces);
                var rows = expected.GetProperty(tokenizerKey).EnumerateArray().ToList();
                Assert.Equal(rows.Count, actual.Count);
                for (int c = 0; c < rows.Count; c++)
                {
                    Assert.Equal(rows[c][0].EnumerateArray().Select(e => e.GetInt32()), actual[c].Ids);
                    Assert.Equal(rows[c][1].EnumerateArray().Select(e => (float)e.GetDouble()), actual[c].Weights);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void EncodesAsTheReference(string name)
    {
        var (prompt, negative) = Texts(name);
        var encoded = Encoder().Encode([prompt, negative ?? "", ""], PromptStyle.A1111, CancellationToken.None);
        var (positive, negativeEmbedding) = PromptEncoder.PadToSameLength(encoded[0].Embedding, encoded[1].Embedding, encoded[2].Embedding);
        foreach (var (file, actual) in new[]
                 {
                     ("prompt-embeds", positive.Embeds), ("pooled-prompt-embeds", positive.Pooled),
                     ("negative-prompt-embeds", negativeEmbedding.Embeds), ("negative-pooled-prompt-embeds", negativeEmbedding.Pooled),
                 })
        {
            var expected = NpyFile.Read(Path.Combine(Cases, name, file + ".npy"));
            Assert.Equal(expected.Shape, actual.Shape);
            var error = expected.Data.Zip(actual.Data, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"{name} {file} {string.Join('x', actual.Shape)}: max-abs {error:E2}");
            Assert.True(error <= 1e-4, $"{file} differs by {error}");
        }
        Assert.All(encoded, e => Assert.Equal(0, e.DroppedTokens));
    }

    [Theory]
    [MemberData(nameof(SceneNames))]
    public void MakesTheReferenceScene(string name)
    {
        var scene = Entry("scenes", name);
        var (prompt, negative) = Texts(scene.GetProperty("case").GetString()!);
        var request = new SceneRequest
        {
            Prompt = prompt,
            NegativePrompt = negative,
            Width = scene.GetProperty("w").GetInt32(),
            Height = scene.GetProperty("h").GetInt32(),
            Steps = scene.GetProperty("steps").GetInt32(),
            GuidanceScale = scene.GetProperty("g").GetSingle(),
            GuidanceCutoff = scene.TryGetProperty("cutoff", out var cutoff) ? cutoff.GetDouble() : 1,
            ReferenceWeight = scene.GetProperty("ip").GetSingle(),
            Seed = scene.GetProperty("seed").GetInt64(),
            Reference = engines.Reference(TinyModel.B),
        };

        var made = engines.Engine(TinyModel.B).Generate(request);

        DiffusersSceneCases.AssertMatches(output, name, Path.Combine(Cases, name), made);
        Assert.Empty(made.Warnings);
    }

    /// <summary>
    /// A plain prompt of up to 75 tokens is the same embedding, bit for bit, in both styles: the existing diffusers
    /// scenes (DiffusersSceneCases, made with PromptStyle.Diffusers) are then also the A1111 default's scenes.
    /// </summary>
    [Fact]
    public void PlainShortPromptsAreEncodedAsDiffusersEncodesThem()
    {
        var texts = TinyModel.B.SceneSources.SelectMany(TinyModel.SceneCases)
            .SelectMany(c => new[] { c.GetProperty("prompt").GetString(), c.GetProperty("negative").GetString() })
            .Append(Texts("plain").Prompt)
            .OfType<string>().Distinct().Where(t => tokenizer.Encode(t).DroppedTokenCount == 0).ToList();
        Assert.True(texts.Count >= 10, $"only {texts.Count} prompts");
        var a1111 = Encoder().Encode(texts, PromptStyle.A1111, CancellationToken.None);
        var diffusers = Encoder().Encode(texts, PromptStyle.Diffusers, CancellationToken.None);
        for (int i = 0; i < texts.Count; i++)
        {
            Assert.Equal(diffusers[i].Embedding.Embeds.Data, a1111[i].Embedding.Embeds.Data);
            Assert.Equal(diffusers[i].Embedding.Pooled.Data, a1111[i].Embedding.Pooled.Data);
        }
    }

    /// <summary>
    /// 77·k text tokens through the UNet's every path: a reference's cross-attention, DeepCache's shallow runs and the
    /// conditional-only steps after the guidance cutoff. The long prompt's scene is not the truncated one's.
    /// </summary>
    [Fact]
    public void LongPromptsReachTheUnetWithDeepCacheAndAGuidanceCutoff()
    {
        var (prompt, _) = Texts("long");
        var request = new SceneRequest
        {
            Prompt = prompt, NegativePrompt = "blurry", Seed = 3, Steps = 5, Width = 64, Height = 64,
            DeepCacheInterval = 2, GuidanceCutoff = 0.5, Reference = engines.Reference(TinyModel.B),
        };
        var engine = engines.Engine(TinyModel.B);

        var whole = engine.Generate(request);
        var truncated = engine.Generate(request with { PromptStyle = PromptStyle.Diffusers });

        Assert.Empty(whole.Warnings);
        Assert.Contains(truncated.Warnings, w => w.Contains("tokens were dropped"));
        Assert.All(whole.FinalLatents.Data, v => Assert.True(float.IsFinite(v)));
        var difference = whole.FinalLatents.Data.Zip(truncated.FinalLatents.Data, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(difference > 1e-3, $"the chunks after the first changed the latents by only {difference}");
        Assert.Contains("Prompt style: Diffusers", truncated.ParametersText());
        Assert.DoesNotContain("Prompt style", whole.ParametersText());
    }

    [Fact]
    public void PadsTheShorterEmbeddingWithTheEmptyPromptsChunk()
    {
        PromptEmbedding Filled(int tokens, float value) =>
            new(new FloatTensor(Enumerable.Repeat(value, tokens * 2).ToArray(), [1, tokens, 2]), new FloatTensor([value], [1, 1]));
        var (first, second) = PromptEncoder.PadToSameLength(Filled(2, 1), Filled(6, 2), Filled(2, 7));

        Assert.Equal([1, 6, 2], first.Embeds.Shape);
        Assert.Equal(new float[] { 1, 1, 1, 1, 7, 7, 7, 7, 7, 7, 7, 7 }, first.Embeds.Data);
        Assert.Equal([1f], first.Pooled.Data);
        Assert.Equal(Enumerable.Repeat(2f, 12), second.Embeds.Data);
    }
}
