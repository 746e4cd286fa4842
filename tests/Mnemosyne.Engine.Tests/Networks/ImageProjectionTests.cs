using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

public sealed class ImageProjectionTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-image-proj-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static IpAdapterFiles Files => IpAdapterFiles.FromRepository(FidelityIpAdapter);

    /// <summary>The fidelity model's sizes, read from its configs as the engine will.</summary>
    private static ImageProjectionConfig FidelityConfig()
        => ImageProjectionConfig.For(Files.ReadImageEncoderConfig(), DiffusersCheckpoint.Open(TestPaths.FidelityModel).ReadUnetConfig());

    private static ImageProjection LoadFidelity() => ImageProjection.Load(Files.AdapterPath, FidelityConfig(), SessionSettings.Default);

    [FidelityFact]
    public void MatchesDiffusersOnTheReferenceImageEmbeds()
    {
        using var projection = LoadFidelity();
        var tokens = projection.Run(ReadNpy(Path.Combine(TestPaths.Fidelity, "reference-image-embeds.npy")));
        var error = MaxAbsError(ReadNpy(Path.Combine(TestPaths.Fidelity, "reference-ip-tokens.npy")), tokens);
        output.WriteLine($"fidelity reference ip tokens: {error:E2}");
        Assert.InRange(error, 0, Tolerance);
    }

    [FidelityFact]
    public void MatchesDiffusersOnTheNetworksARows()
    {
        using var projection = LoadFidelity();
        var tokens = projection.Run(ReadNpy(Path.Combine(NetworksA, "image-projection-embeds.npy")));
        var error = MaxAbsError(ReadNpy(Path.Combine(NetworksA, "image-projection-ip-tokens.npy")), tokens);
        output.WriteLine($"networks-a ip tokens: {error:E2}");
        Assert.InRange(error, 0, Tolerance);
    }

    /// <summary>Row 0 of the networks-a rows is the pipeline's unconditional branch: zero embeds, projected.</summary>
    [FidelityFact]
    public void UnconditionalTokensAreTheProjectionOfZeroEmbeds()
    {
        using var projection = LoadFidelity();
        var tokens = projection.UnconditionalTokens();
        var expected = Rows(ReadNpy(Path.Combine(NetworksA, "image-projection-ip-tokens.npy")), 0, 1);
        Assert.InRange(MaxAbsError(expected, tokens), 0, Tolerance);
        Assert.Contains(tokens.Data, v => Math.Abs(v) > 0.1f);
    }

    [FidelityFact]
    public void AsksForExactlyTheImageProjTensorsOfTheAdapterFile()
    {
        var recorder = new WeightRecorder("recorded");
        ImageProjection.BuildGraph(FidelityConfig(), recorder, null);
        var adapterKeys = KeySet(Files.AdapterPath);
        var imageProj = new SortedDictionary<string, string>(
            adapterKeys.Where(k => k.Key.StartsWith("image_proj.", StringComparison.Ordinal)).ToDictionary(), StringComparer.Ordinal);
        Assert.Equal(4, imageProj.Count);
        Assert.Equal(imageProj, KeySet(recorder));
    }

    [Fact]
    public void RecordsTheSdxlVitHKeySet()
    {
        var recorder = new WeightRecorder("ip-adapter_sdxl_vit-h.safetensors");
        ImageProjection.BuildGraph(ImageProjectionConfig.For(new ClipVisionConfig(), new UnetConfig()), recorder, null);
        Assert.Equal(
            new SortedDictionary<string, string>(StringComparer.Ordinal)
            {
                ["image_proj.norm.bias"] = "[2048]",
                ["image_proj.norm.weight"] = "[2048]",
                ["image_proj.proj.bias"] = "[8192]",
                ["image_proj.proj.weight"] = "[8192, 1024]",
            },
            KeySet(recorder));
    }

    [FidelityFact]
    public void RefusesAnAdapterFileMissingATensor()
    {
        const string missing = "image_proj.norm.bias";
        var copy = CopyComponent(Path.Combine(FidelityIpAdapter, "sdxl_models"), "ip-adapter_sdxl_vit-h.safetensors", dir,
            (name, shape) => name == missing ? null : shape);
        var e = Assert.Throws<CheckpointException>(() => ImageProjection.Load(copy, FidelityConfig(), SessionSettings.Default));
        Assert.Equal(copy, e.FilePath);
        Assert.Equal(missing, e.TensorName);
        Assert.Contains(copy, e.Message);
        Assert.Contains(missing, e.Message);
    }

    /// <summary>An adapter made for another UNet width (a different cross_attention_dim) is refused by shape.</summary>
    [FidelityFact]
    public void RefusesAnAdapterOfAnotherWidth()
    {
        var config = FidelityConfig() with { CrossAttentionDim = 32 };
        var e = Assert.Throws<CheckpointException>(() => ImageProjection.Load(Files.AdapterPath, config, SessionSettings.Default));
        Assert.Equal("image_proj.proj.weight", e.TensorName);
        Assert.Contains(Files.AdapterPath, e.Message);
        Assert.Contains("[256, 16]", e.Message);
        Assert.Contains("[128, 16]", e.Message);
    }

    [Fact]
    public void RefusesAnIpAdapterPlusFile()
    {
        var plus = Path.Combine(dir, "ip-adapter-plus_sdxl_vit-h.safetensors");
        SafetensorsWriter.Write(plus, [new("image_proj.latents", [1, 16, 8], () => new float[128])]);
        using var weights = SafetensorsFile.Open(plus);
        var e = Assert.Throws<CheckpointException>(() => ImageProjection.BuildGraph(new ImageProjectionConfig(16, 64), weights, dir));
        Assert.Contains("IP-Adapter Plus", e.Message);
        Assert.Contains(plus, e.Message);
    }

    [FidelityFact]
    public void RefusesEmbedsOfTheWrongWidth()
    {
        using var projection = LoadFidelity();
        var e = Assert.Throws<ArgumentException>(() => projection.Run(new FloatTensor(new float[1024], [1, 1024])));
        Assert.Contains("[B, 16]", e.Message);
    }
}
