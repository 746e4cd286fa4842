using System.Management.Automation;

namespace Mnemosyne.PowerShell;

/// <summary>The checks and error records shared by the cmdlets that write files.</summary>
internal static class OutputFiles
{
    /// <summary>Why <paramref name="path"/> cannot be written, or null when it can.</summary>
    public static ErrorRecord? CheckWritable(string path, bool force)
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
        return !force && File.Exists(path) ? ErrorRecords.FileExists(path) : null;
    }

    /// <summary>A failed write; a file that appeared meanwhile is reported as existing, not as an I/O fault.</summary>
    public static ErrorRecord WriteFailure(Exception exception, string path, bool force)
        => exception is IOException && !force && File.Exists(path)
            ? ErrorRecords.FileExists(path)
            : ErrorRecords.From(exception, "WriteFailed", path, ErrorCategory.WriteError);
}
