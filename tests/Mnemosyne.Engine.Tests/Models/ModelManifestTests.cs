using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>The manifests in models/ and the checks every manifest passes.</summary>
public sealed class ModelManifestTests
{
    private static string ManifestFolder => Path.Combine(TestPaths.RepositoryRoot, "models");

    [Fact]
    public void TheShippedManifests_LoadAndShipBesideTheEngine()
    {
        var manifests = ModelManifest.LoadFolder(ManifestFolder);

        Assert.Equal(
            ["ip-adapter-image-encoder-vit-h", "ip-adapter-plus-face-sdxl-vit-h", "ip-adapter-plus-sdxl-vit-h", "ip-adapter-sdxl-vit-h", "lcm-lora-sdxl", "sdxl-base-1.0", "sdxl-lightning-2step-lora",
             "sdxl-lightning-2step-unet", "sdxl-lightning-4step-lora", "sdxl-lightning-4step-unet", "sdxl-lightning-8step-lora", "sdxl-lightning-8step-unet", "taesdxl"],
            manifests.Select(m => m.Name));
        Assert.Equal(manifests.Select(m => m.ToJson()), ModelManifest.LoadFolder(ModelCatalog.DefaultManifestFolder).Select(m => m.ToJson()));
        Assert.All(manifests, m => Assert.True(m.IsPinned, $"{m.Name} should name a commit"));
    }

    [Fact]
    public void SdxlBase_ListsTheFp16PipelineWithSizesAndHashes()
    {
        var sdxl = ModelManifest.Load(Path.Combine(ManifestFolder, "sdxl-base-1.0.json"));

        Assert.Equal("stabilityai/stable-diffusion-xl-base-1.0", sdxl.Repository);
        Assert.Equal(ModelRole.Pipeline, sdxl.Role);
        Assert.Equal(18, sdxl.Files.Count);
        Assert.All(sdxl.Files, f => Assert.NotNull(f.Sha256));
        Assert.Equal(6_941_187_536, sdxl.SizeBytes);
        Assert.Contains(sdxl.Files, f => f.Path == "unet/diffusion_pytorch_model.fp16.safetensors" && f.Size == 5_135_149_760);
        foreach (var folder in new[] { "tokenizer", "tokenizer_2" })
            Assert.All(new[] { "merges.txt", "vocab.json", "special_tokens_map.json", "tokenizer_config.json" },
                name => Assert.Contains(sdxl.Files, f => f.Path == $"{folder}/{name}"));
        Assert.Contains(sdxl.Files, f => f.Path == "scheduler/scheduler_config.json");
    }

