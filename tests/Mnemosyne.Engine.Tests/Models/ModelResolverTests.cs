using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Sampling;
using static Mnemosyne.Engine.Tests.Models.ModelTestSupport;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>
/// Known model names turned into engine options from a Hugging Face cache. The manifests are the shipped
/// ones (same names, repositories, revisions, entries) with file lists that fit what each test puts in the cache.
/// </summary>
public sealed class ModelResolverTests : IDisposable
{
    private static readonly IReadOnlyList<ModelManifest> Shipped = ModelManifest.LoadFolder(Path.Combine(TestPaths.RepositoryRoot, "models"));
    private readonly TemporaryFolder cache = new();

    public void Dispose() => cache.Dispose();

    private static ModelManifest ShippedManifest(string name) => Shipped.Single(m => m.Name == name);

    private HubCache Cache => new(cache.Path);

    /// <summary>Writes <paramref name="files"/> (repository path → bytes) into the manifest's pinned snapshot, as plain files.</summary>
    private void WriteSnapshot(ModelManifest manifest, params (string Path, byte[] Bytes)[] files)
    {
        foreach (var (path, bytes) in files)
        {
            var local = Cache.SnapshotFile(manifest.Repository, manifest.Revision, path);
            Directory.CreateDirectory(Path.GetDirectoryName(local)!);
            File.WriteAllBytes(local, bytes);
        }
    }

    private static ModelManifest WithFiles(string name, params (string Path, byte[] Bytes)[] files) =>
        ShippedManifest(name) with { Files = files.Select(f => new ModelFile(f.Path, f.Bytes.Length, null)).ToList() };

    private static readonly (string, byte[])[] BaseFiles =
    [
        ("model_index.json", Bytes(30, 1)), ("scheduler/scheduler_config.json", Bytes(20, 2)),
        ("tokenizer/vocab.json", Bytes(40, 3)), ("tokenizer/merges.txt", Bytes(41, 4)),
        ("tokenizer_2/vocab.json", Bytes(42, 5)), ("tokenizer_2/merges.txt", Bytes(43, 6)),
        ("unet/config.json", Bytes(20, 7)), ("unet/diffusion_pytorch_model.fp16.safetensors", Bytes(500, 8)),
    ];
    private static readonly (string, byte[])[] UnetFiles = [("sdxl_lightning_4step_unet.safetensors", Bytes(300, 9))];
    private static readonly (string, byte[])[] AdapterFiles = [("sdxl_models/ip-adapter_sdxl_vit-h.safetensors", Bytes(200, 10))];
    private static readonly (string, byte[])[] EncoderFiles =
        [("models/image_encoder/config.json", Bytes(20, 11)), ("models/image_encoder/model.safetensors", Bytes(250, 12))];

    private ModelResolver Resolver() => new(new ModelCatalog(
    [
        WithFiles(ModelResolver.BaseModel, BaseFiles), WithFiles("sdxl-lightning-4step-unet", UnetFiles),
        WithFiles(ModelResolver.IpAdapterModel, AdapterFiles), WithFiles(ModelResolver.ImageEncoderModel, EncoderFiles),
    ], Cache));

    private string Snapshot(string name) => Cache.SnapshotFolder(ShippedManifest(name).Repository, ShippedManifest(name).Revision);

