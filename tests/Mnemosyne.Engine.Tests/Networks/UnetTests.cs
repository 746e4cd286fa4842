using System.Collections.Concurrent;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// The UNet against diffusers v0.30.0 on the tiny models (tests/reference/networks-b, and networks-a made on
/// ../shared/fidelity/model), and its weight contract: which tensors, with which shapes, a checkpoint must hold.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class UnetTests(ITestOutputHelper output, TinyUnetCheckpoint tiny, TinyModelUnets unets)
    : IClassFixture<TinyUnetCheckpoint>, IClassFixture<TinyModelUnets>
{
    private const float Tolerance = 1e-4f;

    private static WeightRecorder Record(UnetConfig config)
    {
        var unet = new WeightRecorder("unet.safetensors");
        Unet.BuildGraph(config, unet, withIpAdapter: true, null);
        return unet;
    }

    private static float MaxAbsDifference(FloatTensor a, FloatTensor b)
    {
        Assert.Equal(a.Shape, b.Shape);
        float max = 0;
        for (int i = 0; i < a.Data.Length; i++) max = Math.Max(max, Math.Abs(a.Data[i] - b.Data[i]));
        return max;
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void AsksForExactlyTheTensorsOfTheUnetFile(string model)
    {
        var folder = TinyModel.Named(model).Unet;
        var recorded = Record(ConfigJson.Read<UnetConfig>(Path.Combine(folder, "config.json")));
        using var file = SafetensorsFile.Open(Path.Combine(folder, "diffusion_pytorch_model.safetensors"));
        var expected = file.Tensors.Values.ToDictionary(t => t.Name, t => t.ShapeText);
        var asked = recorded.Tensors.ToDictionary(t => t.Name, t => "[" + string.Join(", ", t.Shape) + "]");
        Assert.Equal(expected.OrderBy(p => p.Key), asked.OrderBy(p => p.Key));
    }

    /// <summary>SDXL base 1.0's UNet, counted from the published layout; the adapter's weights are <see cref="IpAdapterKeys"/>'.</summary>
    [Fact]
    public void SdxlBaseConfigNeedsTheFullSizedCheckpoint()
    {
        var unet = Record(new UnetConfig());
        Assert.Equal(1680, unet.Tensors.Count());
        Assert.Equal(2_567_463_684L, unet.Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)));
        var shapes = unet.Tensors.ToDictionary(t => t.Name, t => t.Shape);
        Assert.Equal([1280L, 2816], shapes["add_embedding.linear_1.weight"]);
        Assert.Equal([1280L, 2560, 1, 1], shapes["up_blocks.0.resnets.0.conv_shortcut.weight"]);
        Assert.Equal([640L, 960, 3, 3], shapes["up_blocks.1.resnets.2.conv1.weight"]);
        Assert.Equal([1280L, 2048], shapes["mid_block.attentions.0.transformer_blocks.9.attn2.to_k.weight"]);
        Assert.False(shapes.ContainsKey("down_blocks.0.attentions.0.norm.weight"));
        Assert.DoesNotContain(unet.Tensors, t => t.Name.StartsWith("ip_adapter.", StringComparison.Ordinal));
    }

    /// <summary>With the adapter every cross-attention takes its key and value as inputs, and the graph reads no adapter weight.</summary>
    [Fact]
    public void TheAdapterBranchTakesOneKeyAndValuePerCrossAttention()
    {
        string[] InputNames(bool withIpAdapter)
        {
            var graph = Unet.BuildGraph(TinyUnetCheckpoint.Config, new WeightRecorder("unet"), withIpAdapter, null);
            // Recorded weights are inputs too ("w.<tensor>_<n>"); the adapter's are not among them (see SdxlBaseConfigNeedsTheFullSizedCheckpoint).
            return global::Onnx.ModelProto.Parser.ParseFrom(graph.ToBytes()).Graph.Input.Select(i => i.Name).Where(n => !n.StartsWith("w.", StringComparison.Ordinal)).ToArray();
        }
        var ipInputs = InputNames(true).Except(InputNames(false)).Order(StringComparer.Ordinal);
        // The tiny UNet's cross-attentions: two in down_blocks.1, four in up_blocks.0, two in the mid block, all at the
        // second resolution (level 1), so one level of region masks.
        int[] numbers = [1, 3, 5, 7, 9, 11, 13, 15];
        Assert.Equal(numbers.SelectMany(n => new[] { $"ip_key_{n}", $"ip_value_{n}" })
            .Concat([Unet.IpScaleInput, IpAdapterAttention.TokenBiasInput, IpAdapterAttention.MaskName(1)]).Order(StringComparer.Ordinal), ipInputs);
    }

    /// <summary>(model, case, IP-Adapter scale) of every UNet case of the tiny models present.</summary>
    public static TheoryData<string, string, string> FixtureCases()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var model in TinyModel.Present)
            foreach (var caseName in new[] { "unet-8x12", "unet-9x7", "unet-10x6" })
                foreach (var scale in new[] { "0.6", "0" }) data.Add(model.Name, caseName, scale);
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureCases))]
    public void MatchesDiffusers(string model, string caseName, string scale)
    {
        var tinyModel = TinyModel.Named(model);
        var (sample, timestep, conditioning, expected) = NetworkFixtures.ReadUnetCase(tinyModel.NetworkCases, caseName, scale, unets.AdapterKeys(tinyModel));
        var result = unets.WithAdapter(tinyModel).Run(sample, timestep, conditioning);

        var error = MaxAbsDifference(expected, result);
        output.WriteLine($"config {model} {caseName} at scale {scale}: max-abs error {error:g3} (outputs up to {expected.Data.Max(Math.Abs):g3})");
        Assert.True(error <= Tolerance, $"{caseName} at IP-Adapter scale {scale}: max-abs error {error:g3} > {Tolerance:g3}");
    }

    /// <summary>
    /// DeepCache's shallow UNet on the feature of the same step is the whole UNet again: what it skips is exactly
    /// what the feature holds. Odd sizes take the skip-size up-sampling path.
    /// </summary>
    [Theory]
    [MemberData(nameof(FixtureCases))]
    public void TheShallowUnetOnItsOwnStepsFeatureIsTheWholeUnet(string model, string caseName, string scale)
    {
        var tinyModel = TinyModel.Named(model);
        var (sample, timestep, conditioning, _) = NetworkFixtures.ReadUnetCase(tinyModel.NetworkCases, caseName, scale, unets.AdapterKeys(tinyModel));
        var unet = unets.WithAdapter(tinyModel);

        var (prediction, feature) = unet.RunKeepingFeature(sample, timestep, conditioning);
        var shallow = unet.RunFromFeature(sample, timestep, conditioning, feature);

        Assert.Equal(unet.Run(sample, timestep, conditioning).Data, prediction.Data);
        Assert.Equal([sample.Shape[0], unet.Config.BlockOutChannels[0], sample.Shape[2], sample.Shape[3]], feature.Shape);
        Assert.InRange(MaxAbsDifference(prediction, shallow), 0, 1e-5f);
        // Another step's feature gives another prediction.
        var (_, otherFeature) = unet.RunKeepingFeature(sample, timestep * 0.5f + 1, conditioning);
        Assert.True(MaxAbsDifference(prediction, unet.RunFromFeature(sample, timestep, conditioning, otherFeature)) > 1e-3f);
    }

    /// <summary>The shallow UNet reads the embeddings, conv_in, the last up layer and the head: no deeper weight.</summary>
    [Fact]
    public void TheShallowUnetAsksOnlyForItsOwnLayers()
    {
        var recorder = new WeightRecorder("unet.safetensors");
        Unet.BuildShallowGraph(new UnetConfig(), recorder, withIpAdapter: true, null);
        string[] parts = ["conv_in.", "time_embedding.", "add_embedding.", "up_blocks.2.resnets.2.", "conv_norm_out.", "conv_out."];
        var names = recorder.Tensors.Select(t => t.Name).ToList();
        Assert.All(names, name => Assert.Contains(parts, part => name.StartsWith(part, StringComparison.Ordinal)));
        Assert.All(parts, part => Assert.Contains(names, name => name.StartsWith(part, StringComparison.Ordinal)));
        // SDXL's last up layer at 320 channels: a small fraction of the UNet's 2.57 G weights.
        Assert.InRange(recorder.Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)), 1, 20_000_000);
    }

    [Fact]
    public void ScaleZeroEqualsTheUnetWithoutAdapterAtOddSizes()
    {
        foreach (var (height, width) in new[] { (5, 3), (1, 1), (7, 10) })
        {
            var sample = TinyUnetCheckpoint.Random([2, 4, height, width], seed: height * 100 + width);
            var plain = tiny.Plain.Run(sample, 500f, tiny.Conditioning(2));
            var scaledToZero = tiny.WithAdapter.Run(sample, 500f, tiny.Conditioning(2) with { IpKeyValues = tiny.IpKeyValues(2), IpScale = 0f });
            var noReference = tiny.WithAdapter.Run(sample, 500f, tiny.Conditioning(2));
            Assert.Equal([2, 4, height, width], plain.Shape);
            Assert.All(plain.Data, v => Assert.True(float.IsFinite(v)));
            Assert.Equal(plain.Data, scaledToZero.Data);
            Assert.Equal(plain.Data, noReference.Data);
        }
    }

    [Fact]
    public void TheAdapterWeightChangesTheOutputInProportion()
    {
        var sample = TinyUnetCheckpoint.Random([1, 4, 6, 4], seed: 3);
        FloatTensor At(float scale) => tiny.WithAdapter.Run(sample, 250.5f, tiny.Conditioning(1) with { IpKeyValues = tiny.IpKeyValues(1), IpScale = scale });
        var plain = At(0f);
        // The image term enters every cross-attention, so the output moves, and a small weight moves it little.
        Assert.True(MaxAbsDifference(plain, At(1f)) > 1e-3f);
        Assert.True(MaxAbsDifference(plain, At(1e-3f)) < MaxAbsDifference(plain, At(1f)) / 100);
    }

    [Fact]
    public void OneTimestepPerItemEqualsTheSharedTimestep()
    {
        var sample = TinyUnetCheckpoint.Random([2, 4, 4, 4], seed: 4);
        var conditioning = tiny.Conditioning(2);
        var shared = tiny.Plain.Run(sample, 341.75f, conditioning);
        Assert.Equal(shared.Data, tiny.Plain.Run(sample, [341.75f, 341.75f], conditioning).Data);

        // Item 1 at another timestep changes item 1 only.
        var mixed = tiny.Plain.Run(sample, [341.75f, 20f], conditioning);
        int half = shared.Data.Length / 2;
        Assert.Equal(shared.Data[..half], mixed.Data[..half]);
        Assert.NotEqual(shared.Data[half..], mixed.Data[half..]);
    }

    [Fact]
    public void RefusesInputsOfTheWrongShape()
    {
        var sample = TinyUnetCheckpoint.Random([2, 4, 4, 4], seed: 5);
        var good = tiny.Conditioning(2);
        Assert.Contains("[batch, 4, height, width]", Assert.Throws<ArgumentException>(() => tiny.Plain.Run(TinyUnetCheckpoint.Random([2, 3, 4, 4], 1), 1f, good)).Message);
        Assert.Contains("one per batch item", Assert.Throws<ArgumentException>(() => tiny.Plain.Run(sample, [1f, 2f, 3f], good)).Message);
        Assert.Contains("TextEmbeds", Assert.Throws<ArgumentException>(() => tiny.Plain.Run(sample, 1f, good with { TextEmbeds = TinyUnetCheckpoint.Random([2, 7], 1) })).Message);
        Assert.Contains("TimeIds", Assert.Throws<ArgumentException>(() => tiny.Plain.Run(sample, 1f, good with { TimeIds = TinyUnetCheckpoint.Random([1, 6], 1) })).Message);
        Assert.Contains("EncoderHiddenStates", Assert.Throws<ArgumentException>(() => tiny.Plain.Run(sample, 1f, tiny.Conditioning(1))).Message);
        Assert.Contains("without an IP-Adapter", Assert.Throws<ArgumentException>(() => tiny.Plain.Run(sample, 1f, good with { IpKeyValues = tiny.IpKeyValues(2), IpScale = 0.5f })).Message);
        Assert.Contains("no IpKeyValues", Assert.Throws<ArgumentException>(() => tiny.WithAdapter.Run(sample, 1f, good with { IpScale = 0.5f })).Message);
        Assert.Contains("the key must be [2, 4, 16]", Assert.Throws<ArgumentException>(() => tiny.WithAdapter.Run(sample, 1f, good with { IpKeyValues = tiny.IpKeyValues(1), IpScale = 0.5f })).Message);
        var layers = tiny.IpKeyValues(2).Layers;
        var oneShort = new IpAdapterKeyValues(layers.Skip(1).ToList());
        Assert.Contains("cross-attentions of this UNet", Assert.Throws<ArgumentException>(() => tiny.WithAdapter.Run(sample, 1f, good with { IpKeyValues = oneShort, IpScale = 0.5f })).Message);
        var narrowValue = new IpAdapterKeyValues([layers[0] with { Value = TinyUnetCheckpoint.Random([2, 4, 8], 1) }, .. layers.Skip(1)]);
        Assert.Contains("the value must be [2, 4, 16]; it is [2, 4, 8]", Assert.Throws<ArgumentException>(() => tiny.WithAdapter.Run(sample, 1f, good with { IpKeyValues = narrowValue, IpScale = 0.5f })).Message);
    }

    [Fact]
    public void CancellationStopsARun()
    {
        var sample = TinyUnetCheckpoint.Random([2, 4, 4, 4], seed: 6);
        Assert.Throws<OperationCanceledException>(() => tiny.Plain.Run(sample, 1f, tiny.Conditioning(2), new CancellationToken(true)));
    }

    [Fact]
    public void RefusesAnSd15StyleConfig()
    {
        var sd15 = new UnetConfig
        {
            DownBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            BlockOutChannels = new[] { 320, 640, 1280, 1280 },
            AttentionHeadDim = 8,
            CrossAttentionDim = 768,
            UseLinearProjection = false,
            AdditionEmbedType = null,
        };
        var e = Assert.Throws<CheckpointException>(() => Unet.BuildGraph(sd15, new WeightRecorder("sd15.safetensors"), withIpAdapter: false, null));
        Assert.Contains("addition_embed_type", e.Message);
        Assert.Contains("sd15.safetensors", e.Message);
    }

    [Fact]
    public void RefusesAConfigWhoseListsDoNotMatchTheBlocks()
    {
        var config = new UnetConfig { TransformerLayersPerBlock = new[] { 1, 2 } };
        var e = Assert.Throws<CheckpointException>(() => Unet.BuildGraph(config, new WeightRecorder("unet.safetensors"), withIpAdapter: false, null));
        Assert.Contains("transformer_layers_per_block has 2 entries for 3 blocks", e.Message);
    }

    [Fact]
    public void RefusesACheckpointWithAMissingTensor()
    {
        const string missing = "up_blocks.0.attentions.1.transformer_blocks.0.attn2.to_v.weight";
        var folder = tiny.WriteUnetFolder(tensors => tensors.Where(t => t.Name != missing));
        var e = Assert.Throws<CheckpointException>(() => Unet.Load(folder, null, SessionSettings.Default));
        Assert.Equal(missing, e.TensorName);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void RefusesACheckpointWithATensorOfTheWrongShape()
    {
        const string wrong = "mid_block.resnets.1.conv1.weight";
        var folder = tiny.WriteUnetFolder(tensors => tensors.Select(t => t.Name == wrong ? t with { Shape = [t.Shape[1], t.Shape[0], 1, 9] } : t));
        var e = Assert.Throws<CheckpointException>(() => Unet.Load(folder, null, SessionSettings.Default));
        Assert.Equal(wrong, e.TensorName);
        Assert.Contains("[16, 16, 3, 3]", e.Message);
    }

    [Fact]
    public void RefusesAnAdapterMadeForAnotherUnet()
    {
        var extra = tiny.WriteAdapter(tensors => tensors.Append(new TinyUnetCheckpoint.Tensor("ip_adapter.41.to_k_ip.weight", [16, 16])));
        var e = Assert.Throws<CheckpointException>(() => Unet.Load(tiny.UnetFolder, extra, SessionSettings.Default));
        Assert.Equal("ip_adapter.41.to_k_ip.weight", e.TensorName);

        var missing = tiny.WriteAdapter(tensors => tensors.Where(t => t.Name != "ip_adapter.3.to_v_ip.weight"));
        Assert.Equal("ip_adapter.3.to_v_ip.weight", Assert.Throws<CheckpointException>(() => Unet.Load(tiny.UnetFolder, missing, SessionSettings.Default)).TensorName);
    }

    /// <summary>A layer of another width (another UNet's channels) is refused by shape when the UNet opens.</summary>
    [Fact]
    public void RefusesAnAdapterWhoseLayersHaveOtherWidths()
    {
        var wider = tiny.WriteAdapter(tensors => tensors.Select(t => t.Name == "ip_adapter.5.to_k_ip.weight" ? t with { Shape = [32, t.Shape[1]] } : t));
        var e = Assert.Throws<CheckpointException>(() => Unet.Load(tiny.UnetFolder, wider, SessionSettings.Default));
        Assert.Equal("ip_adapter.5.to_k_ip.weight", e.TensorName);
        Assert.Contains(wider.AdapterPath, e.Message);
        Assert.Contains("[16, 12]", e.Message);
    }
}

