using System.Buffers;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Mnemosyne.Engine.Text;

/// <summary>
/// CLIP's prompt clean-up (OpenAI's simple_tokenizer: ftfy.fix_text, HTML unescaping twice,
/// whitespace runs to one space, trim, Python's lower-case), written for .NET.
/// </summary>
/// <remarks>
/// Of ftfy's default fixes this applies the ones that are plain character mappings and matter
/// for typed or pasted prompts: Latin ligatures (ﬁ → fi), full/half-width forms (Ａ → A,
/// U+3000 → space), curly quotes (’ → ') and removal of control characters (ftfy's list: C0
/// except tab/line breaks, DEL, U+206A–206F, BOM, U+FFF9–FFFC), then NFC. It does not guess
/// at mojibake (ftfy's fix_encoding, C1 controls as Windows-1252) or strip terminal escape
/// sequences. The fidelity fixtures were made with an ftfy stand-in that only does NFC; their
/// prompts avoid every character these fixes touch, so both agree on them.
/// HTML entities are decoded by <see cref="WebUtility.HtmlDecode(string)"/>, which, unlike
/// Python's html.unescape, needs the closing ';' and knows the HTML 4 names only (ftfy, which
/// transformers' CLIPTokenizer relies on, also needs the ';', but skips text holding a '&lt;').
/// </remarks>
internal sealed class ClipTextNormalizer : Normalizer
{
    public static ClipTextNormalizer Instance { get; } = new();

    private const char GreekCapitalSigma = '\u03A3';
    private const char GreekSmallFinalSigma = '\u03C2';
    private const char LatinCapitalIWithDotAbove = '\u0130';

    private static readonly Dictionary<char, string> FtfyCharacterFixes = BuildFtfyCharacterFixes();
    private static readonly SearchValues<char> FtfyFixedCharacters = SearchValues.Create(FtfyCharacterFixes.Keys.ToArray());

    public override string Normalize(string original) => Clean(original);

    public override string Normalize(ReadOnlySpan<char> original) => Clean(original.ToString());

