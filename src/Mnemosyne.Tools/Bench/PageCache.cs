using System.Runtime.InteropServices;

namespace Mnemosyne.Tools.Bench;

/// <summary>
/// How much of a set of files sits in Linux's page cache, and a way to evict them without root:
/// fdatasync then posix_fadvise(DONTNEED) per file. That touches only these files, unlike
/// /proc/sys/vm/drop_caches, which would empty every other process's cache too. Pages that another
/// process has mapped stay resident; <see cref="ResidentBytes"/> says what eviction achieved.
/// </summary>
public static class PageCache
{
    private const int FadviseDontNeed = 4;
    private const int ProtRead = 1;
    private const int MapShared = 1;

    public static bool Supported => OperatingSystem.IsLinux();

    public static void Evict(IEnumerable<string> files)
    {
        if (!Supported) return;
        foreach (var path in files)
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            int fd = (int)stream.SafeFileHandle.DangerousGetHandle();
            fdatasync(fd);
            int error = posix_fadvise(fd, 0, 0, FadviseDontNeed);
            if (error != 0) throw new IOException($"posix_fadvise(DONTNEED) failed on {path} (errno {error}).");
        }
    }

    /// <summary>Bytes of the files that are in the page cache now (mincore over a read-only mapping).</summary>
    public static long ResidentBytes(IEnumerable<string> files)
    {
        if (!Supported) return -1;
        long pageSize = Environment.SystemPageSize, resident = 0;
        foreach (var path in files)
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            long length = stream.Length;
            if (length == 0) continue;
            int fd = (int)stream.SafeFileHandle.DangerousGetHandle();
            var address = mmap(IntPtr.Zero, (nuint)length, ProtRead, MapShared, fd, 0);
            if (address == new IntPtr(-1)) throw new IOException($"mmap failed on {path} (errno {Marshal.GetLastPInvokeError()}).");
            try
            {
                var pages = new byte[(length + pageSize - 1) / pageSize];
                if (mincore(address, (nuint)length, pages) != 0)
                    throw new IOException($"mincore failed on {path} (errno {Marshal.GetLastPInvokeError()}).");
                long count = pages.Count(p => (p & 1) != 0);
                resident += Math.Min(length, count * pageSize);
            }
            finally
            {
                munmap(address, (nuint)length);
            }
        }
        return resident;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int fdatasync(int fd);

    [DllImport("libc")]
    private static extern int posix_fadvise(int fd, long offset, long length, int advice);

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr mmap(IntPtr address, nuint length, int protection, int flags, int fd, long offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int mincore(IntPtr address, nuint length, byte[] vector);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(IntPtr address, nuint length);
}