    [Fact]
    public void APipelineModel_OpensItsSnapshotInPlace_WithTheManifestsVariantAndName()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), BaseFiles);

        var options = Resolver().ForModel("SDXL-Base-1.0");

        Assert.Equal(Snapshot(ModelResolver.BaseModel), options.CheckpointPath);
        Assert.Equal("fp16", options.Variant);
        Assert.Equal("sdxl-base-1.0", options.ModelName);
        Assert.Null(options.UnetWeightsPath);
        Assert.Null(options.IpAdapterPath);
    }

    [Fact]
    public void AReplacementUnetModel_IsItsWeightsFile()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), BaseFiles);
        WriteSnapshot(ShippedManifest("sdxl-lightning-4step-unet"), UnetFiles);

        var options = Resolver().ForModel(ModelResolver.BaseModel, "sdxl-lightning-4step-unet");

        var unet = Path.Combine(Snapshot("sdxl-lightning-4step-unet"), "sdxl_lightning_4step_unet.safetensors");
        var sampling = ShippedManifest("sdxl-lightning-4step-unet").Scheduler;
        Assert.Equal((unet, sampling), (options.UnetWeightsPath, options.UnetSampling));
        var path = new EngineOptions { CheckpointPath = "elsewhere" };
        Assert.Equal(path with { UnetWeightsPath = unet, UnetSampling = sampling }, Resolver().WithUnet(path, "sdxl-lightning-4step-unet"));
        Assert.Null(Resolver().ForModel(ModelResolver.BaseModel).UnetSampling);
    }

    [Fact]
    public void ModelsMissingFromTheCache_AreNamedTogether_WithTheCommandThatInstallsThem()
    {
        var error = Assert.Throws<ModelNotInstalledException>(() => Resolver().ForModel(ModelResolver.BaseModel, "sdxl-lightning-4step-unet"));

        Assert.Equal(["sdxl-base-1.0", "sdxl-lightning-4step-unet"], error.ModelNames);
        Assert.Equal("Install-MnemosyneModel sdxl-base-1.0, sdxl-lightning-4step-unet", error.InstallCommand);
        Assert.Contains(cache.Path, error.Message);
        Assert.Contains("sdxl-base-1.0 (stabilityai/stable-diffusion-xl-base-1.0: none of its files is there)", error.Message);
        Assert.Contains("Run Install-MnemosyneModel sdxl-base-1.0, sdxl-lightning-4step-unet", error.Message);
        Assert.Equal("model_index.json", error.FileName);
    }

    [Fact]
    public void AFileOfTheWrongSize_LeavesTheModelIncomplete_AndOnlyThatModelIsNamed()
    {
        var wrong = BaseFiles.Select(f => f.Item1 == "unet/diffusion_pytorch_model.fp16.safetensors" ? (f.Item1, Bytes(499, 8)) : f).ToArray();
        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), wrong);
        WriteSnapshot(ShippedManifest("sdxl-lightning-4step-unet"), UnetFiles);

        var error = Assert.Throws<ModelNotInstalledException>(() => Resolver().ForModel(ModelResolver.BaseModel, "sdxl-lightning-4step-unet"));

        Assert.Equal(["sdxl-base-1.0"], error.ModelNames);
        Assert.Contains("1 of its 8 files missing, first unet/diffusion_pytorch_model.fp16.safetensors", error.Message);
        Assert.EndsWith("point HF_HUB_CACHE or HF_HOME at a cache that has it.", error.Message);
    }

    [Theory]
    [InlineData("sdxl-turbo", null, "model", "knows no model named 'sdxl-turbo'. Known SDXL pipelines: sdxl-base-1.0.")]
    [InlineData("ip-adapter-sdxl-vit-h", null, "model", "'ip-adapter-sdxl-vit-h' is an IP-Adapter, not an SDXL pipeline.")]
    [InlineData("sdxl-base-1.0", "sdxl-base-1.0", "unetModel", "'sdxl-base-1.0' is an SDXL pipeline, not a replacement UNet. Known replacement UNets: sdxl-lightning-4step-unet.")]
    [InlineData("sdxl-base-1.0", "lightning-8step", "unetModel", "Known replacement UNets: sdxl-lightning-4step-unet.")]
    public void UnknownNamesAndModelsOfAnotherRole_AreArgumentErrorsListingTheKnownOnes(string model, string? unet, string parameter, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => Resolver().ForModel(model, unet));

        Assert.Equal(parameter, error.ParamName);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void TheCachedIpAdapter_IsAddedWhenItAndItsEncoderAreComplete()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.IpAdapterModel), AdapterFiles);
        WriteSnapshot(ShippedManifest(ModelResolver.ImageEncoderModel), EncoderFiles);
        var options = new EngineOptions { CheckpointPath = "/models/sdxl" };

        var resolution = Resolver().WithCachedIpAdapter(options);

        // Both come from the one h94/IP-Adapter snapshot, in its own layout.
        var snapshot = Snapshot(ModelResolver.IpAdapterModel);
        Assert.Equal(Path.Combine(snapshot, "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"), resolution.Options.IpAdapterPath);
        Assert.Equal(Path.Combine(snapshot, "models", "image_encoder"), resolution.Options.ImageEncoderPath);
        Assert.Equal("/models/sdxl", resolution.Options.CheckpointPath);
        Assert.Contains("IP-Adapter from the Hugging Face cache", Assert.Single(resolution.Notes));
    }

    [Fact]
    public void AnAdapterWithoutItsEncoder_IsNotUsed_AndTheNoteNamesWhatToInstall()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.IpAdapterModel), AdapterFiles);
        var options = new EngineOptions { CheckpointPath = "/models/sdxl" };

        var resolution = Resolver().WithCachedIpAdapter(options);

        Assert.Same(options, resolution.Options);
        var note = Assert.Single(resolution.Notes);
        Assert.Contains("ip-adapter-image-encoder-vit-h is not complete", note);
        Assert.Contains("Run Install-MnemosyneModel ip-adapter-image-encoder-vit-h to use them.", note);
    }

    [Fact]
    public void OptionsThatNameAnAdapter_AreLeftAsTheyAre()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.IpAdapterModel), AdapterFiles);
        WriteSnapshot(ShippedManifest(ModelResolver.ImageEncoderModel), EncoderFiles);
        var options = new EngineOptions { CheckpointPath = "/models/sdxl", IpAdapterPath = "/models/mine.safetensors" };

        var resolution = Resolver().WithCachedIpAdapter(options);

        Assert.Same(options, resolution.Options);
        Assert.Empty(resolution.Notes);
    }

    [Fact]
    public void TheDefault_IsTheCachedBaseWithItsAdapter_OrNothingWhileTheBaseIsIncomplete()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.IpAdapterModel), AdapterFiles);
        WriteSnapshot(ShippedManifest(ModelResolver.ImageEncoderModel), EncoderFiles);
        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), BaseFiles[..^1]);
        Assert.Null(Resolver().TryDefault());

        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), BaseFiles);
        var resolution = Resolver().TryDefault();

        Assert.NotNull(resolution);
        Assert.Equal(Snapshot(ModelResolver.BaseModel), resolution.Options.CheckpointPath);
        Assert.Equal("sdxl-base-1.0", resolution.Options.ModelName);
        Assert.NotNull(resolution.Options.IpAdapterPath);
        Assert.NotNull(resolution.Options.ImageEncoderPath);
    }

    [Fact]
    public void TheDefault_IsNothingForACatalogWithoutTheBaseModel()
    {
        var resolver = new ModelResolver(new ModelCatalog([WithFiles("sdxl-lightning-4step-unet", UnetFiles)], Cache));

        Assert.Null(resolver.TryDefault());
    }

    [Fact]
    public void ASingleFileBase_NeedsOnlyTheTokenizersAndScheduler_OfTheCachedBase()
    {
        var needed = BaseFiles.Where(f => f.Item1.StartsWith("tokenizer", StringComparison.Ordinal) || f.Item1.StartsWith("scheduler/", StringComparison.Ordinal)).ToArray();
        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), needed[..^1]);
        var error = Assert.Throws<ModelNotInstalledException>(() => Resolver().FindSingleFileBase());
        Assert.Equal(["sdxl-base-1.0"], error.ModelNames);
        Assert.Equal("tokenizer_2/merges.txt", error.FileName);
        Assert.Contains("first missing: tokenizer_2/merges.txt", error.Message);

        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), needed);

        Assert.Equal(Snapshot(ModelResolver.BaseModel), Resolver().FindSingleFileBase());
        Assert.Throws<ModelNotInstalledException>(() => Resolver().ForModel(ModelResolver.BaseModel));
    }

    [Fact]
    public void ASingleFileBase_IsNotFoundInAnEmptyCache()
    {
        var error = Assert.Throws<ModelNotInstalledException>(() => Resolver().FindSingleFileBase());

        Assert.Contains("takes its tokenizers and scheduler from sdxl-base-1.0", error.Message);
        Assert.Contains("Run Install-MnemosyneModel sdxl-base-1.0", error.Message);
    }

    /// <summary>Empty files at <paramref name="paths"/> under a folder of the test's own (existence is all the policy looks at).</summary>
    private string Files(params string[] paths)
    {
        var folder = Path.Combine(cache.Path, "local");
        foreach (var path in paths)
        {
            var file = Path.Combine(folder, path);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllBytes(file, []);
        }
        return folder;
    }

    private static ModelResolver WithoutCatalog() => new(() => throw new InvalidOperationException("The request names every path: the catalog is not read."));

    [Fact]
    public void ACheckpointFolder_TakesTheAdapterInItsIpAdapterFolder_AndTheEncoderBesideIt_WithoutReadingTheCatalog()
    {
        var folder = Files("sdxl/model_index.json", "sdxl/ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors", "sdxl/ip-adapter/models/image_encoder/config.json",
            "taesd/config.json");

        var resolution = WithoutCatalog().Resolve(new ModelRequest { CheckpointPath = Path.Combine(folder, "sdxl"), TinyDecoderPath = Path.Combine(folder, "taesd") });

        Assert.Equal(Path.Combine(folder, "sdxl"), resolution.Options.CheckpointPath);
        Assert.Equal(Path.Combine(folder, "sdxl", "ip-adapter", "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"), resolution.Options.IpAdapterPath);
        Assert.Equal(Path.Combine(folder, "sdxl", "ip-adapter", "models", "image_encoder"), resolution.Options.ImageEncoderPath);
        Assert.Equal(Path.Combine(folder, "taesd"), resolution.Options.TinyDecoderPath);
        Assert.Null(resolution.Options.BaseModelPath);
        Assert.Empty(resolution.Notes);
    }

    [Fact]
    public void AnAdapterGivenAsItsFolder_IsFoundInTheH94Layout_AndTheGivenEncoderIsKept()
    {
        var folder = Files("sdxl/model_index.json", "h94/sdxl_models/ip-adapter_sdxl_vit-h.safetensors", "vit-h/config.json", "taesd.safetensors");

        var options = WithoutCatalog().Resolve(new ModelRequest
        {
            CheckpointPath = Path.Combine(folder, "sdxl"), IpAdapterPath = Path.Combine(folder, "h94"), ImageEncoderPath = Path.Combine(folder, "vit-h"),
            TinyDecoderPath = Path.Combine(folder, "taesd.safetensors"),
        }).Options;

        Assert.Equal(Path.Combine(folder, "h94", "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"), options.IpAdapterPath);
        Assert.Equal(Path.Combine(folder, "vit-h"), options.ImageEncoderPath);
    }

    [Theory]
    [InlineData("h94/sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors")]
    [InlineData("h94/ip-adapter-plus_sdxl_vit-h.safetensors")]
    public void AnAdapterFolderWithoutTheBaseFile_TakesItsOnePlusFile(string plusFile)
    {
        var folder = Files("sdxl/model_index.json", plusFile, "vit-h/config.json", "taesd.safetensors");

        var options = WithoutCatalog().Resolve(new ModelRequest
        {
            CheckpointPath = Path.Combine(folder, "sdxl"), IpAdapterPath = Path.Combine(folder, "h94"), ImageEncoderPath = Path.Combine(folder, "vit-h"),
            TinyDecoderPath = Path.Combine(folder, "taesd.safetensors"),
        }).Options;

        Assert.Equal(Path.Combine(folder, plusFile), options.IpAdapterPath);
    }

    [Fact]
    public void AnAdapterFolderWithTheBaseFile_TakesIt_ThoughPlusFilesAreBesideIt()
    {
        var folder = Files("sdxl/model_index.json", "h94/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors", "h94/sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
            "h94/sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors", "vit-h/config.json", "taesd.safetensors");

        var options = WithoutCatalog().Resolve(new ModelRequest
        {
            CheckpointPath = Path.Combine(folder, "sdxl"), IpAdapterPath = Path.Combine(folder, "h94"), ImageEncoderPath = Path.Combine(folder, "vit-h"),
            TinyDecoderPath = Path.Combine(folder, "taesd.safetensors"),
        }).Options;

        Assert.Equal(Path.Combine(folder, "h94", "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"), options.IpAdapterPath);
    }

    [Fact]
    public void AnAdapterFolderWithSeveralPlusFilesAndNoBaseFile_IsOneError_NamingThem()
    {
        var folder = Files("sdxl/model_index.json", "h94/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors",
            "h94/sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors", "vit-h/config.json");
        var adapters = Path.Combine(folder, "h94");

        var error = Assert.Throws<ModelPathException>(() => WithoutCatalog().Resolve(new ModelRequest
        {
            CheckpointPath = Path.Combine(folder, "sdxl"), IpAdapterPath = adapters, ImageEncoderPath = Path.Combine(folder, "vit-h"),
        }));

        Assert.Equal(ModelPathProblem.IpAdapterAmbiguous, error.Problem);
        Assert.Equal(adapters, error.Path);
        Assert.Contains(Path.Combine(adapters, "sdxl_models", "ip-adapter-plus_sdxl_vit-h.safetensors"), error.Message);
        Assert.Contains(Path.Combine(adapters, "sdxl_models", "ip-adapter-plus-face_sdxl_vit-h.safetensors"), error.Message);
        Assert.Contains("-IPAdapterPath", error.Message);
    }

    [Fact]
    public void ACheckpointFolderWithoutAnAdapter_TakesTheCachedOne_AndIgnoresABaseModelPathWithAWarning()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.IpAdapterModel), AdapterFiles);
        WriteSnapshot(ShippedManifest(ModelResolver.ImageEncoderModel), EncoderFiles);
        var folder = Files("sdxl/model_index.json");

        var resolution = Resolver().Resolve(new ModelRequest { CheckpointPath = Path.Combine(folder, "sdxl"), BaseModelPath = folder });

        Assert.Equal(Path.Combine(Snapshot(ModelResolver.IpAdapterModel), "sdxl_models", "ip-adapter_sdxl_vit-h.safetensors"), resolution.Options.IpAdapterPath);
        Assert.Contains(resolution.Notes, note => note.StartsWith("IP-Adapter from the Hugging Face cache", StringComparison.Ordinal));
        Assert.StartsWith("-BaseModelPath is ignored", Assert.Single(resolution.Warnings));
        Assert.Null(resolution.Options.BaseModelPath);
    }

    [Fact]
    public void ASingleFile_TakesTheCachedBase_AndNoAdapterFromBesideIt()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), BaseFiles);
        var folder = Files("fine-tune.safetensors", "ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors");
        var file = Path.Combine(folder, "fine-tune.safetensors");

        var resolution = Resolver().Resolve(new ModelRequest { CheckpointPath = file });

        Assert.Equal(file, resolution.Options.CheckpointPath);
        Assert.Equal(Snapshot(ModelResolver.BaseModel), resolution.Options.BaseModelPath);
        Assert.Null(resolution.Options.IpAdapterPath);
        Assert.Equal($"Tokenizers, scheduler and configs for {file} from {Snapshot(ModelResolver.BaseModel)}.", resolution.Notes[0]);
    }

    [Fact]
    public void ASingleFileWithoutABase_IsABaseModelPathError_ThatCarriesWhatToInstall()
    {
        var file = Path.Combine(Files("fine-tune.safetensors"), "fine-tune.safetensors");

        var error = Assert.Throws<ModelPathException>(() => Resolver().Resolve(new ModelRequest { CheckpointPath = file }));

        Assert.Equal(ModelPathProblem.BaseModelNotFound, error.Problem);
        Assert.Equal(file, error.Path);
        Assert.Contains("-BaseModelPath", error.Message);
        Assert.Equal("Install-MnemosyneModel sdxl-base-1.0", Assert.IsType<ModelNotInstalledException>(error.InnerException).InstallCommand);
    }

    [Theory]
    [InlineData(nameof(ModelRequest.CheckpointPath), "missing", ModelPathProblem.CheckpointNotFound)]
    [InlineData(nameof(ModelRequest.CheckpointPath), "model.ckpt", ModelPathProblem.CheckpointNotSupported)]
    [InlineData(nameof(ModelRequest.BaseModelPath), "missing", ModelPathProblem.BaseModelNotFound)]
    [InlineData(nameof(ModelRequest.IpAdapterPath), "missing.safetensors", ModelPathProblem.IpAdapterNotFound)]
    [InlineData(nameof(ModelRequest.ImageEncoderPath), "missing", ModelPathProblem.ImageEncoderNotFound)]
    [InlineData(nameof(ModelRequest.IpAdapterPath), "loose/ip-adapter_sdxl_vit-h.safetensors", ModelPathProblem.ImageEncoderNotFound)]
    [InlineData(nameof(ModelRequest.UnetPath), "missing.safetensors", ModelPathProblem.UnetNotFound)]
    [InlineData(nameof(ModelRequest.TinyDecoderPath), "missing", ModelPathProblem.TinyDecoderNotFound)]
    public void APathThatIsNotThere_IsAModelPathError_NamingThePathToFix(string part, string path, ModelPathProblem problem)
    {
        var folder = Files("model.ckpt", "model.safetensors", "loose/ip-adapter_sdxl_vit-h.safetensors", "base/tokenizer/vocab.json", "taesd/config.json",
            "sdxl/model_index.json", "sdxl/ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors", "sdxl/ip-adapter/models/image_encoder/config.json");
        var wrong = Path.Combine(folder, path);
        string? Local(string name, string? relative) => name == part ? wrong : relative is null ? null : Path.Combine(folder, relative);
        // A good request, but for the one part this case gets wrong (a base model goes with the single file).
        var request = new ModelRequest
        {
            CheckpointPath = Local(nameof(ModelRequest.CheckpointPath), part == nameof(ModelRequest.BaseModelPath) ? "model.safetensors" : "sdxl"),
            BaseModelPath = Local(nameof(ModelRequest.BaseModelPath), "base"),
            IpAdapterPath = Local(nameof(ModelRequest.IpAdapterPath), null),
            ImageEncoderPath = Local(nameof(ModelRequest.ImageEncoderPath), null),
            UnetPath = Local(nameof(ModelRequest.UnetPath), null),
            TinyDecoderPath = Local(nameof(ModelRequest.TinyDecoderPath), "taesd"),
        };

        var error = Assert.Throws<ModelPathException>(() => WithoutCatalog().Resolve(request));

        Assert.Equal(problem, error.Problem);
        Assert.Equal(wrong, error.Path);
    }

    [Fact]
    public void AKnownModel_OpensWithTheCachedAdapter_AndAUnetFileGiven()
    {
        WriteSnapshot(ShippedManifest(ModelResolver.BaseModel), BaseFiles);
        WriteSnapshot(ShippedManifest(ModelResolver.IpAdapterModel), AdapterFiles);
        WriteSnapshot(ShippedManifest(ModelResolver.ImageEncoderModel), EncoderFiles);
        var unet = Path.Combine(Files("unet.safetensors"), "unet.safetensors");

        var options = Resolver().Resolve(new ModelRequest { Model = ModelResolver.BaseModel, UnetPath = unet }).Options;

        Assert.Equal(Snapshot(ModelResolver.BaseModel), options.CheckpointPath);
        Assert.Equal(unet, options.UnetWeightsPath);
        Assert.Equal(Path.Combine(Snapshot(ModelResolver.ImageEncoderModel), "models", "image_encoder"), options.ImageEncoderPath);
    }
}

