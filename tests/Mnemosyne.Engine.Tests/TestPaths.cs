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

    public static bool HasFidelity => Directory.Exists(Fidelity);

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
        if (!TestPaths.HasFidelity) Skip = $"{TestPaths.Fidelity} is absent: the reference cases live in ../shared beside the checkout.";
    }
}

/// <summary>A theory that needs ../shared/fidelity; skipped, with a message, where it is absent.</summary>
public sealed class FidelityTheoryAttribute : TheoryAttribute
{
    public FidelityTheoryAttribute()
    {
        if (!TestPaths.HasFidelity) Skip = $"{TestPaths.Fidelity} is absent: the reference cases live in ../shared beside the checkout.";
    }
}