    private static string Clean(string text)
    {
        // Entities first, as ftfy decodes them before its other fixes: &rsquo; is uncurled too.
        text = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text));
        text = ApplyFtfyCharacterFixes(text).Normalize(NormalizationForm.FormC);
        return LowerCaseLikePython(CollapseWhitespace(text));
    }

    private static string ApplyFtfyCharacterFixes(string text)
    {
        if (!text.AsSpan().ContainsAny(FtfyFixedCharacters)) return text;
        var fixedText = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            if (FtfyCharacterFixes.TryGetValue(c, out var replacement)) fixedText.Append(replacement);
            else fixedText.Append(c);
        }
        return fixedText.ToString();
    }

    private static Dictionary<char, string> BuildFtfyCharacterFixes()
    {
        var fixes = new Dictionary<char, string>
        {
            // Latin ligatures and legacy digraphs (ftfy's LIGATURES); ŉ's apostrophe is then uncurled too.
            ['Ĳ'] = "IJ", ['ĳ'] = "ij", ['ŉ'] = "'n",
            ['Ǳ'] = "DZ", ['ǲ'] = "Dz", ['ǳ'] = "dz", ['Ǆ'] = "DŽ", ['ǅ'] = "Dž", ['ǆ'] = "dž",
            ['Ǉ'] = "LJ", ['ǈ'] = "Lj", ['ǉ'] = "lj", ['Ǌ'] = "NJ", ['ǋ'] = "Nj", ['ǌ'] = "nj",
            ['ﬀ'] = "ff", ['ﬁ'] = "fi", ['ﬂ'] = "fl", ['ﬃ'] = "ffi", ['ﬄ'] = "ffl", ['ﬅ'] = "ſt", ['ﬆ'] = "st",
            ['\u3000'] = " ",
            ['\u02BC'] = "'",
        };
        // Full- and half-width forms become their NFKC equivalents, as ftfy's width map does.
        for (char c = '\uFF01'; c <= '\uFFEF'; c++)
        {
            var standard = c.ToString().Normalize(NormalizationForm.FormKC);
            if (standard != c.ToString()) fixes[c] = standard;
        }
        for (char c = '\u2018'; c <= '\u201B'; c++) fixes[c] = "'";
        for (char c = '\u201C'; c <= '\u201F'; c++) fixes[c] = "\"";
        foreach (var (first, last) in new (char, char)[]
                 {
                     ('\u0000', '\u0008'), ('\u000B', '\u000B'), ('\u000E', '\u001F'), ('\u007F', '\u007F'),
                     ('\u206A', '\u206F'), ('\uFEFF', '\uFEFF'), ('\uFFF9', '\uFFFC'),
                 })
        {
            for (char c = first; c <= last; c++) fixes[c] = "";
        }
        return fixes;
    }

    /// <summary>Python's re.sub(r'\s+', ' ', text).strip(); .NET's white space is the same set.</summary>
    private static string CollapseWhitespace(string text)
    {
        var collapsed = new StringBuilder(text.Length);
        bool pendingSpace = false;
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.IsWhiteSpace(rune))
            {
                pendingSpace = collapsed.Length > 0;
                continue;
            }
            if (pendingSpace) collapsed.Append(' ');
            pendingSpace = false;
            collapsed.Append(rune.ToString());
        }
        return collapsed.ToString();
    }

    /// <summary>
    /// Python's str.lower(): .NET's invariant mapping agrees on every code point except İ, which
    /// Python lowers to i + combining dot, and Σ, which Python lowers to ς at the end of a word.
    /// </summary>
    private static string LowerCaseLikePython(string text)
    {
        var lower = text.ToLowerInvariant();
        if (text.AsSpan().IndexOfAny(LatinCapitalIWithDotAbove, GreekCapitalSigma) < 0) return lower;

        var result = new StringBuilder(text.Length + 4);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == LatinCapitalIWithDotAbove) result.Append("i\u0307");
            else if (text[i] == GreekCapitalSigma && IsFinalSigma(text, i)) result.Append(GreekSmallFinalSigma);
            else result.Append(lower[i]);
        }
        return result.ToString();
    }

    /// <summary>Unicode's Final_Sigma context: a cased letter before it and none after, skipping case-ignorables.</summary>
    private static bool IsFinalSigma(string text, int index) =>
        IsCased(NearestNotCaseIgnorable(text.AsSpan(0, index), backwards: true))
        && !IsCased(NearestNotCaseIgnorable(text.AsSpan(index + 1), backwards: false));

    private static Rune? NearestNotCaseIgnorable(ReadOnlySpan<char> span, bool backwards)
    {
        while (!span.IsEmpty)
        {
            int used;
            Rune rune;
            if (backwards) Rune.DecodeLastFromUtf16(span, out rune, out used);
            else Rune.DecodeFromUtf16(span, out rune, out used);
            if (!IsCaseIgnorable(rune)) return rune;
            span = backwards ? span[..^used] : span[used..];
        }
        return null;
    }

    /// <summary>Unicode's Cased: upper-, lower- and title-case letters plus the few other characters with a case (ª, º, Ⅻ, Ⓐ, 🅐).</summary>
    private static bool IsCased(Rune? rune) =>
        rune is { } cased
        && (Rune.GetUnicodeCategory(cased) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            || cased.Value is 0xAA or 0xBA or (>= 0x2160 and <= 0x217F) or (>= 0x24B6 and <= 0x24E9)
                or (>= 0x1F130 and <= 0x1F149) or (>= 0x1F150 and <= 0x1F169) or (>= 0x1F170 and <= 0x1F189));

    /// <summary>Unicode's Case_Ignorable: marks, format characters, modifiers and the in-word punctuation.</summary>
    private static bool IsCaseIgnorable(Rune rune) =>
        Rune.GetUnicodeCategory(rune) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || rune.Value is '\'' or '.' or ':' or '\u00B7' or '\u0387' or '\u055F' or '\u05F4' or '\u2018' or '\u2019' or '\u2024' or '\u2027'
            or '\uFE13' or '\uFE52' or '\uFE55' or '\uFF07' or '\uFF0E' or '\uFF1A';
}
