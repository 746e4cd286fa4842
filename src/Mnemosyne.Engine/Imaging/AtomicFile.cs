namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// Writes a file so that it appears complete or not at all: the content goes to a temporary file
/// in the target folder (same volume, so the rename is atomic), which is then renamed into place.
/// A failed or cancelled write leaves no partial file behind, and an existing file unchanged.
/// </summary>
public static class AtomicFile
{
    /// <summary>How much of the target's name the temporary name keeps: the rest of it must still fit the file system's name limit.</summary>
    private const int TemporaryNameStem = 64;

    /// <param name="path">The file to create (or replace, with <paramref name="overwrite"/>).</param>
    /// <param name="write">Writes the whole content to the stream it is given (a memory stream: what it throws is its own failure, never the disk's).</param>
    /// <param name="overwrite">Replace an existing file; without it an existing file is an error.</param>
    /// <exception cref="IOException">The file exists and <paramref name="overwrite"/> is false; or the file system refused the file (full, too long a name, …): the message names <paramref name="path"/>.</exception>
    /// <exception cref="UnauthorizedAccessException">This user may not create files in the folder.</exception>
    /// <exception cref="DirectoryNotFoundException">The target folder does not exist.</exception>
    public static void Write(string path, Action<Stream> write, bool overwrite = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var fullPath = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(fullPath)
            ?? throw new ArgumentException($"'{fullPath}' names a root, not a file.", nameof(path));
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot write '{fullPath}': the folder '{folder}' does not exist; create it first.");
        if (Directory.Exists(fullPath))
            throw new IOException($"Cannot write '{fullPath}': it is a folder; choose a file name.");
        if (!overwrite && File.Exists(fullPath))
            throw new IOException($"'{fullPath}' already exists; choose another name or allow overwriting.");

        using var content = new MemoryStream();
        write(content);

        var temporary = Path.Combine(folder, TemporaryName(Path.GetFileName(fullPath)));
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                content.WriteTo(stream);
                stream.Flush(flushToDisk: true);
            }
            // Without overwrite the move fails if the file appeared meanwhile, rather than replace it.
            File.Move(temporary, fullPath, overwrite);
        }
        // FileStream reports a file over the size limit (EFBIG) as an ArgumentOutOfRangeException.
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentOutOfRangeException)
        {
            DeleteQuietly(temporary);
            if (e is IOException && !overwrite && File.Exists(fullPath)) throw;
            throw Refused(e, temporary, fullPath, folder);
        }
    }

    /// <summary>The file system's refusal, told about the file the caller asked for rather than the temporary one.</summary>
    private static Exception Refused(Exception e, string temporary, string fullPath, string folder)
    {
        var unchanged = File.Exists(fullPath) ? " and the existing file is unchanged" : "";
        if (e is UnauthorizedAccessException)
            return new UnauthorizedAccessException(
                $"Cannot write '{fullPath}': this user may not create files in '{folder}'. Nothing was written{unchanged}; choose another folder or change its permissions.", e);
        var reason = e switch
        {
            PathTooLongException => "the name is too long for the file system",
            // The folder exists (checked above), so "not found" means it takes no new files (/proc, a folder removed meanwhile).
            FileNotFoundException or DirectoryNotFoundException => $"the folder '{folder}' takes no new files (or was removed)",
            ArgumentOutOfRangeException => "the file is larger than the file system or a size limit allows",
            _ => e.Message.Replace(temporary, fullPath, StringComparison.Ordinal),
        };
        return new IOException(
            $"Cannot write '{fullPath}': the file system refused it ({reason}). Nothing was written{unchanged}; free some space, use a shorter name or choose another folder.", e);
    }

    private static string TemporaryName(string name)
    {
        var stem = name.Length <= TemporaryNameStem ? name : name[..TemporaryNameStem];
        if (char.IsHighSurrogate(stem[^1])) stem = stem[..^1];
        return $".{stem}.{Guid.NewGuid():N}.tmp";
    }

    /// <summary>Cleans up after a failure without hiding it: the original exception is the one that matters.</summary>
    private static void DeleteQuietly(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
