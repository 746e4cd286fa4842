using System.Management.Automation;
using Mnemosyne.Engine.Models;

namespace Mnemosyne.PowerShell;

/// <summary>What the model cmdlets share: the cache a -CachePath names, and engine errors as ErrorRecords.</summary>
internal static class ModelCommandSupport
{
    /// <summary>-CachePath resolved against PowerShell's current location; null leaves the choice to the environment.</summary>
    public static string? ResolveCachePath(PSCmdlet cmdlet, string? cachePath) =>
        cachePath is null ? null : cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(cachePath);

    /// <summary>
    /// The engine's exceptions mapped to categories a script can branch on. The messages are the
    /// engine's, which never carry the token.
    /// </summary>
    public static ErrorRecord ToErrorRecord(Exception error, object? target)
    {
        var (id, category) = error switch
        {
            HubAccessDeniedException { StatusCode: 401 } => ("ModelAuthenticationRequired", ErrorCategory.AuthenticationError),
            HubAccessDeniedException => ("ModelAccessDenied", ErrorCategory.PermissionDenied),
            HubFileNotFoundException => ("ModelFileNotFound", ErrorCategory.ObjectNotFound),
            ModelIntegrityException => ("ModelIntegrity", ErrorCategory.InvalidData),
            HubRequestException => ("ModelDownloadFailed", ErrorCategory.ConnectionError),
            ArgumentException => ("UnknownModel", ErrorCategory.ObjectNotFound),
            InvalidDataException => ("InvalidModelManifest", ErrorCategory.InvalidData),
            FileNotFoundException or DirectoryNotFoundException => ("ModelFileMissing", ErrorCategory.ObjectNotFound),
            UnauthorizedAccessException => ("ModelCacheAccessDenied", ErrorCategory.PermissionDenied),
            IOException => ("ModelCacheWriteFailed", ErrorCategory.WriteError),
            _ => ("ModelOperationFailed", ErrorCategory.NotSpecified),
        };
        var record = new ErrorRecord(error, id, category, target);
        if (error is HubAccessDeniedException)
            record.ErrorDetails = new ErrorDetails(error.Message)
            {
                RecommendedAction = "Accept the model's licence on its Hugging Face page, then set $env:HF_TOKEN to an access token of that account.",
            };
        return record;
    }
}