/// <summary>
/// A random-weight UNet of the SDXL layout at toy size (2 levels, 1 resnet per block, 2 heads), written as a
/// diffusers unet/ folder with an IP-Adapter file beside it, for tests that need no reference data.
/// </summary>
public sealed class TinyUnetCheckpoint : IDisposable
{
    public sealed record Tensor(string Name, long[] Shape);

    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-unet-").FullName;
    private int folders;

    public TinyUnetCheckpoint()
    {
        var (unet, adapter) = (new WeightRecorder("unet"), new WeightRecorder("adapter"));
        Unet.BuildGraph(Config, unet, withIpAdapter: false, null);
        IpAdapterKeys.BuildGraph(Config, adapter, null);
        UnetTensors = unet.Tensors.Select(t => new Tensor(t.Name, t.Shape)).ToArray();
        AdapterTensors = adapter.Tensors.Select(t => new Tensor(t.Name, t.Shape)).ToArray();
        UnetFolder = WriteUnetFolder(t => t);
        Adapter = WriteAdapter(t => t);
        Plain = Unet.Load(UnetFolder, null, SessionSettings.Default);
        WithAdapter = Unet.Load(UnetFolder, Adapter, SessionSettings.Default);
        AdapterKeys = IpAdapterKeys.Load(Adapter.AdapterPath, Config, SessionSettings.Default);
    }

