using Mnemosyne.Engine.Imaging;

namespace Mnemosyne.Engine.Tests.Imaging;

public class AtomicFileTests
{
    private static void WriteText(Stream stream, string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        stream.Write(bytes);
    }

    [Fact]
    public void WritesTheWholeFileAndLeavesNothingElse()
    {
        using var folder = new TempFolder();
        AtomicFile.Write(folder.File("a.txt"), s => WriteText(s, "hello"));
        Assert.Equal("hello", File.ReadAllText(folder.File("a.txt")));
        Assert.Single(Directory.GetFileSystemEntries(folder.Path));
    }

    [Fact]
    public void RefusesToReplaceAFileUnlessAsked()
    {
        using var folder = new TempFolder();
        var path = folder.File("a.txt");
        File.WriteAllText(path, "original");
        bool called = false;

        var e = Assert.Throws<IOException>(() => AtomicFile.Write(path, s => { called = true; WriteText(s, "new"); }));

        Assert.Contains(path, e.Message);
        Assert.False(called);
        Assert.Equal("original", File.ReadAllText(path));
        AtomicFile.Write(path, s => WriteText(s, "new"), overwrite: true);
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Single(Directory.GetFileSystemEntries(folder.Path));
    }

    [Fact]
    public void AFailedWriteLeavesNoPartialFileAndRethrows()
    {
        using var folder = new TempFolder();
        var path = folder.File("a.txt");
        var failure = new InvalidOperationException("encoder broke");

        var thrown = Assert.Throws<InvalidOperationException>(() =>
            AtomicFile.Write(path, s => { WriteText(s, "half of it"); throw failure; }));

        Assert.Same(failure, thrown);
        Assert.Empty(Directory.GetFileSystemEntries(folder.Path));
    }

    [Fact]
    public void AFailedOverwriteKeepsTheOriginal()
    {
        using var folder = new TempFolder();
        var path = folder.File("a.txt");
        File.WriteAllText(path, "original");

        Assert.Throws<InvalidOperationException>(() =>
            AtomicFile.Write(path, s => { WriteText(s, "half"); throw new InvalidOperationException(); }, overwrite: true));

        Assert.Equal("original", File.ReadAllText(path));
        Assert.Single(Directory.GetFileSystemEntries(folder.Path));
    }

    [Fact]
    public void RefusesAMissingFolder()
    {
        using var folder = new TempFolder();
        var e = Assert.Throws<DirectoryNotFoundException>(() =>
            AtomicFile.Write(Path.Combine(folder.Path, "no", "a.txt"), s => WriteText(s, "x")));
        Assert.Contains("create it first", e.Message);
    }

    [Fact]
    public void WritesANameThatOnlyJustFitsTheFileSystem()
    {
        using var folder = new TempFolder();
        // 250 characters: legal (255 is the usual limit), but not with a temporary suffix added to all of it.
        var path = folder.File(new string('n', 246) + ".png");
        AtomicFile.Write(path, s => WriteText(s, "long"));
        Assert.Equal("long", File.ReadAllText(path));
        Assert.Single(Directory.GetFileSystemEntries(folder.Path));
    }

    [Fact]
    public void ReportsANameTooLongForTheFileSystemAgainstTheTarget()
    {
        using var folder = new TempFolder();
        var path = folder.File(new string('n', 300) + ".png");
        var e = Assert.Throws<IOException>(() => AtomicFile.Write(path, s => WriteText(s, "x")));
        Assert.StartsWith($"Cannot write '{path}': the file system refused it", e.Message);
        Assert.Contains("shorter name", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(folder.Path));
    }

    /// <summary>/proc takes no new files, even from root (which ignores permission bits): an honest folder that refuses a write.</summary>
    [Fact]
    public void ReportsAFolderThatTakesNoNewFilesAgainstTheTarget()
    {
        if (!OperatingSystem.IsLinux()) return;
        var e = Assert.ThrowsAny<Exception>(() => AtomicFile.Write("/proc/mnemosyne-test.png", s => WriteText(s, "x")));
        Assert.True(e is IOException or UnauthorizedAccessException, e.GetType().Name);
        Assert.StartsWith("Cannot write '/proc/mnemosyne-test.png':", e.Message);
        Assert.DoesNotContain(".tmp", e.Message);
        Assert.False(File.Exists("/proc/mnemosyne-test.png"));
    }
}
