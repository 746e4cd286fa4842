using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// The IP-Adapter's key/value projections: against tokens·Wᵀ computed here from the adapter file, and their
/// weight contract (which ip_adapter.* tensors, with which shapes, an adapter file must hold).
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class IpAdapterKeysTests(ITestOutputHelper output, TinyUnetCheckpoint tiny, TinyModelUnets unets)
    : IClassFixture<TinyUnetCheckpoint>, IClassFixture<TinyModelUnets>, IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-ip-keys-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>float32 products of at most 2048 terms against the same sums in double.</summary>
    private const float ProductTolerance = 1e-5f;

    /// <summary>tokens [B, T, cross] · Wᵀ for W [C, cross] read from the file, summed in double.</summary>
    private static FloatTensor Project(FloatTensor tokens, SafetensorsFile adapter, string tensorName)
    {
        var weight = adapter.ReadFloat32(tensorName);
        var shape = adapter.Tensors[tensorName].Shape;
        int channels = (int)shape[0], cross = (int)shape[1], rows = tokens.Shape[0] * tokens.Shape[1];
        Assert.Equal(cross, tokens.Shape[2]);
        var result = new float[rows * channels];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < channels; c++)
            {
                double sum = 0;
                for (int j = 0; j < cross; j++) sum += (double)tokens.Data[r * cross + j] * weight[c * cross + j];
                result[r * channels + c] = (float)sum;
            }
        return new FloatTensor(result, [tokens.Shape[0], tokens.Shape[1], channels]);
    }

    /// <summary>The largest error over every layer's key and value.</summary>
    private static float MaxErrorAgainstTheFile(IpAdapterKeyValues keyValues, FloatTensor tokens, string adapterPath)
    {
        using var adapter = SafetensorsFile.Open(adapterPath);
        float max = 0;
        foreach (var layer in keyValues.Layers)
        {
            max = Math.Max(max, MaxAbsError(Project(tokens, adapter, $"ip_adapter.{layer.Number}.to_k_ip.weight"), layer.Key));
            max = Math.Max(max, MaxAbsError(Project(tokens, adapter, $"ip_adapter.{layer.Number}.to_v_ip.weight"), layer.Value));
        }
        return max;
    }

    [Fact]
    public void KeysAndValuesAreTheTokensTimesTheProjections()
    {
        var tokens = tiny.IpTokens(2);
        var keyValues = tiny.AdapterKeys.Run(tokens);

        // Every cross-attention, in the order the UNet's forward pass reaches them: down block, mid block, up block.
        Assert.Equal([1, 3, 13, 15, 5, 7, 9, 11], keyValues.Layers.Select(l => l.Number));
        Assert.All(keyValues.Layers, l => Assert.Equal([2, 4, 16], l.Key.Shape));
        var error = MaxErrorAgainstTheFile(keyValues, tokens, tiny.Adapter.AdapterPath);
        output.WriteLine($"tiny adapter keys and values: max-abs error {error:E2}");
        Assert.InRange(error, 0, ProductTolerance);
    }

    /// <summary>The generator's tiny model has 17 cross-attentions: more than one session's worth of layers.</summary>
    [Fact]
    public void LayersRunInSeveralSessionsGiveTheSameProducts()
    {
        RandomCheckpoint.Write(dir, CheckpointShape.Tiny, 5);
        var adapterPath = Path.Combine(dir, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath);
        using var keys = IpAdapterKeys.Load(adapterPath, CheckpointShape.Tiny.Unet, SessionSettings.Default);
        var tokens = TinyUnetCheckpoint.Random([2, 4, CheckpointShape.Tiny.Unet.CrossAttentionDim], 8);
        var keyValues = keys.Run(tokens);

        Assert.Equal(17, keyValues.Layers.Count);
        Assert.True(keyValues.Layers.Count > IpAdapterKeys.LayersPerSession);
        Assert.Equal(Enumerable.Range(0, 17).Select(i => 2 * i + 1), keyValues.Layers.Select(l => l.Number).Order());
        var error = MaxErrorAgainstTheFile(keyValues, tokens, adapterPath);
        output.WriteLine($"tiny generated adapter keys and values: max-abs error {error:E2}");
        Assert.InRange(error, 0, ProductTolerance);
    }

    /// <summary>The network cases' UNet tokens through every projection of the model's adapter file.</summary>
    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void MatchesTheAdapterFile(string model)
    {
        var tinyModel = TinyModel.Named(model);
        var tokens = ReadNpy(tinyModel.NetworkCase("unet-ip-tokens.npy"));
        var keyValues = unets.AdapterKeys(tinyModel).Run(tokens);
        Assert.Equal(KeySet(tinyModel.IpAdapterFile).Keys.Count(k => k.EndsWith(".to_k_ip.weight", StringComparison.Ordinal)), keyValues.Layers.Count);
        var error = MaxErrorAgainstTheFile(keyValues, tokens, tinyModel.IpAdapterFile);
        output.WriteLine($"config {model} adapter keys and values ({keyValues.Layers.Count} layers): max-abs error {error:E2}");
        Assert.InRange(error, 0, ProductTolerance);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void AsksForExactlyTheIpAdapterTensorsOfTheAdapterFile(string model)
    {
        var tinyModel = TinyModel.Named(model);
        var recorder = new WeightRecorder("recorded");
        IpAdapterKeys.BuildGraph(ConfigJson.Read<UnetConfig>(Path.Combine(tinyModel.Unet, "config.json")), recorder, null);
        var adapterKeys = KeySet(tinyModel.IpAdapterFile);
        var ipAdapter = new SortedDictionary<string, string>(
            adapterKeys.Where(k => k.Key.StartsWith("ip_adapter.", StringComparison.Ordinal)).ToDictionary(), StringComparer.Ordinal);
        Assert.NotEmpty(ipAdapter);
        Assert.Equal(ipAdapter, KeySet(recorder));
    }

    /// <summary>The ViT-H SDXL adapter's layers, counted from the published layout.</summary>
    [Fact]
    public void SdxlBaseConfigNeedsTheFullSizedAdapter()
    {
        var recorder = new WeightRecorder("ip-adapter_sdxl_vit-h.safetensors");
        IpAdapterKeys.BuildGraph(new UnetConfig(), recorder, null);
        var shapes = recorder.Tensors.ToDictionary(t => t.Name, t => t.Shape);
        Assert.Equal(140, shapes.Count);
        Assert.Equal(Enumerable.Range(0, 70).Select(i => 2 * i + 1), shapes.Keys.Select(k => int.Parse(k.Split('.')[1])).Distinct().Order());
        // down_blocks.1 (640), down_blocks.2 (1280), up_blocks.0 (1280), up_blocks.1 (640), then the mid block (1280).
        Assert.Equal([640L, 2048], shapes["ip_adapter.7.to_k_ip.weight"]);
        Assert.Equal([1280L, 2048], shapes["ip_adapter.9.to_v_ip.weight"]);
        Assert.Equal([1280L, 2048], shapes["ip_adapter.107.to_k_ip.weight"]);
        Assert.Equal([640L, 2048], shapes["ip_adapter.109.to_k_ip.weight"]);
        Assert.Equal([640L, 2048], shapes["ip_adapter.119.to_v_ip.weight"]);
        Assert.Equal([1280L, 2048], shapes["ip_adapter.121.to_k_ip.weight"]);
        Assert.Equal(2_048L * (10 * 640 + 60 * 1280) * 2, shapes.Values.Sum(s => s[0] * s[1]));
    }

    [Fact]
    public void RefusesAnAdapterMadeForAnotherUnet()
    {
        var extra = tiny.WriteAdapter(tensors => tensors.Append(new TinyUnetCheckpoint.Tensor("ip_adapter.17.to_v_ip.weight", [16, 12])));
        var e = Assert.Throws<CheckpointException>(() => IpAdapterKeys.Load(extra.AdapterPath, TinyUnetCheckpoint.Config, SessionSettings.Default));
        Assert.Equal("ip_adapter.17.to_v_ip.weight", e.TensorName);
        Assert.Contains(extra.AdapterPath, e.Message);
        Assert.Contains("8 cross-attentions", e.Message);
    }

    [Fact]
    public void RefusesTokensOfTheWrongWidth()
    {
        var e = Assert.Throws<ArgumentException>(() => tiny.AdapterKeys.Run(TinyUnetCheckpoint.Random([1, 4, 8], 1)));
        Assert.Contains("[B, tokens, 12]", e.Message);
        Assert.Contains("[1, 4, 8]", e.Message);
    }

    [Fact]
    public void BatchesStackLayerByLayer()
    {
        var first = tiny.AdapterKeys.Run(tiny.IpTokens(1));
        var second = tiny.AdapterKeys.Run(TinyUnetCheckpoint.Random([1, 4, 12], 21));
        var both = IpAdapterKeyValues.ConcatBatch(first, second);
        Assert.Equal(first.Layers.Select(l => l.Number), both.Layers.Select(l => l.Number));
        for (int i = 0; i < both.Layers.Count; i++)
        {
            Assert.Equal([.. first.Layers[i].Value.Data, .. second.Layers[i].Value.Data], both.Layers[i].Value.Data);
            Assert.Equal([2, 4, 16], both.Layers[i].Key.Shape);
        }
        Assert.Equal(second.Layers.Select(l => l.Key.Data), both.BatchItem(1).Layers.Select(l => l.Key.Data));
        Assert.All(both.BatchItem(0).Layers, l => Assert.Equal([1, 4, 16], l.Value.Shape));

        var fewer = new IpAdapterKeyValues(second.Layers.Skip(1).ToList());
        Assert.Throws<ArgumentException>(() => IpAdapterKeyValues.ConcatBatch(first, fewer));
    }
}
