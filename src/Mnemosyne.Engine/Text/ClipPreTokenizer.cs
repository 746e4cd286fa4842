using System.Text;
using Microsoft.ML.Tokenizers;

namespace Mnemosyne.Engine.Text;

/// <summary>
/// CLIP's split of cleaned text into words: the first of these that matches at each position,
/// <c>&lt;|startoftext|&gt;|&lt;|endoftext|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>,
/// with white space between words dropped.
/// </summary>
/// <remarks>
/// Written as a scan over code points rather than handed to <see cref="RegexPreTokenizer"/>:
/// .NET's Regex sees a character outside the BMP as two surrogates of category Cs, so letters
/// and digits such as 𝐀, 𝟏 or CJK Extension B would fall into the "other" class and split
/// differently from the reference, whose regex runs on code points.
/// </remarks>
internal sealed class ClipPreTokenizer(IReadOnlyList<string> specialTokens) : PreTokenizer
{
    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text.AsSpan());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text);

    private List<(int Offset, int Length)> Split(ReadOnlySpan<char> text)
    {
        var words = new List<(int Offset, int Length)>();
        int position = 0;
        while (position < text.Length)
        {
            var rest = text[position..];
            int length = MatchLiteral(rest, specialTokens) ?? MatchLiteral(rest, Contractions) ?? 0;
            if (length == 0)
            {
                var first = RuneAt(rest);
                if (Rune.IsWhiteSpace(first))
                {
                    position += first.Utf16SequenceLength;
                    continue;
                }
                if (Rune.IsLetter(first)) length = RunLength(rest, Rune.IsLetter);
                else if (Rune.IsNumber(first)) length = first.Utf16SequenceLength;
                else length = RunLength(rest, rune => !Rune.IsWhiteSpace(rune) && !Rune.IsLetter(rune) && !Rune.IsNumber(rune));
            }
            words.Add((position, length));
            position += length;
        }
        return words;
    }

    private static int? MatchLiteral(ReadOnlySpan<char> text, IReadOnlyList<string> literals)
    {
        foreach (var literal in literals)
            if (text.StartsWith(literal, StringComparison.Ordinal)) return literal.Length;
        return null;
    }

    private static int RunLength(ReadOnlySpan<char> text, Func<Rune, bool> belongs)
    {
        int length = 0;
        while (length < text.Length && RuneAt(text[length..]) is var rune && belongs(rune)) length += rune.Utf16SequenceLength;
        return length;
    }

    private static Rune RuneAt(ReadOnlySpan<char> text)
    {
        Rune.DecodeFromUtf16(text, out var rune, out _);
        return rune;
    }
}
