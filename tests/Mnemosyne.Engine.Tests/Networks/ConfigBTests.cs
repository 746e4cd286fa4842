using System.Text.Json;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// All six networks against diffusers v0.30.0 on config B: the engine's own tiny random checkpoint
/// (<see cref="CheckpointShape.Tiny"/>: a three-level UNet, a synthetic vocabulary), whose reference
/// numbers are tests/reference/networks-b. The checkpoint is regenerated here from its seed, so these
/// tests need nothing outside the repository and never skip.
/// </summary>
public sealed class ConfigBTests(ITestOutputHelper output, ConfigBCheckpoint configB) : IClassFixture<ConfigBCheckpoint>
{
    private static FloatTensor Fixture(string name) => ReadNpy(Path.Combine(NetworksB, name));

    private void Check(string what, FloatTensor expected, FloatTensor actual)
    {
        var error = MaxAbsError(expected, actual);
        output.WriteLine($"networks-b {what}: max-abs error {error:E2} (values up to {expected.Data.Max(Math.Abs):g3})");
        Assert.True(error <= Tolerance, $"networks-b {what}: max-abs error {error:g3} > {Tolerance:g3}");
    }

    /// <summary>The fixtures hold the command that made their checkpoint; the fixture must write that same one.</summary>
    [Fact]
    public void RegeneratesTheCheckpointTheFixturesWereMadeFrom()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(NetworksB, "checkpoint.json")));
        Assert.Equal(
            $"dotnet pwsh ./build.ps1 TinyModel -Output out/tiny-b -Seed {ConfigBCheckpoint.Seed} -Size Tiny",
            doc.RootElement.GetProperty("command").GetString());
    }

    [Fact]
    public void TextEncodersMatchDiffusers()
    {
        var ids = Path.Combine(NetworksB, "text-ids.json");
        using var encoder1 = ClipTextEncoder.Load(configB.Checkpoint.TextEncoder.Folder, SessionSettings.Default);
        using var encoder2 = ClipTextEncoder.Load(configB.Checkpoint.TextEncoder2.Folder, SessionSettings.Default);
        var first = encoder1.Run(IdRows(ids, "tokenizer"));
        var second = encoder2.Run(IdRows(ids, "tokenizer_2"));

        Assert.Null(first.TextEmbeds);
        Check("text_encoder penultimate", Fixture("text-encoder-penultimate.npy"), first.PenultimateHiddenStates);
        Check("text_encoder_2 penultimate", Fixture("text-encoder-2-penultimate.npy"), second.PenultimateHiddenStates);
        Check("text_encoder_2 text_embeds (pooled)", Fixture("text-encoder-2-text-embeds.npy"), second.TextEmbeds!);
    }

    /// <summary>encode_prompt's output: both penultimate states side by side, pooled embeds from encoder 2.</summary>
    [Fact]
    public void TextEncodersGiveTheUnetPromptEmbeds()
    {
        var ids = Path.Combine(NetworksB, "unet-text-ids.json");
        using var encoder1 = ClipTextEncoder.Load(configB.Checkpoint.TextEncoder.Folder, SessionSettings.Default);
        using var encoder2 = ClipTextEncoder.Load(configB.Checkpoint.TextEncoder2.Folder, SessionSettings.Default);
        var first = encoder1.Run(IdRows(ids, "tokenizer"));
        var second = encoder2.Run(IdRows(ids, "tokenizer_2"));

        var promptEmbeds = Fixture("unet-encoder-hidden-states.npy");
        int width1 = first.PenultimateHiddenStates.Shape[^1];
        Check("prompt embeds from text_encoder", LastAxis(promptEmbeds, 0, width1), first.PenultimateHiddenStates);
        Check("prompt embeds from text_encoder_2", LastAxis(promptEmbeds, width1, promptEmbeds.Shape[^1] - width1), second.PenultimateHiddenStates);
        Check("pooled prompt embeds", Fixture("unet-text-embeds.npy"), second.TextEmbeds!);
    }

    /// <summary>
    /// The script's pixels are torch.randn(1, 3, 224, 224) from torch.Generator('cpu').manual_seed(1234)
    /// (its PIXEL_SEED); they are redrawn here bit for bit rather than kept in the repository (600 KB).
    /// </summary>
    [Fact]
    public void ImageEncoderMatchesDiffusers()
    {
        using var encoder = ClipVisionEncoder.Load(configB.IpAdapter, SessionSettings.Default);
        int size = encoder.Config.ImageSize;
        var pixels = new FloatTensor(new TorchGenerator(1234).Randn(1, 3, size, size), [1, 3, size, size]);
        Check("image_encoder image_embeds", Fixture("image-encoder-random-image-embeds.npy"), encoder.Run(pixels));
    }

    [Fact]
    public void ImageProjectionMatchesDiffusers()
    {
        using var projection = ImageProjection.Load(configB.IpAdapter.AdapterPath,
            ImageProjectionConfig.For(configB.IpAdapter.ReadImageEncoderConfig(), configB.Checkpoint.ReadUnetConfig()), SessionSettings.Default);
        var expected = Fixture("image-projection-ip-tokens.npy");

        Check("image_proj ip tokens", expected, projection.Run(Fixture("image-projection-embeds.npy")));
        Check("image_proj unconditional tokens", Rows(expected, 0, 1), projection.UnconditionalTokens());
        Check("image_proj of the UNet's image embeds", Fixture("unet-ip-tokens.npy"), projection.Run(Fixture("unet-image-embeds.npy")));
    }

    [Theory]
    [MemberData(nameof(UnetTests.FixtureCases), MemberType = typeof(UnetTests))]
    public void UnetMatchesDiffusers(string caseName, string scale)
    {
        var (sample, timestep, conditioning, expected) = ReadUnetCase(NetworksB, caseName, scale, configB.AdapterKeys);
        Check($"{caseName} UNet at IP-Adapter scale {scale}", expected, configB.Unet.Run(sample, timestep, conditioning));
    }

    /// <summary>The fixture latents are already divided by scaling_factor; the engine's decoder divides itself.</summary>
    [Theory]
    [InlineData("vae-8x12")]
    [InlineData("vae-7x9")]
    public void VaeDecoderMatchesDiffusers(string caseName)
    {
        using var decoder = VaeDecoder.Load(configB.Checkpoint.Vae, SessionSettings.Default);
        var latents = Fixture(caseName + "-latents.npy");
        var scaled = new FloatTensor(latents.Data.Select(v => v * decoder.Config.ScalingFactor).ToArray(), latents.Shape);
        Check($"{caseName} VAE decode", Fixture(caseName + "-sample.npy"), decoder.Run(scaled));
    }
}

