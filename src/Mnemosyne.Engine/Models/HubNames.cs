using System.Text.RegularExpressions;

namespace Mnemosyne.Engine.Models;

/// <summary>
/// Checks for the names that become paths in the cache: repository ids, revisions, file paths, and
/// what a server sends back (commit hashes, ETags). A hostile server or manifest must not be able to
/// write outside the cache.
/// </summary>
internal static partial class HubNames
{
    public static bool IsCommitHash(string value) => CommitPattern().IsMatch(value);

    public static bool IsSha256(string value) => Sha256Pattern().IsMatch(value);

    public static void CheckRepository(string repository, string where)
    {
        var parts = repository.Split('/');
        if (parts.Length != 2 || !parts.All(part => RepositoryPartPattern().IsMatch(part))
            || repository.Contains("--", StringComparison.Ordinal) || repository.Contains("..", StringComparison.Ordinal))
            throw new InvalidDataException(
                $"{where}: repository '{repository}' is not a Hugging Face repository id of the form 'org/name' (letters, digits, '.', '_', '-'; no '--' or '..').");
    }

    public static void CheckRevision(string revision, string where)
    {
        if (!IsCommitHash(revision) && !BranchPattern().IsMatch(revision))
            throw new InvalidDataException($"{where}: revision '{revision}' must be a 40-hex commit hash or a branch or tag name such as 'main'.");
    }

    public static void CheckRepositoryPath(string path, string where)
    {
        var segments = path.Split('/');
        if (path.Length == 0 || path.Contains('\\') || path.Contains(':') || path.Any(char.IsControl)
            || segments.Any(segment => segment is "" or "." or ".."))
            throw new InvalidDataException($"{where}: '{path}' is not a relative repository path ('/'-separated, no '..', '\\' or ':').");
    }

    /// <summary>The ETag as huggingface_hub keeps it: without a weak marker and quotes; null if it could not be a file name.</summary>
    public static string? NormalizeEtag(string? etag)
    {
        if (etag is null) return null;
        var value = etag.Trim();
        if (value.StartsWith("W/", StringComparison.Ordinal)) value = value[2..];
        value = value.Trim('"');
        return EtagPattern().IsMatch(value) ? value : null;
    }

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Pattern();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex RepositoryPartPattern();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex BranchPattern();

    [GeneratedRegex("^[A-Za-z0-9_-]{1,128}$")]
    private static partial Regex EtagPattern();
}
