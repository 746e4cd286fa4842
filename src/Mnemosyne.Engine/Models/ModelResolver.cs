using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Models;

/// <summary>
/// Engine options worked out from what was named and what the cache holds, with what the user should hear about
/// them: <see cref="Notes"/> say where things came from or why references are off; <see cref="Warnings"/> say
/// that something given is not used.
/// </summary>
public sealed record ModelResolution(EngineOptions Options, IReadOnlyList<string> Notes)
{
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// Decides what an engine opens. <see cref="Resolve"/> takes what a user named (paths, known models) and fills in
/// the rest by one policy: the IP-Adapter given, else the one in a diffusers checkpoint's ip-adapter/ folder, else
/// the cached one; the image encoder given, else the one beside the adapter; a single-file checkpoint's base folder
/// given, else the cached sdxl-base-1.0; the tiny decoder given, else the cached taesdxl. Known models open from where
/// the catalog finds them in the Hugging Face cache: a pipeline's snapshot as the checkpoint, a replacement UNet's
/// weights file. Nothing is copied.
/// </summary>
public sealed class ModelResolver
{
    private readonly Lazy<ModelCatalog> catalog;

    public ModelResolver(ModelCatalog catalog) => this.catalog = new(catalog);

    /// <summary>Over a catalog opened when first needed: a request that names every path needs none.</summary>
    public ModelResolver(Func<ModelCatalog> openCatalog) => catalog = new(openCatalog);

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

    public ModelCatalog Catalog => catalog.Value;

