using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class ImageProjectionTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-image-proj-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static IpAdapterFiles Files(TinyModel model) => IpAdapterFiles.FromRepository(model.IpAdapterRepository);

    /// <summary>A tiny model's sizes, read from its configs as the engine will.</summary>
    private static ImageProjectionConfig Config(TinyModel model)
        => ImageProjectionConfig.For(Files(model).ReadImageEncoderConfig(), DiffusersCheckpoint.Open(model.Folder).ReadUnetConfig());

    private static ImageProjection Load(TinyModel model) => ImageProjection.Load(Files(model).AdapterPath, Config(model), SessionSettings.Default);

    /// <summary>The shared fidelity cases hold the reference's ip tokens; config B's reach the UNet in its whole-scene cases.</summary>
    [FidelityFact]
    public void MatchesDiffusersOnTheReferenceImageEmbeds()
    {
        using var projection = Load(TinyModel.A);
        var tokens = projection.Run(ReadNpy(Path.Combine(TestPaths.Fidelity, "reference-image-embeds.npy")));
        var error = MaxAbsError(ReadNpy(Path.Combine(TestPaths.Fidelity, "reference-ip-tokens.npy")), tokens);
        output.WriteLine($"fidelity reference ip tokens: {error:E2}");
        Assert.InRange(error, 0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void MatchesDiffusersOnTheNetworkCases(string model)
    {
        var tiny = TinyModel.Named(model);
        using var projection = Load(tiny);
        var tokens = projection.Run(ReadNpy(tiny.NetworkCase("image-projection-embeds.npy")));
        var error = MaxAbsError(ReadNpy(tiny.NetworkCase("image-projection-ip-tokens.npy")), tokens);
        var unetError = MaxAbsError(ReadNpy(tiny.NetworkCase("unet-ip-tokens.npy")), projection.Run(ReadNpy(tiny.NetworkCase("unet-image-embeds.npy"))));
        output.WriteLine($"config {model} ip tokens: {error:E2}; of the UNet's image embeds: {unetError:E2}");
        Assert.InRange(error, 0, Tolerance);
        Assert.InRange(unetError, 0, Tolerance);
    }

    /// <summary>Row 0 of the network cases' rows is the pipeline's unconditional branch: zero embeds, projected.</summary>
    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void UnconditionalTokensAreTheProjectionOfZeroEmbeds(string model)
    {
        var tiny = TinyModel.Named(model);
        using var projection = Load(tiny);
        var tokens = projection.UnconditionalTokens();
        var expected = Rows(ReadNpy(tiny.NetworkCase("image-projection-ip-tokens.npy")), 0, 1);
        Assert.InRange(MaxAbsError(expected, tokens), 0, Tolerance);
        Assert.Contains(tokens.Data, v => Math.Abs(v) > 0.1f);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void AsksForExactlyTheImageProjTensorsOfTheAdapterFile(string model)
    {
        var tiny = TinyModel.Named(model);
        var recorder = new WeightRecorder("recorded");
        ImageProjection.BuildGraph(Config(tiny), recorder, null);
        var adapterKeys = KeySet(Files(tiny).AdapterPath);
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

    [Fact]
    public void RefusesAnAdapterFileMissingATensor()
    {
        const string missing = "image_proj.norm.bias";
        var copy = CopyComponent(Path.Combine(TinyModel.B.IpAdapterRepository, "sdxl_models"), "ip-adapter_sdxl_vit-h.safetensors", dir,
            (name, shape) => name == missing ? null : shape);
        var e = Assert.Throws<CheckpointException>(() => ImageProjection.Load(copy, Config(TinyModel.B), SessionSettings.Default));
        Assert.Equal(copy, e.FilePath);
        Assert.Equal(missing, e.TensorName);
        Assert.Contains(copy, e.Message);
        Assert.Contains(missing, e.Message);
    }

    /// <summary>An adapter made for another UNet width (a different cross_attention_dim) is refused by shape.</summary>
    [Fact]
    public void RefusesAnAdapterOfAnotherWidth()
    {
        var config = Config(TinyModel.B) with { CrossAttentionDim = 32 };
        var adapter = Files(TinyModel.B).AdapterPath;
        var e = Assert.Throws<CheckpointException>(() => ImageProjection.Load(adapter, config, SessionSettings.Default));
        Assert.Equal("image_proj.proj.weight", e.TensorName);
        Assert.Contains(adapter, e.Message);
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

    [Fact]
    public void RefusesEmbedsOfTheWrongWidth()
    {
        using var projection = Load(TinyModel.B);
        var e = Assert.Throws<ArgumentException>(() => projection.Run(new FloatTensor(new float[1024], [1, 1024])));
        Assert.Contains("[B, 16]", e.Message);
    }
}
