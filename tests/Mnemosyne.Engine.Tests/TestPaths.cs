namespace Mnemosyne.Engine.Tests;

/// <summary>Where the repository and the shared reference data (../shared beside it) are.</summary>
public static class TestPaths
{
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>../shared beside the checkout; tests read the fidelity cases there in place.</summary>
    public static string Shared => Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));

    public static string Fidelity => Path.Combine(Shared, "fidelity");

    public static string FidelityModel => Path.Combine(Fidelity, "model");

    public static string TorchRandn => Path.Combine(Shared, "reference", "torch-randn");

    /// <summary>
    /// Set to 1, the tests behave as if ../shared were absent, as in a stranger's clone: CI runs the tests that
    /// read it a second time so, and a test that needs ../shared to pass can never land.
    /// </summary>
    public const string WithoutSharedVariable = "MNEMOSYNE_TEST_WITHOUT_SHARED";

    /// <summary>The trait of the test classes that read ../shared where it is present (build.ps1 Test -WithoutShared runs them).</summary>
    public const string ReadsTrait = "Reads";

    public const string ReadsShared = "Shared";

    public static bool SharedHidden => Environment.GetEnvironmentVariable(WithoutSharedVariable) == "1";

    public static bool HasFidelity => !SharedHidden && Directory.Exists(Fidelity);

    public static bool HasTorchRandn => !SharedHidden && Directory.Exists(TorchRandn);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Mnemosyne.PowerShell.sln"))) return dir.FullName;
        throw new InvalidOperationException("Could not find the repository root above " + AppContext.BaseDirectory);
    }
}

/// <summary>A test that needs ../shared/fidelity; skipped, with a message, where it is absent.</summary>
public sealed class FidelityFactAttribute : FactAttribute
{
    public FidelityFactAttribute()
    {
        if (!TestPaths.HasFidelity) Skip = Absent;
    }

    public static string Absent => TestPaths.SharedHidden
        ? $"{TestPaths.WithoutSharedVariable}=1 hides ../shared, as in a clone with nothing beside it."
        : $"{TestPaths.Fidelity} is absent: the independent reference cases live in ../shared beside the checkout.";
}

/// <summary>A theory that needs ../shared/fidelity; skipped, with a message, where it is absent.</summary>
public sealed class FidelityTheoryAttribute : TheoryAttribute
{
    public FidelityTheoryAttribute()
    {
        if (!TestPaths.HasFidelity) Skip = FidelityFactAttribute.Absent;
    }
}
