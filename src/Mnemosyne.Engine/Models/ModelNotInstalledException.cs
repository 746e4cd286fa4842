namespace Mnemosyne.Engine.Models;

/// <summary>
/// Known models that are not (completely) in the Hugging Face cache. <see cref="ModelNames"/> are
/// what to install; <see cref="FileNotFoundException.FileName"/> is the first file missing.
/// </summary>
public sealed class ModelNotInstalledException(string message, IReadOnlyList<string> modelNames, string? firstMissingFile)
    : FileNotFoundException(message, firstMissingFile)
{
    public IReadOnlyList<string> ModelNames { get; } = modelNames;

    /// <summary>The command that fetches them, e.g. "Install-MnemosyneModel sdxl-base-1.0, sdxl-lightning-4step-unet".</summary>
    public string InstallCommand => "Install-MnemosyneModel " + string.Join(", ", ModelNames);
}
