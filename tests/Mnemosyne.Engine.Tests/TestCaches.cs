using System.Runtime.CompilerServices;

namespace Mnemosyne.Engine.Tests;

/// <summary>
/// Engines opened by the tests keep their optimised sessions (and converted weights) in the default caches under
/// $XDG_CACHE_HOME: pointed at a folder of this test run, deleted when it ends, so that the user's own caches are
/// neither filled with entries of throwaway checkpoints nor read by the tests.
/// </summary>
internal static class TestCaches
{
    [ModuleInitializer]
    internal static void UseAFolderOfThisRun()
    {
        var folder = Directory.CreateTempSubdirectory("mnemosyne-test-cache-").FullName;
        Environment.SetEnvironmentVariable("XDG_CACHE_HOME", folder);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(folder, recursive: true); }
            catch (IOException) { } // a file still open: left in the temp folder
            catch (UnauthorizedAccessException) { }
        };
    }
}
