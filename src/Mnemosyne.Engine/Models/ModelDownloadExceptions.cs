namespace Mnemosyne.Engine.Models;

/// <summary>The hub refused the request (401/403): the repository is gated or private and needs a token.</summary>
public sealed class HubAccessDeniedException(string message, int statusCode) : UnauthorizedAccessException(message)
{
    /// <summary>401 (no or a bad token) or 403 (a token without access to this repository).</summary>
    public int StatusCode { get; } = statusCode;
}

/// <summary>The hub has no such repository, revision or file (404).</summary>
public sealed class HubFileNotFoundException(string message, string repositoryPath) : FileNotFoundException(message, repositoryPath);

/// <summary>
/// Downloaded bytes are not what the hub (or the manifest) declared: wrong SHA-256 or size. The
/// partial file has been deleted; nothing of the file is left in the cache. (An IOException because
/// InvalidDataException is sealed; callers tell it apart by type.)
/// </summary>
public sealed class ModelIntegrityException(string message) : IOException(message);

/// <summary>The hub kept failing (5xx, 429, broken connections) after every retry, or answered in a way no hub does.</summary>
public sealed class HubRequestException(string message, Exception? inner = null) : IOException(message, inner);
