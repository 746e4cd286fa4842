using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// The layout AUTOMATIC1111's web UI writes a picture's settings in (its "infotext", the PNG <c>parameters</c> text),
/// which Forge, ComfyUI's importer and model sites read: the prompt's lines, then a line "Negative prompt: …" when there
/// is one, then one line of "Key: value" pairs joined by ", ". A value holding a comma, a colon or a line break is
/// written as a JSON string (A1111's quote()). Reading follows A1111's parse_generation_parameters: the last line holds
/// the pairs only when at least three pairs are found in it, and every prompt line is trimmed.
/// </summary>
public static partial class Infotext
{
    private const string NegativePromptLabel = "Negative prompt:";

    /// <summary>The text of a prompt, an optional negative prompt and the settings, in A1111's layout.</summary>
    /// <param name="negativePrompt">null: no negative prompt line (A1111 also leaves out an empty one; Mnemosyne writes "" as
    /// an empty line, since an empty negative prompt is encoded while a missing one is zeros).</param>
    public static string Format(string prompt, string? negativePrompt, IEnumerable<KeyValuePair<string, string>> settings)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(settings);
        var text = new StringBuilder(prompt);
        if (negativePrompt is not null) text.Append('\n').Append(NegativePromptLabel).Append(' ').Append(negativePrompt);
        text.Append('\n').AppendJoin(", ", settings.Select(pair => pair.Key + ": " + Quote(pair.Value)));
        return text.ToString();
    }

    /// <summary>A value as A1111 writes it: as is, or as a JSON string when it holds a comma, a colon or a line break.</summary>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.IndexOfAny([',', ':', '\n']) < 0) return value;
        // Python's json.dumps(ensure_ascii=False): only the quote, the backslash and control characters are escaped.
        var quoted = new StringBuilder("\"", value.Length + 2);
        foreach (char c in value)
        {
            quoted.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                < ' ' => string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => c.ToString(),
            });
        }
        return quoted.Append('"').ToString();
    }

    /// <summary>A value as A1111 reads it: a JSON string is decoded; anything else (or a string that is not valid JSON) is kept as it is.</summary>
    public static string Unquote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length < 2 || value[0] != '"' || value[^1] != '"') return value;
        try
        {
            return JsonSerializer.Deserialize<string>(value) ?? value;
        }
        catch (JsonException)
        {
            return value;
        }
    }

    /// <summary>
    /// The prompt, the negative prompt (null when there is no "Negative prompt:" line) and the settings, in order and
    /// unquoted, as A1111 reads them (a key given twice keeps its last value there; both are returned here).
    /// </summary>
    public static (string Prompt, string? NegativePrompt, IReadOnlyList<KeyValuePair<string, string>> Settings) Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Trim().Split('\n');
        var pairs = Pair().Matches(lines[^1]).ToList();
        int promptLines = lines.Length - 1;
        if (pairs.Count < 3)
        {
            promptLines = lines.Length;
            pairs = [];
        }

        var prompt = new StringBuilder();
        StringBuilder? negative = null;
        foreach (var raw in lines.AsSpan(0, promptLines))
        {
            var line = raw.Trim();
            if (line.StartsWith(NegativePromptLabel, StringComparison.Ordinal))
            {
                negative ??= new StringBuilder();
                line = line[NegativePromptLabel.Length..].Trim();
            }
            var target = negative ?? prompt;
            if (target.Length > 0) target.Append('\n');
            target.Append(line);
        }

        var settings = pairs.Select(m => KeyValuePair.Create(m.Groups[1].Value, Unquote(m.Groups[2].Value))).ToList();
        return (prompt.ToString(), negative?.ToString(), settings);
    }

    /// <summary>
    /// A1111's re_param: a key of word characters, spaces, hyphens and slashes; a JSON string or anything up to the next
    /// comma. Without backtracking: the text comes from untrusted files, and a long line without a colon would take
    /// the backtracking engine time quadratic in its length.
    /// </summary>
    [GeneratedRegex("""\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)""", RegexOptions.NonBacktracking)]
    private static partial Regex Pair();
}