    public static UnetConfig Config { get; } = new()
    {
        BlockOutChannels = new[] { 8, 16 },
        DownBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D"],
        UpBlockTypes = ["CrossAttnUpBlock2D", "UpBlock2D"],
        LayersPerBlock = 1,
        TransformerLayersPerBlock = new[] { 1, 2 },
        AttentionHeadDim = new[] { 2, 2 },
        CrossAttentionDim = 12,
        AdditionTimeEmbedDim = 4,
        ProjectionClassEmbeddingsInputDim = 10 + 6 * 4,
        NormNumGroups = 4,
    };

    public IReadOnlyList<Tensor> UnetTensors { get; }

    public IReadOnlyList<Tensor> AdapterTensors { get; }

    public string UnetFolder { get; }

    public Unet Plain { get; }

    public Unet WithAdapter { get; }

    public IpAdapterFiles Adapter { get; }

    public IpAdapterKeys AdapterKeys { get; }

    public UnetConditioning Conditioning(int batch) => new(
        Random([batch, 9, Config.CrossAttentionDim], 11), Random([batch, 10], 12),
        new FloatTensor(Enumerable.Repeat(new float[] { 40, 24, 0, 0, 40, 24 }, batch).SelectMany(x => x).ToArray(), [batch, 6]));

    public FloatTensor IpTokens(int batch) => Random([batch, 4, Config.CrossAttentionDim], 13);