    /// <summary>The engine options that open what <paramref name="request"/> names (see the class summary for the policy).</summary>
    /// <exception cref="ModelPathException">A path the request gives is not there, or is a checkpoint file in a format that is not read.</exception>
    /// <exception cref="ModelNotInstalledException">A known model the request names is not complete in the cache.</exception>
    /// <exception cref="ArgumentException">A model name the catalog does not know, or a model of another role.</exception>
    public ModelResolution Resolve(ModelRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var notes = new List<string>();
        var warnings = new List<string>();
        EngineOptions options;
        string? checkpointAdapterFolder = null;
        if (Given(request.Model) is { } model)
        {
            options = ForModel(model, Given(request.UnetModel));
        }
        else
        {
            var checkpoint = Given(request.CheckpointPath)
                ?? throw new ArgumentException("Name a checkpoint path or a known model.", nameof(request));
            options = ForCheckpoint(checkpoint, request.CheckpointSource, Given(request.BaseModelPath), notes, warnings);
            if (Directory.Exists(options.CheckpointPath)) checkpointAdapterFolder = Path.Combine(options.CheckpointPath, IpAdapterFiles.CheckpointFolder);
        }
        options = Given(request.IpAdapterModel) is { } adapterModel
            ? WithIpAdapterModel(options, adapterModel, Given(request.IpAdapterPath), Given(request.ImageEncoderPath))
            : WithIpAdapter(options, Given(request.IpAdapterPath), Given(request.ImageEncoderPath), checkpointAdapterFolder, notes);
        if (Given(request.Model) is null && Given(request.UnetModel) is { } unetModel) options = WithUnet(options, unetModel);
        if (Given(request.UnetPath) is { } unetPath) options = options with { UnetWeightsPath = UnetFile(unetPath) };
        options = WithTinyDecoder(options, Given(request.TinyDecoderPath), notes);
        return new ModelResolution(options, notes) { Warnings = warnings };
    }

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
    /// The installed file of the LoRA model <paramref name="name"/> (role lora), for -Lora by name; null when the catalog knows
    /// no model of that name (it is then a file name).
    /// </summary>
    /// <exception cref="ArgumentException">The name is a model of another role.</exception>
    /// <exception cref="ModelNotInstalledException">The LoRA is not complete in the cache.</exception>
    public string? LoraFile(string name)
    {
        if (Known(name) is null) return null;
        var status = Catalog.Inspect(Expect(name, ModelRole.Lora, "Lora"));
        ThrowIfIncomplete([status]);
        return status.EntryPath!;
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

    private static string? Given(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    /// <summary>A diffusers folder, or a single .safetensors file with the folder its tokenizers, scheduler and configs come from.</summary>
    private EngineOptions ForCheckpoint(string path, string source, string? baseModelPath, List<string> notes, List<string> warnings)
    {
        var checkpoint = Path.GetFullPath(path);
        if (InputFiles.SpecialKind(checkpoint) is { } kind)
            throw new ModelPathException(
                $"{checkpoint} (from {source}) is {kind}, not a regular file that can be read. Give the folder of an SDXL checkpoint in the diffusers layout " +
                "(the one with model_index.json), or a single-file .safetensors checkpoint.",
                ModelPathProblem.CheckpointNotSupported, checkpoint);
        var isSingleFile = File.Exists(checkpoint);
        if (isSingleFile && !checkpoint.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new ModelPathException(
                $"{checkpoint} (from {source}) is not a .safetensors file. Give the folder of an SDXL checkpoint in the diffusers layout (the one with model_index.json), " +
                "or a single-file .safetensors checkpoint (.ckpt and other pickles can run code when loaded: convert them to safetensors first).",
                ModelPathProblem.CheckpointNotSupported, checkpoint);
        if (!isSingleFile && !Directory.Exists(checkpoint))
            throw new ModelPathException(
                $"{checkpoint} (from {source}) does not exist. Give the folder of an SDXL checkpoint in the diffusers layout (the one with model_index.json), " +
                "or a single-file .safetensors checkpoint.",
                ModelPathProblem.CheckpointNotFound, checkpoint);
        if (!isSingleFile && baseModelPath is not null)
            warnings.Add($"-BaseModelPath is ignored: {checkpoint} is a diffusers folder, which has its own tokenizers, scheduler and configs.");
        return new EngineOptions
        {
            CheckpointPath = checkpoint,
            BaseModelPath = isSingleFile ? BaseModelFolder(baseModelPath, checkpoint, notes) : null,
        };
    }

    /// <summary>The folder a single-file checkpoint takes its tokenizers, scheduler and configs from: the one given, else the cached sdxl-base-1.0.</summary>
    private string BaseModelFolder(string? given, string checkpointFile, List<string> notes)
    {
        if (given is not null)
        {
            var folder = Path.GetFullPath(given);
            return Directory.Exists(folder)
                ? folder
                : throw new ModelPathException(
                    $"{folder} is not a folder. Give -BaseModelPath a folder in the diffusers SDXL layout (stabilityai/stable-diffusion-xl-base-1.0) with tokenizer/, tokenizer_2/ and scheduler/.",
                    ModelPathProblem.BaseModelNotFound, folder);
        }
        try
        {
            var found = FindSingleFileBase();
            notes.Add($"Tokenizers, scheduler and configs for {checkpointFile} from {found}.");
            return found;
        }
        catch (ModelNotInstalledException e)
        {
            throw new ModelPathException(
                $"{checkpointFile} is a single-file checkpoint, which carries no tokenizers or scheduler. Give them with Open-MnemosyneEngine -BaseModelPath " +
                $"<a diffusers SDXL folder with tokenizer/, tokenizer_2/ and scheduler/>, or run {e.InstallCommand} to have them taken from the Hugging Face cache. ({e.Message})",
                ModelPathProblem.BaseModelNotFound, checkpointFile, e);
        }
    }

    /// <summary>The adapter file in <paramref name="path"/> (<see cref="IpAdapterFiles.FindAdapters"/>); null when there is none.</summary>
    /// <exception cref="ModelPathException">A folder without the base adapter holds several Plus files: which one is meant is not guessed.</exception>
    private static string? OneAdapter(string path) => IpAdapterFiles.FindAdapters(path) switch
    {
        [] => null,
        [var file] => file,
        var several => throw new ModelPathException(
            $"{path} holds no {IpAdapterFiles.AdapterFileName} but several IP-Adapters: {string.Join(", ", several)}. Give the file of the one to use with -IPAdapterPath.",
            ModelPathProblem.IpAdapterAmbiguous, path),
    };

    /// <summary>
    /// Fills in the IP-Adapter and its image encoder: the adapter given (the file, or the h94/IP-Adapter folder that holds it),
    /// else the one in <paramref name="checkpointAdapterFolder"/>; the encoder given, else the one beside the adapter; with
    /// neither, the cached pair (<see cref="WithCachedIpAdapter"/>). Without any, scenes have no references.
    /// </summary>
    private EngineOptions WithIpAdapter(EngineOptions options, string? ipAdapter, string? imageEncoder, string? checkpointAdapterFolder, List<string> notes)
    {
        string? adapterFile = null;
        if (ipAdapter is not null)
        {
            var given = Path.GetFullPath(ipAdapter);
            adapterFile = OneAdapter(given) ?? throw new ModelPathException(
                $"No IP-Adapter at {given}. Give {IpAdapterFiles.AdapterFileName} (or {string.Join(" or ", IpAdapterFiles.PlusAdapterFileNames)}), " +
                $"or the h94/IP-Adapter folder that holds sdxl_models/{IpAdapterFiles.AdapterFileName}.",
                ModelPathProblem.IpAdapterNotFound, given);
        }
        else if (checkpointAdapterFolder is not null)
        {
            adapterFile = OneAdapter(checkpointAdapterFolder);
        }

        string? encoderFolder = null;
        if (imageEncoder is not null)
        {
            encoderFolder = Path.GetFullPath(imageEncoder);
            if (!Directory.Exists(encoderFolder))
                throw new ModelPathException(
                    $"{encoderFolder} is not a folder. Give the CLIP ViT-H image encoder folder (config.json + model.safetensors; models/image_encoder in h94/IP-Adapter).",
                    ModelPathProblem.ImageEncoderNotFound, encoderFolder);
        }
        else if (adapterFile is not null)
        {
            encoderFolder = IpAdapterFiles.ImageEncoderBeside(adapterFile) is { } beside && Directory.Exists(beside)
                ? beside
                : throw new ModelPathException(
                    $"The IP-Adapter {adapterFile} needs the CLIP ViT-H image encoder, which is not in the usual place beside it (models/image_encoder). Give it with -ImageEncoderPath.",
                    ModelPathProblem.ImageEncoderNotFound, adapterFile);
        }

        if (adapterFile is null && encoderFolder is null)
        {
            var cached = WithCachedIpAdapter(options);
            notes.AddRange(cached.Notes);
            return cached.Options;
        }
        return options with { IpAdapterPath = adapterFile, ImageEncoderPath = encoderFolder };
    }

    /// <summary>
    /// A known IP-Adapter (role ipAdapter) from the cache, with the image encoder given or else the cached
    /// <see cref="ImageEncoderModel"/>; both must be complete.
    /// </summary>
    private EngineOptions WithIpAdapterModel(EngineOptions options, string adapterModel, string? ipAdapterPath, string? imageEncoder)
    {
        if (ipAdapterPath is not null)
            throw new ArgumentException(
                $"Give an IP-Adapter model ({adapterModel}) or an IP-Adapter path ({ipAdapterPath}), not both: each names the adapter the engine opens.",
                nameof(ModelRequest.IpAdapterModel));
        var statuses = new List<ModelStatus> { Catalog.Inspect(Expect(adapterModel, ModelRole.IpAdapter, nameof(ModelRequest.IpAdapterModel))) };
        if (imageEncoder is null) statuses.Add(Catalog.Inspect(Expect(ImageEncoderModel, ModelRole.ImageEncoder, nameof(ModelRequest.ImageEncoderPath))));
        ThrowIfIncomplete(statuses);
        var encoderFolder = imageEncoder is null ? statuses[1].EntryPath! : Path.GetFullPath(imageEncoder);
        if (!Directory.Exists(encoderFolder))
            throw new ModelPathException(
                $"{encoderFolder} is not a folder. Give the CLIP ViT-H image encoder folder (config.json + model.safetensors; models/image_encoder in h94/IP-Adapter).",
                ModelPathProblem.ImageEncoderNotFound, encoderFolder);
        return options with { IpAdapterPath = statuses[0].EntryPath!, ImageEncoderPath = encoderFolder };
    }

    /// <summary>The tiny decoder given (madebyollin/taesdxl's folder or its weights file), else the cached one (<see cref="WithCachedTinyDecoder"/>).</summary>
    private EngineOptions WithTinyDecoder(EngineOptions options, string? tinyDecoder, List<string> notes)
    {
        if (tinyDecoder is not null)
        {
            var given = Path.GetFullPath(tinyDecoder);
            return File.Exists(given) || Directory.Exists(given)
                ? options with { TinyDecoderPath = given }
                : throw new ModelPathException(
                    $"No tiny decoder at {given}. Give madebyollin/taesdxl's folder (config.json + diffusion_pytorch_model.safetensors), " +
                    $"or run Install-MnemosyneModel {TinyDecoderModel} and leave -TinyDecoderPath out.",
                    ModelPathProblem.TinyDecoderNotFound, given);
        }
        var cached = WithCachedTinyDecoder(options);
        notes.AddRange(cached.Notes);
        return cached.Options;
    }

    private static string UnetFile(string path)
    {
        var file = Path.GetFullPath(path);
        return File.Exists(file)
            ? file
            : throw new ModelPathException(
                $"No UNet weights file at {file}. Give a .safetensors UNet in diffusers names, such as ByteDance/SDXL-Lightning's sdxl_lightning_4step_unet.safetensors, or use -UnetModel.",
                ModelPathProblem.UnetNotFound, file);
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
        ModelRole.Lora => ("a LoRA", "LoRAs"),
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
