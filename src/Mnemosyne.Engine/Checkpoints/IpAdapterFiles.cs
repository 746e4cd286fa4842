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

    public string ImageEncoderConfigPath => Path.Combine(ImageEncoderFolder, "config.json");

    public string ImageEncoderWeightsPath => Path.Combine(ImageEncoderFolder, "model.safetensors");

    /// <summary>From the root of an h94/IP-Adapter-style folder.</summary>
    public static IpAdapterFiles FromRepository(string root) => Open(
        Path.Combine(root, AdapterRelativePath), Path.Combine(root, ImageEncoderRelativePath));

    public static IpAdapterFiles Open(string adapterPath, string imageEncoderFolder)
    {
        adapterPath = Path.GetFullPath(adapterPath);
        imageEncoderFolder = Path.GetFullPath(imageEncoderFolder);
        if (!File.Exists(adapterPath))
            throw new FileNotFoundException($"IP-Adapter weights not found: {adapterPath}", adapterPath);
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

    public ClipVisionConfig ReadImageEncoderConfig() => ConfigJson.Read<ClipVisionConfig>(ImageEncoderConfigPath);
}
