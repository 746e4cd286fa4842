using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Models;

/// <summary>Engine options worked out from the cache, with what the user should hear about them (e.g. why references are off).</summary>
public sealed record ModelResolution(EngineOptions Options, IReadOnlyList<string> Notes);

/// <summary>
/// Turns the names of known models into the <see cref="EngineOptions"/> that open them from where the
/// catalog finds them in the Hugging Face cache: a pipeline's snapshot as the checkpoint, the IP-Adapter
/// and its image encoder beside it when they are there, a replacement UNet, and the SDXL base folder a
/// single-file checkpoint takes its tokenizers, scheduler and configs from. Nothing is copied.
/// </summary>
public sealed class ModelResolver(ModelCatalog catalog)
{
    /// <summary>The pipeline opened when none is named, and the base of single-file checkpoints.</summary>
    public const string BaseModel = "sdxl-base-1.0";

    public const string IpAdapterModel = "ip-adapter-sdxl-vit-h";

    public const string ImageEncoderModel = "ip-adapter-image-encoder-vit-h";

    /// <summary>The tiny decoder (TAESDXL) for Decoder Tiny scenes and live previews.</summary>
    public const string TinyDecoderModel = "taesdxl";

    /// <summary>The few-step UNet the advice names (4 trailing Euler steps, no guidance; its 2- and 8-step siblings are known too).</summary>
    public const string FewStepUnetModel = "sdxl-lightning-4step-unet";

    /// <summary>What a single-file checkpoint lacks and takes from the base model's snapshot.</summary>
    private static readonly string[] SingleFileBaseFolders = ["tokenizer/", "tokenizer_2/", "scheduler/"];

    public ModelCatalog Catalog { get; } = catalog;

    /// <summary>
    /// A known pipeline model (<paramref name="model"/>), optionally with a known replacement UNet, both complete
    /// in the cache. The IP-Adapter is not filled in: see <see cref="WithCachedIpAdapter"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A name the catalog does not know, or a model of another role.</exception>
    /// <exception cref="ModelNotInstalledException">Either model is not complete in the cache; names both when both are not.</exception>
    public EngineOptions ForModel(string model, string? unetModel = null)
    {
        var pipeline = Expect(model, ModelRole.Pipeline, nameof(model));
        var unet = unetModel is null ? null : Expect(unetModel, ModelRole.Unet, nameof(unetModel));
        var statuses = new[] { Catalog.Inspect(pipeline) }.Concat(unet is null ? [] : [Catalog.Inspect(unet)]).ToList();
        ThrowIfIncomplete(statuses);
        return new EngineOptions
        {
            CheckpointPath = statuses[0].EntryPath!,
            Variant = pipeline.Variant,
            ModelName = pipeline.Name,
            UnetWeightsPath = unet is null ? null : statuses[1].EntryPath,
            UnetSampling = unet?.Scheduler,
        };
    }

    /// <summary>
    /// <paramref name="options"/> with the weights file of a known replacement UNet (role unet), complete in the cache,
    /// and the sampling its manifest gives.
    /// </summary>
    public EngineOptions WithUnet(EngineOptions options, string unetModel)
    {
        var manifest = Expect(unetModel, ModelRole.Unet, nameof(unetModel));
        var status = Catalog.Inspect(manifest);
        ThrowIfIncomplete([status]);
        return options with { UnetWeightsPath = status.EntryPath!, UnetSampling = manifest.Scheduler };
    }

    /// <summary>
    /// The cached <see cref="BaseModel"/> snapshot, for <see cref="EngineOptions.BaseModelPath"/>: it needs only
    /// its tokenizer/, tokenizer_2/ and scheduler/ files (its configs are used where present; its weights never).
    /// </summary>
    /// <exception cref="ModelNotInstalledException">Those files are not all in the cache.</exception>
    public string FindSingleFileBase()
    {
        var status = Catalog.Inspect(Expect(BaseModel, ModelRole.Pipeline, "model"));
        var needed = status.Files.Where(f => SingleFileBaseFolders.Any(folder => f.Path.StartsWith(folder, StringComparison.Ordinal))).ToList();
        var missing = needed.Where(f => !f.IsPresent).Select(f => f.Path).ToList();
        if (status.Path is not null && needed.Count > 0 && missing.Count == 0) return status.Path;
        throw new ModelNotInstalledException(
            $"A single-file checkpoint takes its tokenizers and scheduler from {BaseModel} ({status.Repository}), which is not in the Hugging Face cache "
            + $"{Catalog.Cache.Root}{(missing.Count > 0 ? $" (first missing: {missing[0]})" : "")}. Run Install-MnemosyneModel {BaseModel}, "
            + "or point HF_HUB_CACHE or HF_HOME at a cache that has it.",
            [BaseModel], missing.FirstOrDefault());
    }