    public IpAdapterKeyValues IpKeyValues(int batch) => AdapterKeys.Run(IpTokens(batch));

    public static FloatTensor Random(int[] shape, int seed)
    {
        var random = new Random(seed);
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return new FloatTensor(data, shape);
    }

    /// <summary>A unet/ folder with the tiny config and the given tensors (random values, scaled to keep activations tame).</summary>
    public string WriteUnetFolder(Func<IEnumerable<Tensor>, IEnumerable<Tensor>> select)
    {
        var folder = Directory.CreateDirectory(Path.Combine(root, $"unet-{folders++}")).FullName;
        ConfigJson.Write(Path.Combine(folder, "config.json"), Config);
        Write(Path.Combine(folder, "diffusion_pytorch_model.safetensors"), select(UnetTensors));
        return folder;
    }

    /// <summary>An h94/IP-Adapter-style folder whose adapter file holds the given tensors (the image encoder is a placeholder).</summary>
    public IpAdapterFiles WriteAdapter(Func<IEnumerable<Tensor>, IEnumerable<Tensor>> select)
    {
        var repository = Path.Combine(root, $"ip-adapter-{folders++}");
        var adapterPath = Path.Combine(repository, IpAdapterFiles.AdapterRelativePath);
        var encoder = Path.Combine(repository, IpAdapterFiles.ImageEncoderRelativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(adapterPath)!);
        Directory.CreateDirectory(encoder);
        File.WriteAllText(Path.Combine(encoder, "config.json"), "{}");
        File.WriteAllBytes(Path.Combine(encoder, "model.safetensors"), []);
        Write(adapterPath, select(AdapterTensors));
        return IpAdapterFiles.FromRepository(repository);
    }

