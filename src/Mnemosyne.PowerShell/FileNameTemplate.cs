using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>
/// A file name made from a scene's settings, such as '{seed}-{prompt}.png'. Values are reduced to
/// characters that are safe in file names on every system and in PowerShell paths (no wildcards),
/// and the name is kept short enough for any file system.
/// </summary>
internal sealed partial class FileNameTemplate
{
    public const string Default = "{seed}-{prompt}.png";
    private const int MaxValueLength = 80;
    private const int MaxNameLength = 180;
    private const string Extension = ".png";

    /// <summary>{index} is written with at least this many digits, as A1111 numbers its files ('00001-…').</summary>
    private const string IndexFormat = "D5";

    private static readonly Dictionary<string, Func<Scene, NameContext, string>> Values = new(StringComparer.OrdinalIgnoreCase)
    {
        ["seed"] = (s, _) => s.Seed.ToString(CultureInfo.InvariantCulture),
        ["prompt"] = (s, _) => s.Prompt,
        ["negative"] = (s, _) => s.NegativePrompt ?? "",
        ["steps"] = (s, _) => s.Steps.ToString(CultureInfo.InvariantCulture),
        ["scheduler"] = (s, _) => s.Scheduler.ToString(),
        ["guidance"] = (s, _) => s.GuidanceScale.ToString("0.###", CultureInfo.InvariantCulture),
        ["width"] = (s, _) => s.Width.ToString(CultureInfo.InvariantCulture),
        ["height"] = (s, _) => s.Height.ToString(CultureInfo.InvariantCulture),
        ["reference"] = (s, _) => s.ReferenceName ?? "",
        ["model"] = (s, _) => s.Model,
        ["index"] = (_, c) => c.Index.ToString(IndexFormat, CultureInfo.InvariantCulture),
        ["date"] = (_, c) => c.Time.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        ["time"] = (_, c) => c.Time.ToString("HHmmss", CultureInfo.InvariantCulture),
    };

    private static readonly HashSet<string> ReservedNames = new(StringComparer.OrdinalIgnoreCase)
    {
        "CON", "PRN", "AUX", "NUL",
        "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    };

    private readonly string template;

    private FileNameTemplate(string template) => this.template = template;

    public static string KnownNames => string.Join(", ", Values.Keys.Select(k => "{" + k + "}"));

    /// <exception cref="ArgumentException">The template names an unknown value, has an unpaired brace or holds a folder separator.</exception>
    public static FileNameTemplate Parse(string template)
    {
        if (template.IndexOfAny(['/', '\\']) >= 0)
            throw new ArgumentException($"The name template '{template}' holds a folder separator; give the folder with -Directory and only a file name here.", nameof(template));
        foreach (Match token in TokenPattern().Matches(template))
        {
            if (!Values.ContainsKey(token.Groups[1].Value))
                throw new ArgumentException($"The name template '{template}' uses {token.Value}, which is not a scene setting. Use {KnownNames}.", nameof(template));
        }
        var outside = TokenPattern().Replace(template, "");
        if (outside.IndexOfAny(['{', '}']) is var brace and >= 0)
            throw new ArgumentException($"The name template '{template}' has a '{outside[brace]}' without its pair; write each setting in braces, as in {{seed}}-{{prompt}}.png.", nameof(template));
        if (Clean(TokenPattern().Replace(template, "x")).Length == 0)
            throw new ArgumentException($"The name template '{template}' makes no usable file name.", nameof(template));
        return new FileNameTemplate(template);
    }

    /// <summary>Whether the names hold {index}, whose numbering continues from the files already in the folder.</summary>
    public bool HasIndex => TokenPattern().Matches(template).Any(m => m.Groups[1].Value.Equals("index", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// The highest {index} among <paramref name="fileNames"/> that this template could have made (0 when none), so that a
    /// second run into the same folder goes on from there. The other values match anything.
    /// </summary>
    public long HighestIndex(IEnumerable<string> fileNames)
    {
        var pattern = new StringBuilder("^");
        int at = 0;
        foreach (Match token in TokenPattern().Matches(template))
        {
            pattern.Append(LiteralPattern(template[at..token.Index]));
            pattern.Append(token.Groups[1].Value.Equals("index", StringComparison.OrdinalIgnoreCase) ? @"(?<index>\d{1,18})" : ".*?");
            at = token.Index + token.Length;
        }
        var tail = template[at..];
        if (tail.EndsWith(Extension, StringComparison.OrdinalIgnoreCase)) tail = tail[..^Extension.Length];
        pattern.Append(LiteralPattern(tail)).Append(@"\.png$");
        var regex = new Regex(pattern.ToString(), RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
        long highest = 0;
        foreach (var name in fileNames)
        {
            if (regex.Match(name) is { Success: true } match && long.TryParse(match.Groups["index"].Value, CultureInfo.InvariantCulture, out var index))
                highest = Math.Max(highest, index);
        }
        return highest;
    }

    /// <summary>A literal part of the template as <see cref="Clean"/> leaves it: its kept characters, any other run as an optional '-'.</summary>
    private static string LiteralPattern(string literal)
    {
        var pattern = new StringBuilder();
        foreach (var c in literal.Normalize(NormalizationForm.FormC))
        {
            if (char.IsLetterOrDigit(c) || c is '_' or '.') pattern.Append(Regex.Escape(c.ToString()));
            else if (!pattern.ToString().EndsWith("-?", StringComparison.Ordinal)) pattern.Append("-?");
        }
        return pattern.ToString();
    }

    /// <param name="index">The scene's number for {index}: from 1 in a new folder, else after the highest there (<see cref="HighestIndex"/>).</param>
    /// <param name="time">The local time for {date} and {time}.</param>
    public string Format(Scene scene, long index, DateTime time)
    {
        var context = new NameContext(index, time);
        var name = TokenPattern().Replace(template, m => Truncate(Clean(Values[m.Groups[1].Value](scene, context)), MaxValueLength));
        name = Clean(name);
        var stem = name.EndsWith(Extension, StringComparison.OrdinalIgnoreCase) ? name[..^Extension.Length] : name;
        stem = Truncate(stem.TrimEnd('-', '.', '_'), MaxNameLength);
        if (stem.Length == 0) stem = "scene";
        if (ReservedNames.Contains(stem.Split('.')[0])) stem = "_" + stem;
        return stem + Extension;
    }

    /// <summary>A value as a name template writes it into a file name (Invoke-MnemosyneBatch's prompt part); empty when nothing of it is usable.</summary>
    public static string Value(string value) => Truncate(Clean(value), MaxValueLength);

    /// <summary>Letters, digits, '-', '_' and '.' stay; every other run of characters becomes one '-'.</summary>
    private static string Clean(string value)
    {
        var text = new StringBuilder(value.Length);
        foreach (var c in value.Normalize(NormalizationForm.FormC))
        {
            var keep = char.IsLetterOrDigit(c) || c is '-' or '_' or '.';
            if (keep) text.Append(c);
            else if (text.Length > 0 && text[^1] != '-') text.Append('-');
        }
        return RepeatedDashes().Replace(text.ToString(), "-").Trim('-', '.', ' ');
    }

    private static string Truncate(string value, int length) => value.Length <= length ? value : value[..length].TrimEnd('-', '.');

    private readonly record struct NameContext(long Index, DateTime Time);

    [GeneratedRegex(@"\{([^{}]*)\}")]
    private static partial Regex TokenPattern();

    [GeneratedRegex("-{2,}")]
    private static partial Regex RepeatedDashes();
}