/// <summary>Config B's checkpoint, written once per test class into a temp folder, with its UNet and the adapter's projections loaded on first use.</summary>
public sealed class ConfigBCheckpoint : IDisposable
{
    /// <summary>The seed of the command in tests/reference/networks-b/checkpoint.json.</summary>
    public const ulong Seed = 20240607;

    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-config-b-").FullName;
    private readonly Lazy<Unet> unet;
    private readonly Lazy<IpAdapterKeys> adapterKeys;

    public ConfigBCheckpoint()
    {
        RandomCheckpoint.Write(root, CheckpointShape.Tiny, Seed);
        Checkpoint = DiffusersCheckpoint.Open(root);
        IpAdapter = IpAdapterFiles.FromRepository(Path.Combine(root, RandomCheckpoint.IpAdapterFolder));
        unet = new(() => Unet.Load(Checkpoint.Unet, IpAdapter, SessionSettings.Default));
        adapterKeys = new(() => IpAdapterKeys.Load(IpAdapter.AdapterPath, Checkpoint.ReadUnetConfig(), SessionSettings.Default));
    }

    public DiffusersCheckpoint Checkpoint { get; }

    public IpAdapterFiles IpAdapter { get; }

    public Unet Unet => unet.Value;

    public IpAdapterKeys AdapterKeys => adapterKeys.Value;

    public void Dispose()
    {
        if (unet.IsValueCreated) unet.Value.Dispose();
        if (adapterKeys.IsValueCreated) adapterKeys.Value.Dispose();
        Directory.Delete(root, recursive: true);
    }
}
