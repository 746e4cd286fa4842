namespace Mnemosyne.Engine.Checkpoints;

/// <summary>
/// IP-Adapter for SDXL as laid out in h94/IP-Adapter: the adapter weights file
/// (sdxl_models/ip-adapter_sdxl_vit-h.safetensors: image_proj.*, ip_adapter.N.*) and the image encoder
/// folder (models/image_encoder: CLIPVisionModelWithProjection config + model.safetensors).
/// </summary>
public sealed record IpAdapterFiles(string AdapterPath, string ImageEncoderFolder)
{
    public const string AdapterRelativePath = "sdxl_models/ip-adapter_sdxl_vit-h.safetensors";
    public const string ImageEncoderRelativePath = "models/image_encoder";

    /// <summary>The folder of a diffusers checkpoint where an IP-Adapter in this layout is looked for when none is given.</summary>
    public const string CheckpointFolder = "ip-adapter";

    public static string AdapterFileName => Path.GetFileName(AdapterRelativePath);

    public string ImageEncoderConfigPath => Path.Combine(ImageEncoderFolder, "config.json");

    public string ImageEncoderWeightsPath => Path.Combine(ImageEncoderFolder, "model.safetensors");

    /// <summary>From the root of an h94/IP-Adapter-style folder.</summary>
    public static IpAdapterFiles FromRepository(string root) => Open(
        Path.Combine(root, AdapterRelativePath), Path.Combine(root, ImageEncoderRelativePath));

    /// <summary>The adapter file and the image encoder folder, by default the one beside the adapter (<see cref="ImageEncoderBeside"/>).</summary>
    public static IpAdapterFiles Open(string adapterPath, string? imageEncoderFolder = null)
    {
        adapterPath = Path.GetFullPath(adapterPath);
        if (!File.Exists(adapterPath))
            throw new FileNotFoundException($"IP-Adapter weights not found: {adapterPath}", adapterPath);
        imageEncoderFolder = Path.GetFullPath(imageEncoderFolder ?? ImageEncoderBeside(adapterPath)
            ?? throw new FileNotFoundException($"{adapterPath} is not in the h94/IP-Adapter layout, which keeps the image encoder in {ImageEncoderRelativePath} beside sdxl_models/: give the image encoder folder.", adapterPath));
        var files = new IpAdapterFiles(adapterPath, imageEncoderFolder);
        foreach (var required in new[] { files.ImageEncoderConfigPath, files.ImageEncoderWeightsPath })
        {
            if (!File.Exists(required))
                throw new FileNotFoundException(
                    $"Image encoder incomplete in {imageEncoderFolder}: {Path.GetFileName(required)} is missing; it needs config.json and model.safetensors (the ViT-H encoder, models/image_encoder in h94/IP-Adapter). Download or copy it again.",
                    required);
        }
        return files;
    }

    /// <summary>The IP-Adapter Plus and Plus-Face files of this layout, beside the base one in sdxl_models/.</summary>
    public static readonly string[] PlusAdapterFileNames = ["ip-adapter-plus_sdxl_vit-h.safetensors", "ip-adapter-plus-face_sdxl_vit-h.safetensors"];

    /// <summary>
    /// The adapter files a path names: the file itself, or in a folder (directly or under sdxl_models/) the base adapter,
    /// else the Plus and Plus-Face files it holds; empty when there are none. More than one leaves the choice to the caller.
    /// </summary>
    public static IReadOnlyList<string> FindAdapters(string path)
    {
        if (File.Exists(path)) return [Path.GetFullPath(path)];
        if (!Directory.Exists(path)) return [];
        string[] In(string name) => [Path.GetFullPath(Path.Combine(path, "sdxl_models", name)), Path.GetFullPath(Path.Combine(path, name))];
        return In(AdapterFileName).FirstOrDefault(File.Exists) is { } baseFile
            ? [baseFile]
            : PlusAdapterFileNames.SelectMany(In).Where(File.Exists).ToList();
    }

    /// <summary>
    /// Where this layout keeps the ViT-H encoder of an adapter file: models/image_encoder beside sdxl_models/
    /// (sdxl_models/image_encoder is ViT-bigG, for the other SDXL adapters, and would not fit); null for an
    /// adapter with no folder above its own.
    /// </summary>
    public static string? ImageEncoderBeside(string adapterPath)
    {
        var repository = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(adapterPath)));
        return repository is null ? null : Path.GetFullPath(Path.Combine(repository, ImageEncoderRelativePath));
    }

    private static readonly string[] BaseProjectionTensors = ["image_proj.proj.weight", "image_proj.proj.bias", "image_proj.norm.weight", "image_proj.norm.bias"];

    /// <summary>Which image projection the adapter file carries, by its keys (only the header is read).</summary>
    /// <exception cref="CheckpointException">The file has neither projection: FaceID, "full" and ViT-bigG adapters and other files are not read.</exception>
    public IpAdapterKind ReadKind()
    {
        using var file = Safetensors.SafetensorsFile.Open(AdapterPath);
        if (file.Contains("image_proj.latents")) return IpAdapterKind.Plus;
        // Any tensor of the base projection: one of them missing is reported when the projection is built.
        if (BaseProjectionTensors.Any(file.Contains)) return IpAdapterKind.Base;
        throw new Safetensors.CheckpointException(
            $"{AdapterPath} has neither image_proj.proj.weight (the base IP-Adapter) nor image_proj.latents (IP-Adapter Plus and Plus-Face): it is another kind of adapter, " +
            "which is not read. The SDXL ViT-H adapters are ip-adapter_sdxl_vit-h, ip-adapter-plus_sdxl_vit-h and ip-adapter-plus-face_sdxl_vit-h.safetensors.",
            AdapterPath, "image_proj.proj.weight");
    }

    public ClipVisionConfig ReadImageEncoderConfig() => ConfigJson.Read<ClipVisionConfig>(ImageEncoderConfigPath);
}
