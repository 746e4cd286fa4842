using System.Runtime.InteropServices;

namespace Mnemosyne.Engine;

/// <summary>
/// Tells regular files from the special files a path can also name. Opening a named pipe for
/// reading blocks until a writer comes (forever, for a stray mkfifo), and a character device such as
/// /dev/zero or /dev/urandom reads without end while reporting a length of 0; .NET's own file
/// information tells none of them from an empty regular file, so the type comes from statx(2).
/// </summary>
public static partial class InputFiles
{
    /// <summary>
    /// What the path names when it is not a regular file (following symbolic links), as "a named pipe
    /// (FIFO)" or "a symbolic link that loops"; null for a regular file, a folder, a path that does not
    /// exist, or where it cannot be told (pipes and devices are only asked of Linux: FIFOs elsewhere
    /// are rare, and Windows has none on disk).
    /// </summary>
    public static string? SpecialKind(string path)
    {
        // .NET calls a dangling or looping link an existing file, and opening it fails with a bare IOException.
        if (BrokenLink(path) is { } link) return link;
        if (!OperatingSystem.IsLinux()) return null;
        Span<byte> status = stackalloc byte[StatxSize];
        try
        {
            if (Statx(AtCurrentDirectory, path, 0, StatxType, ref MemoryMarshal.GetReference(status)) != 0) return null;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // A C library without statx (glibc before 2.28): the type cannot be told here.
            return null;
        }
        // struct statx is the same on every architecture: stx_mode is the 16 bits at offset 28.
        int type = BitConverter.ToUInt16(status[28..30]) & 0xF000;
        return type switch
        {
            0x1000 => "a named pipe (FIFO)",
            0x2000 => "a character device",
            0x6000 => "a block device",
            0xC000 => "a socket",
            _ => null,
        };
    }

    private static string? BrokenLink(string path)
    {
        var link = new FileInfo(path);
        if (link.LinkTarget is null) return null;
        try
        {
            var target = File.ResolveLinkTarget(path, returnFinalTarget: true);
            return target is null || target.Exists || Directory.Exists(target.FullName)
                ? null
                : $"a symbolic link to {target.FullName}, which does not exist";
        }
        catch (IOException)
        {
            return $"a symbolic link that loops (it leads back to itself through {link.LinkTarget})";
        }
    }

    private const int AtCurrentDirectory = -100;
    private const uint StatxType = 0x1;
    private const int StatxSize = 256;

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, ref byte status);
}
