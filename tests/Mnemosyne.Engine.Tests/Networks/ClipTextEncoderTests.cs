using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class ClipTextEncoderTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-clip-text-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static (ClipTextOutput First, ClipTextOutput Second) EncodeBoth(long[] ids1, long[] ids2)
    {
        using var encoder1 = ClipTextEncoder.Load(TinyModel.A.TextEncoder, SessionSettings.Default);
        using var encoder2 = ClipTextEncoder.Load(TinyModel.A.TextEncoder2, SessionSettings.Default);
        return (encoder1.Run([ids1]), encoder2.Run([ids2]));
    }

    /// <summary>
    /// SDXL's prompt embeds are the two penultimate states side by side and the pooled embeds are
    /// text_encoder_2's text_embeds; the fidelity cases hold diffusers' encode_prompt output (config B's
    /// counterpart is <see cref="ConfigBTests.TextEncodersGiveTheUnetPromptEmbeds"/>).
    /// </summary>
    [FidelityTheory]
    [InlineData("euler-seed", "a photo of a cat wearing a red hat", "")]
    [InlineData("dpm2m-karras-tall", "", "negative-")]
    public void MatchesDiffusersPromptEmbedsOfTheFidelityCases(string caseName, string prompt, string filePrefix)
    {
        var ids = RecordedIds(prompt) ?? throw new InvalidOperationException($"No recorded ids for '{prompt}'.");
        var (first, second) = EncodeBoth(ids.Tokenizer, ids.Tokenizer2);
        Assert.Null(first.TextEmbeds);
        var folder = Path.Combine(TestPaths.Fidelity, "cases", caseName);
        var promptEmbeds = ReadNpy(Path.Combine(folder, filePrefix + "prompt-embeds.npy"));
        var pooled = ReadNpy(Path.Combine(folder, filePrefix + "pooled-prompt-embeds.npy"));

        var error1 = MaxAbsError(LastAxis(promptEmbeds, 0, 32), first.PenultimateHiddenStates);
        var error2 = MaxAbsError(LastAxis(promptEmbeds, 32, 32), second.PenultimateHiddenStates);
        var pooledError = MaxAbsError(pooled, second.TextEmbeds!);
        output.WriteLine($"{caseName} {filePrefix}prompt: text_encoder {error1:E2}, text_encoder_2 {error2:E2}, pooled {pooledError:E2}");
        Assert.InRange(error1, 0, Tolerance);
        Assert.InRange(error2, 0, Tolerance);
        Assert.InRange(pooledError, 0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void MatchesDiffusersOnTheNetworkCases(string model)
    {
        var tiny = TinyModel.Named(model);
        using var encoder1 = ClipTextEncoder.Load(tiny.TextEncoder, SessionSettings.Default);
        using var encoder2 = ClipTextEncoder.Load(tiny.TextEncoder2, SessionSettings.Default);
        var first = encoder1.Run(IdRows(tiny.NetworkCase("text-ids.json"), "tokenizer"));
        var second = encoder2.Run(IdRows(tiny.NetworkCase("text-ids.json"), "tokenizer_2"));

        Assert.Null(first.TextEmbeds);
        var error1 = MaxAbsError(ReadNpy(tiny.NetworkCase("text-encoder-penultimate.npy")), first.PenultimateHiddenStates);
        var error2 = MaxAbsError(ReadNpy(tiny.NetworkCase("text-encoder-2-penultimate.npy")), second.PenultimateHiddenStates);
        var pooledError = MaxAbsError(ReadNpy(tiny.NetworkCase("text-encoder-2-text-embeds.npy")), second.TextEmbeds!);
        output.WriteLine($"config {model}: text_encoder {error1:E2}, text_encoder_2 {error2:E2}, text_embeds {pooledError:E2}");
        Assert.InRange(error1, 0, Tolerance);
        Assert.InRange(error2, 0, Tolerance);
        Assert.InRange(pooledError, 0, Tolerance);
    }

    [Fact]
    public void EachRowOfABatchIsEncodedAlone()
    {
        var rows = IdRows(TinyModel.B.NetworkCase("text-ids.json"), "tokenizer_2");
        using var encoder = ClipTextEncoder.Load(TinyModel.B.TextEncoder2, SessionSettings.Default);
        var batch = encoder.Run(rows);
        var single = encoder.Run([rows[2]]);
        // Rows that leaked into each other would differ by far more than rounding.
        Assert.InRange(MaxAbsError(Rows(batch.PenultimateHiddenStates, 2, 1), single.PenultimateHiddenStates), 0, 1e-6f);
        Assert.InRange(MaxAbsError(Rows(batch.TextEmbeds!, 2, 1), single.TextEmbeds!), 0, 1e-6f);
    }

    public static TheoryData<string, string> ModelsAndComponents()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in TinyModel.Present)
            foreach (var component in new[] { "text_encoder", "text_encoder_2" }) data.Add(model.Name, component);
        return data;
    }

    [Theory]
    [MemberData(nameof(ModelsAndComponents))]
    public void AsksForExactlyTheTensorsOfTheCheckpoint(string model, string component)
    {
        var folder = Path.Combine(TinyModel.Named(model).Folder, component);
        var config = ConfigJson.Read<ClipTextConfig>(Path.Combine(folder, "config.json"));
        var recorder = new WeightRecorder("recorded");
        ClipTextEncoder.BuildGraph(config, recorder, null);
        Assert.Equal(
            KeySet(Path.Combine(folder, "model.safetensors"), "text_model.embeddings.position_ids"),
            KeySet(recorder));
    }

    [Fact]
    public void RecordsTheSdxlKeySetOfBothEncoders()
    {
        var recorder1 = new WeightRecorder("text_encoder");
        ClipTextEncoder.BuildGraph(new ClipTextConfig(), recorder1, null);
        var recorder2 = new WeightRecorder("text_encoder_2");
        ClipTextEncoder.BuildGraph(new ClipTextConfig
        {
            Architectures = ["CLIPTextModelWithProjection"], HiddenSize = 1280, IntermediateSize = 5120,
            NumHiddenLayers = 32, NumAttentionHeads = 20, HiddenAct = "gelu", ProjectionDim = 1280,
        }, recorder2, null);

        // Parameter counts of SDXL's ViT-L and bigG text encoders.
        Assert.Equal(123_060_480, recorder1.Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)));
        Assert.Equal(694_659_840, recorder2.Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)));
        Assert.Equal(2 + 12 * 16 + 2, recorder1.Tensors.Count());
        Assert.Equal([1280L, 1280L], recorder2.Tensors.Single(t => t.Name == "text_projection.weight").Shape);
    }

    [Theory]
    [InlineData("text_encoder", "text_model.encoder.layers.1.mlp.fc2.bias")]
    [InlineData("text_encoder", "text_model.encoder.layers.2.self_attn.k_proj.weight")] // the last layer, not run but required
    [InlineData("text_encoder_2", "text_projection.weight")]
    public void RefusesACheckpointMissingATensor(string component, string missing)
    {
        var copy = CopyComponent(Path.Combine(TinyModel.B.Folder, component), "model.safetensors", dir,
            (name, shape) => name == missing ? null : shape);
        var e = Assert.Throws<CheckpointException>(() => ClipTextEncoder.Load(dir, SessionSettings.Default));
        Assert.Equal(copy, e.FilePath);
        Assert.Equal(missing, e.TensorName);
        Assert.Contains(copy, e.Message);
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void RefusesACheckpointWithAWrongShape()
    {
        const string wrong = "text_model.encoder.layers.0.mlp.fc1.weight";
        long[] shape = [];
        var copy = CopyComponent(TinyModel.B.TextEncoder2, "model.safetensors", dir, (name, s) =>
        {
            if (name != wrong) return s;
            shape = s;
            return [s[1], s[0]];
        });
        var e = Assert.Throws<CheckpointException>(() => ClipTextEncoder.Load(dir, SessionSettings.Default));
        Assert.Equal(wrong, e.TensorName);
        Assert.Contains(copy, e.Message);
        Assert.NotEqual(shape[0], shape[1]);
        Assert.Contains($"[{shape[1]}, {shape[0]}]", e.Message);
        Assert.Contains($"[{shape[0]}, {shape[1]}]", e.Message);
    }

    [Fact]
    public void RefusesIdRowsOfTheWrongLengthOrOutsideTheVocabulary()
    {
        using var encoder = ClipTextEncoder.Load(TinyModel.B.TextEncoder, SessionSettings.Default);
        var vocabulary = ConfigJson.Read<ClipTextConfig>(Path.Combine(TinyModel.B.TextEncoder, "config.json")).VocabSize;
        var e = Assert.Throws<ArgumentException>(() => encoder.Run([new long[76]]));
        Assert.Contains("exactly 77", e.Message);
        var ids = new long[77];
        ids[5] = vocabulary;
        e = Assert.Throws<ArgumentException>(() => encoder.Run([ids]));
        Assert.Contains(vocabulary.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    [Fact]
    public void RefusesAConfigWhoseWidthDoesNotSplitIntoHeads()
    {
        using var weights = SafetensorsFile.Open(Path.Combine(TinyModel.B.TextEncoder, "model.safetensors"));
        var config = ConfigJson.Read<ClipTextConfig>(Path.Combine(TinyModel.B.TextEncoder, "config.json")) with { NumAttentionHeads = 5 };
        var e = Assert.Throws<InvalidDataException>(() => ClipTextEncoder.BuildGraph(config, weights, null));
        Assert.Contains("num_attention_heads 5", e.Message);
    }
}
