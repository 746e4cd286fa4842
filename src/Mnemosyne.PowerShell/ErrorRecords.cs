using System.Management.Automation;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.PowerShell;

/// <summary>Turns the engine's exceptions into ErrorRecords with the category PowerShell users filter on.</summary>
internal static class ErrorRecords
{
    /// <param name="errorId">What failed here; an exception that names its own failure (a model path, a download) overrides it.</param>
    /// <param name="target">The path or value being processed; an exception that knows better (a file name, an out-of-range value) overrides it.</param>
    /// <param name="ioCategory">What a plain I/O failure means here: reading an input or writing an output.</param>
    public static ErrorRecord From(Exception exception, string errorId, object? target, ErrorCategory ioCategory = ErrorCategory.ReadError)
    {
        var record = exception switch
        {
            ModelPathException e => new(e, PathErrorId(e.Problem),
                e.Problem is ModelPathProblem.CheckpointNotSupported or ModelPathProblem.IpAdapterAmbiguous ? ErrorCategory.InvalidArgument : ErrorCategory.ObjectNotFound, e.Path),
            ModelNotInstalledException e => new(e, "ModelNotInstalled", ErrorCategory.ObjectNotFound, target),
            UnknownModelException e => new(e, "UnknownModel", ErrorCategory.ObjectNotFound, target),
            HubAccessDeniedException { StatusCode: 401 } e => new(e, "ModelAuthenticationRequired", ErrorCategory.AuthenticationError, target),
            HubAccessDeniedException e => new(e, "ModelAccessDenied", ErrorCategory.PermissionDenied, target),
            HubFileNotFoundException e => new(e, "ModelFileNotFound", ErrorCategory.ObjectNotFound, target),
            ModelIntegrityException e => new(e, "ModelIntegrity", ErrorCategory.InvalidData, target),
            HubRequestException e => new(e, "ModelDownloadFailed", ErrorCategory.ConnectionError, target),
            ImageDecodeException { Failure: ImageDecodeFailure.TooLarge } e => new(e, errorId, ErrorCategory.LimitsExceeded, e.FilePath),
            ImageDecodeException e => new(e, errorId, ErrorCategory.InvalidData, e.FilePath),
            CheckpointException e when !File.Exists(e.FilePath) && !Directory.Exists(e.FilePath)
                => new(e, errorId, ErrorCategory.ObjectNotFound, e.FilePath),
            CheckpointException e => new(e, errorId, ErrorCategory.InvalidData, e.FilePath),
            FileNotFoundException e => new(e, errorId, ErrorCategory.ObjectNotFound, e.FileName ?? target),
            DirectoryNotFoundException e => new(e, errorId, ErrorCategory.ObjectNotFound, target),
            UnauthorizedAccessException e => new(e, errorId, ErrorCategory.PermissionDenied, target),
            ArgumentOutOfRangeException { ActualValue: not null } e => new(e, errorId, ErrorCategory.InvalidArgument, e.ActualValue),
            ArgumentException e => new(e, errorId, ErrorCategory.InvalidArgument, target),
            InvalidDataException e => new(e, errorId, ErrorCategory.InvalidData, target),
            OperationCanceledException e => new(e, errorId, ErrorCategory.OperationStopped, target),
            NotImplementedException e => new(e, errorId, ErrorCategory.NotImplemented, target),
            NotSupportedException e => new(e, errorId, ErrorCategory.NotImplemented, target),
            OutOfMemoryException e => new(e, errorId, ErrorCategory.ResourceUnavailable, target),
            ExecutionProviderUnavailableException e => new(e, $"{e.Provider}{e.Shortfall}Unavailable",
                e.Shortfall == ExecutionProviderShortfall.Device ? ErrorCategory.ResourceUnavailable : ErrorCategory.NotInstalled, e.Provider),
            InvalidOperationException e => new(e, errorId, ErrorCategory.InvalidOperation, target),
            IOException e => new(e, errorId, ioCategory, target),
            _ => new ErrorRecord(exception, errorId, ErrorCategory.NotSpecified, target),
        };
        if (exception is ArgumentException { ParamName: { } name } argument && argument.Message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal) is var cut and > 0)
        {
            // Shown instead of .NET's "(Parameter 'X')" and "Actual value was …" lines: one sentence, with the value.
            var given = argument is ArgumentOutOfRangeException { ActualValue: { } value }
                ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $" (given: {value})")
                : "";
            record.ErrorDetails = new ErrorDetails(argument.Message[..cut] + given);
        }
        if ((exception as ModelNotInstalledException ?? exception.InnerException as ModelNotInstalledException) is { } notInstalled)
            record.ErrorDetails = new ErrorDetails(exception.Message) { RecommendedAction = notInstalled.InstallCommand };
        if (exception is HubAccessDeniedException)
        {
            // The engine's messages never carry the token.
            record.ErrorDetails = new ErrorDetails(exception.Message)
            {
                RecommendedAction = "Accept the model's licence on its Hugging Face page, then set $env:HF_TOKEN to an access token of that account.",
            };
        }
        return record;
    }

    /// <summary>The error id of a failure to read the model manifests or to read or write the hub cache, by what failed.</summary>
    public static string ModelCacheErrorId(Exception exception) => exception switch
    {
        InvalidDataException => "InvalidModelManifest",
        FileNotFoundException or DirectoryNotFoundException => "ModelFileMissing",
        UnauthorizedAccessException => "ModelCacheAccessDenied",
        IOException => "ModelCacheWriteFailed",
        _ => "ModelOperationFailed",
    };

    private static string PathErrorId(ModelPathProblem problem) => problem switch
    {
        ModelPathProblem.IpAdapterNotFound => "IPAdapterNotFound",
        ModelPathProblem.IpAdapterAmbiguous => "IPAdapterAmbiguous",
        _ => problem.ToString(),
    };

    public static ErrorRecord Create(string message, string errorId, ErrorCategory category, object? target)
        => new(new InvalidOperationException(message), errorId, category, target);

    public static ErrorRecord FileExists(string path) => new(
        new IOException($"{path} already exists. Use -Force to overwrite it, or choose another path."),
        "FileExists", ErrorCategory.ResourceExists, path);
}
