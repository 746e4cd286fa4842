using System.Management.Automation;

namespace Mnemosyne.PowerShell;

/// <summary>The checks and error records shared by the cmdlets that write files.</summary>
internal static class OutputFiles
{
    /// <summary>Why <paramref name="path"/> cannot be written, or null when it can.</summary>
    /// <param name="provider">Reads the kind of an existing file (a device, a pipe, a socket), which .NET does not tell.</param>
    public static ErrorRecord? CheckWritable(string path, bool force, ProviderIntrinsics provider)
    {
        if (Directory.Exists(path))
        {
            return ErrorRecords.Create($"{path} is a folder. Give a file name (or use -Directory to name files from a template).",
                "PathIsFolder", ErrorCategory.InvalidArgument, path);
        }
        var folder = Path.GetDirectoryName(path);
        if (folder is not null && File.Exists(folder))
        {
            return ErrorRecords.Create($"{folder} is a file, so it cannot hold {Path.GetFileName(path)}. Choose a path in a folder.",
                "FolderIsFile", ErrorCategory.InvalidArgument, path);
        }
        if (folder is not null && !Directory.Exists(folder))
        {
            return new ErrorRecord(new DirectoryNotFoundException($"The folder {folder} does not exist. Create it first (New-Item -ItemType Directory).")
                , "FolderNotFound", ErrorCategory.ObjectNotFound, path);
        }
        if (!force) return File.Exists(path) ? ErrorRecords.FileExists(path) : null;
        return NotRegularFile(path, provider);
    }

    /// <summary>
    /// An existing path that -Force must not replace: the write goes to a temporary file renamed over the target, which
    /// would turn a device or a pipe into a plain file and replace a link instead of writing where it points.
    /// </summary>
    private static ErrorRecord? NotRegularFile(string path, ProviderIntrinsics provider)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is { } link)
        {
            var resolved = Path.GetFullPath(link, Path.GetDirectoryName(path)!);
            return ErrorRecords.Create(
                $"{path} is a symbolic link to {resolved}; -Force replaces files, not links, so nothing was written. " +
                $"To replace the file the link points to, give its own path ({resolved}); to replace the link, remove it first.",
                "PathIsLink", ErrorCategory.InvalidArgument, path);
        }
        if (!info.Exists || OperatingSystem.IsWindows()) return null;
        // The file-system provider adds the file's stat (UnixStat.ItemType) on Unix.
        var item = provider.Item.Get([path], force: true, literalPath: true).FirstOrDefault();
        var stat = item?.Properties["UnixStat"]?.Value;
        var kind = stat is null ? null : PSObject.AsPSObject(stat).Properties["ItemType"]?.Value?.ToString();
        if (kind is null or "File") return null;
        return ErrorRecords.Create(
            $"{path} is not a regular file but a {KindName(kind)}; -Force replaces only regular files, so nothing was written. Choose a file name.",
            "NotARegularFile", ErrorCategory.InvalidArgument, path);
    }

    private static string KindName(string kind) => kind switch
    {
        "CharacterDevice" => "character device",
        "BlockDevice" => "block device",
        "NamedPipe" => "named pipe",
        "Socket" => "socket",
        _ => kind,
    };

    /// <summary>A failed write; a file that appeared meanwhile is reported as existing, not as an I/O fault.</summary>
    public static ErrorRecord WriteFailure(Exception exception, string path, bool force)
        => exception is IOException && !force && File.Exists(path)
            ? ErrorRecords.FileExists(path)
            : ErrorRecords.From(exception, "WriteFailed", path, ErrorCategory.WriteError);
}