    /// <summary>
    /// <paramref name="options"/> with the cached IP-Adapter and its image encoder when both are complete; the notes
    /// say what is missing when they are not. Options that name an adapter or an encoder are returned as they are.
    /// </summary>
    public ModelResolution WithCachedIpAdapter(EngineOptions options)
    {
        if (options.IpAdapterPath is not null || options.ImageEncoderPath is not null) return new(options, []);
        var adapterManifest = Known(IpAdapterModel);
        var encoderManifest = Known(ImageEncoderModel);
        if (adapterManifest is null || encoderManifest is null)
            return new(options, [$"The model catalog has no {(adapterManifest is null ? IpAdapterModel : ImageEncoderModel)}: scenes can be made, but without character references."]);
        var adapter = Catalog.Inspect(adapterManifest);
        var encoder = Catalog.Inspect(encoderManifest);
        if (adapter.IsComplete && encoder.IsComplete)
        {
            return new(options with { IpAdapterPath = adapter.EntryPath, ImageEncoderPath = encoder.EntryPath },
                [$"IP-Adapter from the Hugging Face cache: {adapter.EntryPath}, image encoder {encoder.EntryPath}."]);
        }
        var missing = new[] { adapter, encoder }.Where(s => !s.IsComplete).Select(s => s.Name).ToList();
        return new(options,
            [$"{string.Join(" and ", missing)} {(missing.Count == 1 ? "is" : "are")} not complete in the Hugging Face cache {Catalog.Cache.Root}: "
             + $"scenes can be made, but without character references. Run Install-MnemosyneModel {string.Join(", ", missing)} to use them."]);
    }

    /// <summary>
    /// <paramref name="options"/> with the cached <see cref="TinyDecoderModel"/> when it is complete; the notes say
    /// where it came from, or what is missing. Options that name a tiny decoder are returned as they are.
    /// </summary>
    public ModelResolution WithCachedTinyDecoder(EngineOptions options)
    {
        if (options.TinyDecoderPath is not null) return new(options, []);
        var manifest = Known(TinyDecoderModel);
        if (manifest is null) return new(options, [$"The model catalog has no {TinyDecoderModel}: scenes can be made, but without Decoder Tiny or live previews."]);
        var status = Catalog.Inspect(manifest);
        return status.IsComplete
            ? new(options with { TinyDecoderPath = status.EntryPath }, [$"Tiny decoder from the Hugging Face cache: {status.EntryPath}."])
            : new(options, [$"{TinyDecoderModel} is not complete in the Hugging Face cache {Catalog.Cache.Root}: scenes can be made, but without "
                            + $"Decoder Tiny or live previews. Run Install-MnemosyneModel {TinyDecoderModel} to use them."]);
    }

    /// <summary>
    /// What opens when nothing is named: <see cref="BaseModel"/> from the cache, with the cached IP-Adapter and tiny
    /// decoder when they are there; null when the catalog does not know the base model or it is not complete in the cache.
    /// </summary>
    public ModelResolution? TryDefault()
    {
        var manifest = Known(BaseModel);
        if (manifest is null || manifest.Role != ModelRole.Pipeline || !Catalog.Inspect(manifest).IsComplete) return null;
        var withAdapter = WithCachedIpAdapter(ForModel(BaseModel));
        var withDecoder = WithCachedTinyDecoder(withAdapter.Options);
        return new(withDecoder.Options, [.. withAdapter.Notes, .. withDecoder.Notes]);
    }

    private ModelManifest? Known(string name) =>
        Catalog.Manifests.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));

    private ModelManifest Expect(string name, ModelRole role, string parameter)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name, parameter);
        var wanted = Describe(role);
        var manifest = Known(name) ?? throw new ArgumentException(
            $"Mnemosyne knows no model named '{name}'. Known {wanted.Many}: {NamesOf(role)}.", parameter);
        if (manifest.Role != role)
            throw new ArgumentException(
                $"'{manifest.Name}' is {Describe(manifest.Role).One}, not {wanted.One}. Known {wanted.Many}: {NamesOf(role)}."
                + (manifest.Role is ModelRole.IpAdapter or ModelRole.ImageEncoder ? " The IP-Adapter and its image encoder are taken from the cache with the pipeline." : ""),
                parameter);
        return manifest;
    }

    private string NamesOf(ModelRole role)
    {
        var names = Catalog.Manifests.Where(m => m.Role == role).Select(m => m.Name).ToList();
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    private static (string One, string Many) Describe(ModelRole role) => role switch
    {
        ModelRole.Pipeline => ("an SDXL pipeline", "SDXL pipelines"),
        ModelRole.IpAdapter => ("an IP-Adapter", "IP-Adapters"),
        ModelRole.ImageEncoder => ("an image encoder", "image encoders"),
        ModelRole.Unet => ("a replacement UNet", "replacement UNets"),
        ModelRole.TinyDecoder => ("a tiny decoder", "tiny decoders"),
        _ => ($"a {role} model", $"{role} models"),
    };

    private void ThrowIfIncomplete(IReadOnlyList<ModelStatus> statuses)
    {
        var incomplete = statuses.Where(s => !s.IsComplete).ToList();
        if (incomplete.Count == 0) return;
        var what = incomplete.Select(s => s.Path is null
            ? $"{s.Name} ({s.Repository}: none of its files is there)"
            : $"{s.Name} ({s.Repository}: {s.MissingFiles.Count} of its {s.Files.Count} files missing, first {s.MissingFiles[0]})");
        var names = incomplete.Select(s => s.Name).ToList();
        throw new ModelNotInstalledException(
            $"Not complete in the Hugging Face cache {Catalog.Cache.Root}: {string.Join("; ", what)}. "
            + $"Run Install-MnemosyneModel {string.Join(", ", names)}, or point HF_HUB_CACHE or HF_HOME at a cache that has {(names.Count == 1 ? "it" : "them")}.",
            names, incomplete[0].MissingFiles[0]);
    }
}
