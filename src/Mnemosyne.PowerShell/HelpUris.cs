namespace Mnemosyne.PowerShell;

/// <summary>
/// Where Get-Help -Online sends each cmdlet: its entry in the README's Commands section on the project's site (the
/// manifest's ProjectUri), which GitHub anchors by the lower-cased heading.
/// </summary>
internal static class HelpUris
{
    public const string Project = "https://github.com/mnemosyne-contributors/Mnemosyne";
    public const string Readme = Project + "/blob/main/README.md#";
}
