namespace Mnemosyne.PowerShell;

/// <summary>
/// Where the h94/IP-Adapter repository keeps the SDXL ViT-H adapter and its image encoder, so that
/// a user can give the repository folder (or nothing, when it sits in the checkpoint's ip-adapter folder).
/// </summary>
internal static class IPAdapterLayout
{
    public const string AdapterFileName = "ip-adapter_sdxl_vit-h.safetensors";
    public const string ConventionalFolder = "ip-adapter";

    /// <summary>The adapter file a path names: the file itself, or a folder holding it directly or under sdxl_models/.</summary>
    public static string? FindAdapter(string path)
    {
        if (File.Exists(path)) return path;
        if (!Directory.Exists(path)) return null;
        return new[] { Path.Combine(path, "sdxl_models", AdapterFileName), Path.Combine(path, AdapterFileName) }
            .FirstOrDefault(File.Exists);
    }

    /// <summary>
    /// The ViT-H encoder that goes with an adapter file in that layout: models/image_encoder beside
    /// sdxl_models/. (sdxl_models/image_encoder is ViT-bigG, for the other SDXL adapters, and would not fit.)
    /// </summary>
    public static string? FindImageEncoder(string adapterFile)
    {
        var adapterFolder = Path.GetDirectoryName(Path.GetFullPath(adapterFile));
        if (adapterFolder is null) return null;
        var repository = Path.GetDirectoryName(adapterFolder);
        var candidate = repository is null ? null : Path.Combine(repository, "models", "image_encoder");
        return candidate is not null && Directory.Exists(candidate) ? candidate : null;
    }
}