    [FidelityFact]
    [Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
    public void SdxlBase_MergesHash_MatchesTheTokenizerFileInTheReferenceModel()
    {
        // The tiny reference model carries SDXL's own merges.txt: the manifest's hash must be that file's.
        var merges = File.ReadAllBytes(Path.Combine(TestPaths.FidelityModel, "tokenizer", "merges.txt"));
        var sdxl = ModelManifest.Load(Path.Combine(ManifestFolder, "sdxl-base-1.0.json"));
        var listed = sdxl.Files.Single(f => f.Path == "tokenizer/merges.txt");
        Assert.Equal(listed.Size, merges.Length);
        Assert.Equal(listed.Sha256, new HostedFile(merges, lfs: true).Sha256);
    }

    [Fact]
    public void TheIpAdapterAndItsEncoder_ComeFromOneCommit()
    {
        var adapter = ModelManifest.Load(Path.Combine(ManifestFolder, "ip-adapter-sdxl-vit-h.json"));
        var encoder = ModelManifest.Load(Path.Combine(ManifestFolder, "ip-adapter-image-encoder-vit-h.json"));

        Assert.Equal("h94/IP-Adapter", adapter.Repository);
        Assert.Equal(adapter.Revision, encoder.Revision);
        Assert.Equal("sdxl_models/ip-adapter_sdxl_vit-h.safetensors", adapter.Entry);
        Assert.Equal(698_391_064, adapter.SizeBytes);
        Assert.Equal("models/image_encoder", encoder.Entry);
        Assert.Equal(["models/image_encoder/config.json", "models/image_encoder/model.safetensors"], encoder.Files.Select(f => f.Path));
        Assert.Null(encoder.SizeBytes);
    }

    /// <summary>The model card: Euler at trailing timesteps, as many steps as the UNet was distilled for, guidance 0.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void Lightning_CarriesTheSchedulerItNeeds(int steps)
    {
        var lightning = ModelManifest.Load(Path.Combine(ManifestFolder, $"sdxl-lightning-{steps}step-unet.json"));

        Assert.Equal(ModelRole.Unet, lightning.Role);
        Assert.Equal("sdxl-base-1.0", lightning.BaseModel);
        Assert.Equal(("ByteDance/SDXL-Lightning", "c9a24f48e1c025556787b0c58dd67a091ece2e44"), (lightning.Repository, lightning.Revision));
        Assert.Equal(new SchedulerSettings { Kind = SchedulerKind.Euler, TimestepSpacing = "trailing", Steps = steps, GuidanceScale = 0 }, lightning.Scheduler);
        Assert.Equal(TimestepSpacing.Trailing, lightning.Scheduler!.Spacing);
        Assert.Equal($"sdxl_lightning_{steps}step_unet.safetensors", lightning.Entry);
        Assert.Equal(lightning.Entry, Assert.Single(lightning.Files).Path);
    }

    /// <summary>The LoRAs' model card: as the UNets, Euler at trailing timesteps, the LoRA's own step count, guidance 0.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void LightningLoras_AreSpeedLorasWithTheUnetsSampling(int steps)
    {
        var lora = ModelManifest.Load(Path.Combine(ManifestFolder, $"sdxl-lightning-{steps}step-lora.json"));
        var unet = ModelManifest.Load(Path.Combine(ManifestFolder, $"sdxl-lightning-{steps}step-unet.json"));

        Assert.Equal(ModelRole.Lora, lora.Role);
        Assert.Equal((unet.Repository, unet.Revision), (lora.Repository, lora.Revision));
        Assert.Equal(unet.Scheduler, lora.Scheduler);
        Assert.Equal($"sdxl_lightning_{steps}step_lora.safetensors", lora.Entry);
        Assert.Equal(lora.Entry, Assert.Single(lora.Files).Path);
    }

    [Fact]
    public void LcmLora_IsASpeedLoraForFourLcmStepsWithoutGuidance()
    {
        var lcm = ModelManifest.Load(Path.Combine(ManifestFolder, "lcm-lora-sdxl.json"));

        Assert.Equal(ModelRole.Lora, lcm.Role);
        Assert.Equal(("latent-consistency/lcm-lora-sdxl", "pytorch_lora_weights.safetensors"), (lcm.Repository, lcm.Entry));
        Assert.Equal(new SchedulerSettings { Kind = SchedulerKind.Lcm, Steps = 4, GuidanceScale = 1 }, lcm.Scheduler);
        Assert.Null(lcm.Scheduler!.Spacing);
        Assert.NotNull(Assert.Single(lcm.Files).Sha256);
    }

    [Fact]
    public void TheTinyDecoder_IsTheFolderTheEngineOpens()
    {
        var taesdxl = ModelManifest.Load(Path.Combine(ManifestFolder, "taesdxl.json"));

        Assert.Equal(ModelResolver.TinyDecoderModel, taesdxl.Name);
        Assert.Equal(ModelRole.TinyDecoder, taesdxl.Role);
        Assert.Equal("madebyollin/taesdxl", taesdxl.Repository);
        Assert.Equal("", taesdxl.Entry);
        Assert.Equal([TinyAutoencoderDecoder.ConfigFileName, TinyAutoencoderDecoder.WeightsFileName], taesdxl.Files.Select(f => f.Path));
    }

    [Theory]
    [InlineData("\"path\": \"../escape.bin\"", "not a relative repository path")]
    [InlineData("\"path\": \"/etc/passwd\"", "not a relative repository path")]
    [InlineData("\"path\": \"a.bin\", \"sha256\": \"ABC\"", "not 64 lower-case hex digits")]
    [InlineData("\"path\": \"a.bin\", \"size\": -1", "negative size")]
    [InlineData("\"path\": \"a.bin\", \"colour\": \"red\"", "not a valid model manifest")]
    public void ABadFileEntry_IsAClearError(string fileEntry, string expected)
    {
        using var folder = new TemporaryFolder();
        var path = Path.Combine(folder.Path, "bad.json");
        File.WriteAllText(path, $$"""
            { "name": "bad", "description": "x", "role": "unet", "repository": "org/name", "revision": "main",
              "files": [ { {{fileEntry}} } ] }
            """);

        var error = Assert.Throws<InvalidDataException>(() => ModelManifest.Load(path));

        Assert.Contains(path, error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("\"repository\": \"org--x/name\"", "not a Hugging Face repository id")]
    [InlineData("\"repository\": \"no-slash\"", "not a Hugging Face repository id")]
    [InlineData("\"revision\": \"../main\"", "must be a 40-hex commit hash")]
    public void ABadRepositoryOrRevision_IsAClearError(string field, string expected)
    {
        using var folder = new TemporaryFolder();
        var path = Path.Combine(folder.Path, "bad.json");
        var json = """{ "name": "bad", "description": "x", "role": "unet", "repository": "org/name", "revision": "main", "files": [ { "path": "a.bin" } ] }""";
        var key = field.Split(':')[0];
        var original = key == "\"repository\"" ? "\"repository\": \"org/name\"" : "\"revision\": \"main\"";
        File.WriteAllText(path, json.Replace(original, field));

        var error = Assert.Throws<InvalidDataException>(() => ModelManifest.Load(path));

        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void TwoManifestsWithOneName_AreRefused()
    {
        using var folder = new TemporaryFolder();
        var json = """{ "name": "twin", "description": "x", "role": "unet", "repository": "org/name", "revision": "main", "files": [ { "path": "a.bin" } ] }""";
        File.WriteAllText(Path.Combine(folder.Path, "a.json"), json);
        File.WriteAllText(Path.Combine(folder.Path, "b.json"), json.Replace("\"twin\"", "\"TWIN\""));

        var error = Assert.Throws<InvalidDataException>(() => ModelManifest.LoadFolder(folder.Path));

        Assert.Contains("both named 'twin'", error.Message);
    }

    [Fact]
    public void LoadFolder_WithWarnings_SkipsABrokenOrRepeatedManifest_AndKeepsTheOthers()
    {
        using var folder = new TemporaryFolder();
        var json = File.ReadAllText(Path.Combine(ManifestFolder, "taesdxl.json"));
        File.WriteAllText(Path.Combine(folder.Path, "a.json"), json);
        File.WriteAllText(Path.Combine(folder.Path, "b.json"), json);
        File.WriteAllText(Path.Combine(folder.Path, "c.json"), "{ \"name\": ");
        File.Copy(Path.Combine(ManifestFolder, "sdxl-base-1.0.json"), Path.Combine(folder.Path, "d.json"));
        var warnings = new List<string>();

        var manifests = ModelManifest.LoadFolder(folder.Path, warnings.Add);

        Assert.Equal(["taesdxl", "sdxl-base-1.0"], manifests.Select(m => m.Name));
        Assert.Equal(Path.Combine(folder.Path, "a.json"), manifests[0].SourcePath);
        Assert.Collection(warnings,
            w => Assert.Matches("both named 'taesdxl'.*b\\.json; the second is skipped", w),
            w => Assert.Matches("c\\.json: not a valid model manifest.*the manifest is skipped, the other models are available", w));
    }
}
