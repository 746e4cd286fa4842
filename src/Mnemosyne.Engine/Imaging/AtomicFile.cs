namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// Writes a file so that it appears complete or not at all: the content goes to a temporary file
/// in the target folder (same volume, so the rename is atomic), which is then renamed into place.
/// A failed or cancelled write leaves no partial file behind.
/// </summary>
public static class AtomicFile
{
    /// <param name="path">The file to create (or replace, with <paramref name="overwrite"/>).</param>
    /// <param name="write">Writes the whole content to the stream it is given.</param>
    /// <param name="overwrite">Replace an existing file; without it an existing file is an error.</param>
    /// <exception cref="IOException">The file exists and <paramref name="overwrite"/> is false.</exception>
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

        var temporary = Path.Combine(folder, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            // Without overwrite the move fails if the file appeared meanwhile, rather than replace it.
            File.Move(temporary, fullPath, overwrite);
        }
        catch
        {
            DeleteQuietly(temporary);
            throw;
        }
    }

    /// <summary>Cleans up after a failure without hiding it: the original exception is the one that matters.</summary>
    private static void DeleteQuietly(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