/// <summary>
/// The tiny generated SDXL + IP-Adapter checkpoint and a stand-in few-step UNet, laid out as a Hugging Face
/// cache at the shipped manifests' revisions, open the same engine by name as by path.
/// </summary>
public sealed class ModelResolverSceneTests : IDisposable
{
    private const ulong Seed = 41;
    private readonly TemporaryFolder root = new();

    public void Dispose() => root.Dispose();

    [Fact]
    public void AModelOpenedByName_MakesTheSceneItMakesOpenedByPath()
    {
        var folder = Path.Combine(root.Path, "tiny");
        RandomCheckpoint.Write(folder, CheckpointShape.Tiny, Seed);
        var lightning = Path.Combine(root.Path, "sdxl_lightning_4step_unet.safetensors");
        RandomCheckpoint.WriteUnet(lightning, CheckpointShape.Tiny.Unet, Seed + 1, TensorDType.F16);
        var resolver = new ModelResolver(TinyHubCache.Write(Path.Combine(root.Path, "hub"), folder, lightning));

        var resolution = resolver.WithCachedIpAdapter(resolver.ForModel(ModelResolver.BaseModel, "sdxl-lightning-4step-unet"));
        using var byName = SceneEngine.Open(resolution.Options);
        var adapter = Path.Combine(folder, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath);
        using var byPath = SceneEngine.Open(new EngineOptions { CheckpointPath = folder, IpAdapterPath = adapter, UnetWeightsPath = lightning });
        var picture = Path.Combine(root.Path, "character.png");
        PngFile.Save(picture, new RgbImage(16, 24, Enumerable.Range(0, 16 * 24 * 3).Select(i => (byte)(i * 7)).ToArray()));
        var request = new SceneRequest
        {
            Prompt = "a knight", Seed = 5, Width = 64, Height = 64, Reference = byPath.EncodeReference([picture], "toy"), ReferenceWeight = 0.8f,
        }.ForFewStepUnet();

        var expected = byPath.Generate(request);
        var actual = byName.Generate(request);

        Assert.True(byName.SupportsReferences);
        Assert.Equal("sdxl-base-1.0+sdxl_lightning_4step_unet", actual.Model);
        Assert.Equal(TimestepSpacing.Trailing, actual.Spacing);
        Assert.Equal(expected.FinalLatents.Data, actual.FinalLatents.Data);
        Assert.Equal(expected.Image.Rgb, actual.Image.Rgb);
        // The replacement UNet is in use: the base UNet makes another picture from the same request.
        using var baseOnly = SceneEngine.Open(new EngineOptions { CheckpointPath = folder, IpAdapterPath = adapter });
        Assert.NotEqual(expected.FinalLatents.Data, baseOnly.Generate(request).FinalLatents.Data);
    }

