using Mnemosyne.Engine.Checkpoints;

namespace Mnemosyne.PowerShell;

/// <summary>
/// Finds the SDXL ViT-H IP-Adapter and its image encoder in the h94/IP-Adapter layout
/// (<see cref="IpAdapterFiles"/>), so that a user can give the repository folder, or nothing when
/// it sits in the checkpoint's ip-adapter folder, and hear about a missing piece before the long load.
/// </summary>
internal static class IPAdapterLayout
{
    public const string ConventionalFolder = "ip-adapter";

    public static string AdapterFileName => Path.GetFileName(IpAdapterFiles.AdapterRelativePath);

    /// <summary>The adapter file a path names: the file itself, or a folder holding it directly or under sdxl_models/.</summary>
    public static string? FindAdapter(string path)
    {
        if (File.Exists(path)) return path;
        if (!Directory.Exists(path)) return null;
        return new[] { Path.Combine(path, IpAdapterFiles.AdapterRelativePath), Path.Combine(path, AdapterFileName) }
            .Select(Path.GetFullPath)
            .FirstOrDefault(File.Exists);
    }

    /// <summary>
    /// The ViT-H encoder that goes with an adapter file in that layout: models/image_encoder beside
    /// sdxl_models/. (sdxl_models/image_encoder is ViT-bigG, for the other SDXL adapters, and would not fit.)
    /// </summary>
    public static string? FindImageEncoder(string adapterFile)
    {
        var repository = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(adapterFile)));
        if (repository is null) return null;
        var candidate = Path.GetFullPath(Path.Combine(repository, IpAdapterFiles.ImageEncoderRelativePath));
        return Directory.Exists(candidate) ? candidate : null;
    }
}