    private static void Write(string path, IEnumerable<Tensor> tensors)
        => SafetensorsWriter.Write(path, tensors.Select((t, i) => new SafetensorsWriter.Entry(t.Name, t.Shape, () =>
        {
            var values = Random(t.Shape.Select(d => (int)d).ToArray(), i).Data;
            // Norm scales near 1, everything else small, as in a trained network.
            bool normScale = t.Name.EndsWith("norm.weight") || t.Name.Contains(".norm1.weight") || t.Name.Contains(".norm2.weight")
                || t.Name.Contains(".norm3.weight") || t.Name.EndsWith("conv_norm_out.weight");
            for (int k = 0; k < values.Length; k++) values[k] = normScale ? 1 + 0.1f * values[k] : 0.3f * values[k];
            return values;
        })).ToList());

    public void Dispose()
    {
        Plain.Dispose();
        WithAdapter.Dispose();
        AdapterKeys.Dispose();
        Directory.Delete(root, recursive: true);
    }
}

/// <summary>
/// The tiny models' UNets with their IP-Adapters, and the adapters' key/value projections, loaded once per model on
/// first use: in float32, or (<see cref="TinyModelInt8Unets"/>) Int8 converting into a temporary cache.
/// </summary>
public class TinyModelUnets : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<(Unet Unet, IpAdapterKeys Keys)>> loaded = new();

    protected virtual SessionSettings Settings => SessionSettings.Default;

    public Unet WithAdapter(TinyModel model) => Load(model).Unet;

    public IpAdapterKeys AdapterKeys(TinyModel model) => Load(model).Keys;

    private (Unet Unet, IpAdapterKeys Keys) Load(TinyModel model) => loaded.GetOrAdd(model.Name, _ => new(() =>
    {
        var adapter = IpAdapterFiles.FromRepository(model.IpAdapterRepository);
        var unet = Unet.Load(model.Unet, adapter, Settings);
        return (unet, IpAdapterKeys.Load(adapter.AdapterPath, ConfigJson.Read<UnetConfig>(Path.Combine(model.Unet, "config.json")), Settings));
    })).Value;

    public virtual void Dispose()
    {
        foreach (var entry in loaded.Values.Where(e => e.IsValueCreated))
        {
            entry.Value.Unet.Dispose();
            entry.Value.Keys.Dispose();
        }
        GC.SuppressFinalize(this);
    }
}

/// <summary>The tiny models' UNets and adapter keys in Int8, converting into a temporary cache.</summary>
public sealed class TinyModelInt8Unets : TinyModelUnets
{
    private readonly string cache = Directory.CreateTempSubdirectory("mnemosyne-int8-").FullName;

    protected override SessionSettings Settings => new() { Precision = WeightPrecision.Int8, ConvertedWeightsRoot = cache };

    public override void Dispose()
    {
        base.Dispose();
        Directory.Delete(cache, recursive: true);
    }
}
