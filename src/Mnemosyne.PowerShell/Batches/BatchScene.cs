using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Text.RegularExpressions;

namespace Mnemosyne.PowerShell.Batches;

/// <summary>
/// One scene of a batch: its place in the input (from 1), its seed (fixed before dealing) and the New-MnemosyneScene
/// parameters a host makes it with. Its file is '{index:0000}-{seed}-{prompt}.png'; a file with its index and prompt
/// under any seed counts as made, so that a re-run whose seeds are drawn afresh still skips it.
/// </summary>
internal sealed class BatchScene
{
    public BatchScene(int index, string prompt, long seed, Hashtable parameters, object source)
    {
        Index = index;
        Prompt = prompt;
        Seed = seed;
        Parameters = parameters;
        Source = source;
        var stem = FileNameTemplate.Value(prompt);
        if (stem.Length == 0) stem = "scene";
        FileName = string.Create(CultureInfo.InvariantCulture, $"{index:0000}-{seed}-{stem}.png");
        savedName = new Regex(string.Create(CultureInfo.InvariantCulture, $"^{index:0000}-[0-9]+-{Regex.Escape(stem)}\\.png$"),
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    }

    private readonly Regex savedName;

    public int Index { get; }
    public string Prompt { get; }
    public long Seed { get; }
    /// <summary>New-MnemosyneScene's parameters, Prompt and Seed among them: strings and numbers only, which travel to any host unchanged.</summary>
    public Hashtable Parameters { get; }
    /// <summary>The input it came from, the target of errors about it.</summary>
    public object Source { get; }
    public string FileName { get; }

    /// <summary>Whether <paramref name="name"/> is this scene's file, under any seed.</summary>
    public bool IsSavedAs(string name) => savedName.IsMatch(name);

    /// <summary>What a host is handed (plain types: a hashtable arrives as one).</summary>
    public Hashtable ToRemote() => new() { ["Index"] = Index, ["Parameters"] = Parameters };

    public string Describe() => string.Create(CultureInfo.InvariantCulture, $"Scene {Index} ('{Prompt}', seed {Seed})");
}