    [Fact]
    public void ASingleFileCheckpoint_TakesTokenizersAndSchedulerFromTheCachedBase()
    {
        var folder = Path.Combine(root.Path, "tiny");
        RandomCheckpoint.Write(folder, CheckpointShape.Tiny, Seed);
        var single = Path.Combine(root.Path, "tiny-sdxl.safetensors");
        RandomCheckpoint.WriteSingleFile(single, CheckpointShape.Tiny, Seed);
        var resolver = new ModelResolver(TinyHubCache.Write(Path.Combine(root.Path, "hub"), folder, lightningUnet: null));

        var baseFolder = resolver.FindSingleFileBase();
        using var fromFile = SceneEngine.Open(new EngineOptions { CheckpointPath = single, BaseModelPath = baseFolder });
        using var fromFolder = SceneEngine.Open(new EngineOptions { CheckpointPath = folder });
        var request = new SceneRequest { Prompt = "a lighthouse", Seed = 2, Steps = 2, Width = 64, Height = 64 };

        Assert.Equal(fromFolder.Generate(request).Image.Rgb, fromFile.Generate(request).Image.Rgb);
    }
}

/// <summary>A Hugging Face cache made of the tiny generated checkpoint, with manifests whose file lists and sizes fit it.</summary>
internal static class TinyHubCache
{
    /// <summary>
    /// Copies the tiny checkpoint folder (and the stand-in Lightning UNet, when given) into the cache at
    /// <paramref name="cacheRoot"/>, at the shipped manifests' repositories and revisions, and returns a catalog
    /// of the shipped manifests with the copied files as their file lists.
    /// </summary>
    public static ModelCatalog Write(string cacheRoot, string checkpointFolder, string? lightningUnet)
    {
        var cache = new HubCache(cacheRoot);
        var shipped = ModelManifest.LoadFolder(Path.Combine(TestPaths.RepositoryRoot, "models")).ToDictionary(m => m.Name);
        var manifests = new List<ModelManifest>();

        ModelManifest Place(string name, IEnumerable<(string Source, string RepositoryPath)> files)
        {
            var manifest = shipped[name];
            var listed = new List<ModelFile>();
            foreach (var (source, path) in files)
            {
                var local = cache.SnapshotFile(manifest.Repository, manifest.Revision, path);
                Directory.CreateDirectory(Path.GetDirectoryName(local)!);
                File.Copy(source, local, overwrite: true);
                listed.Add(new ModelFile(path, new FileInfo(source).Length, null));
            }
            return manifest with { Files = listed };
        }

        IEnumerable<(string, string)> Under(string folder, Func<string, bool> include, string prefix = "") =>
            Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                .Select(f => (f, Path.GetRelativePath(folder, f).Replace('\\', '/')))
                .Where(f => include(f.Item2))
                .Select(f => (f.f, prefix + f.Item2));

        var adapterRoot = Path.Combine(checkpointFolder, RandomCheckpoint.IpAdapterFolder);
        manifests.Add(Place(ModelResolver.BaseModel, Under(checkpointFolder, p => !p.StartsWith(RandomCheckpoint.IpAdapterFolder + "/", StringComparison.Ordinal))));
        manifests.Add(Place(ModelResolver.IpAdapterModel, Under(adapterRoot, p => p.StartsWith("sdxl_models/", StringComparison.Ordinal))));
        manifests.Add(Place(ModelResolver.ImageEncoderModel, Under(adapterRoot, p => p.StartsWith("models/image_encoder/", StringComparison.Ordinal))));
        if (lightningUnet is not null)
            manifests.Add(Place("sdxl-lightning-4step-unet", [(lightningUnet, shipped["sdxl-lightning-4step-unet"].Entry)]));
        return new ModelCatalog(manifests, cache);
    }
}
