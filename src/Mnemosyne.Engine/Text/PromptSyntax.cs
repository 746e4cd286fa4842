using System.Globalization;
using System.Text.RegularExpressions;

namespace Mnemosyne.Engine.Text;

/// <summary>A run of prompt text and the weight its tokens' states are multiplied by, or a BREAK.</summary>
/// <param name="Text">The text, escapes resolved; empty for a BREAK (and for the pieces A1111 keeps empty).</param>
/// <param name="Weight">1 for plain text, 1.1 per enclosing ( ), ÷1.1 per [ ], w for (text:w).</param>
/// <param name="IsBreak">A BREAK: the text after it starts a new 75-token chunk.</param>
public readonly record struct PromptPiece(string Text, double Weight, bool IsBreak = false)
{
    public static PromptPiece Break => new("", 1, true);
}

/// <summary>
/// AUTOMATIC1111's emphasis syntax, read as its parse_prompt_attention reads it:
/// <c>(text)</c> multiplies the weight by 1.1, <c>[text]</c> divides it by 1.1, <c>(text:w)</c> multiplies it by w,
/// nesting multiplies; <c>\(</c> <c>\)</c> <c>\[</c> <c>\]</c> <c>\\</c> are the characters themselves;
/// <c>BREAK</c> (upper case, a word of its own) ends the chunk.
/// </summary>
/// <remarks>
/// Bad input is read, never refused, as A1111 reads it: a bracket left open weights everything after it to the end
/// of the prompt; a <c>)</c> or <c>]</c> that closes nothing, a <c>:</c> not followed by a number and <c>)</c>, and a
/// backslash before any other character are text (A1111 drops that lone backslash: so does this); <c>(word:abc)</c>
/// is the text <c>word:abc</c> at 1.1. Where this differs from A1111, on purpose: a number that is no number
/// (<c>(word:1.2.3)</c>, <c>(word:.)</c>), where A1111 stops with a Python error, is text like <c>abc</c>; white space
/// around the number (<c>(word: 1.3 )</c>) is allowed; and a BREAK inside brackets still breaks (A1111's bracket
/// weight turns its marker into the word "BREAK" encoded at a negative weight). Prompt editing
/// (<c>[a:b:0.5]</c>) and alternation (<c>[a|b]</c>) are not supported: their brackets are emphasis, the rest text.
/// </remarks>
public static class PromptSyntax
{
    public const double RoundBracketFactor = 1.1;
    public const double SquareBracketFactor = 1 / 1.1;

    private const string SpecialCharacters = "\\()[]:";
    private static readonly Regex BreakWord = new(@"\s*\bBREAK\b\s*", RegexOptions.CultureInvariant);
    private static readonly Regex Weight = new(@"\G:\s*([+-]?[.0-9]+)\s*\)", RegexOptions.CultureInvariant);

    /// <summary>
    /// The prompt as pieces of text with their weights, in order; neighbouring pieces of the same weight merged
    /// (each piece is tokenized on its own, as A1111 does). An empty prompt is one empty piece.
    /// </summary>
    public static IReadOnlyList<PromptPiece> Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var pieces = new List<PromptPiece>();
        var round = new Stack<int>();
        var square = new Stack<int>();

        void Multiply(int from, double factor)
        {
            for (int i = from; i < pieces.Count; i++)
                if (!pieces[i].IsBreak) pieces[i] = pieces[i] with { Weight = pieces[i].Weight * factor };
        }

        int position = 0;
        while (position < prompt.Length)
        {
            char c = prompt[position];
            switch (c)
            {
                case '\\':
                    bool escapes = position + 1 < prompt.Length && prompt[position + 1] is '(' or ')' or '[' or ']' or '\\';
                    pieces.Add(new PromptPiece(escapes ? prompt[position + 1].ToString() : "", 1));
                    position += escapes ? 2 : 1;
                    continue;
                case '(':
                    round.Push(pieces.Count);
                    break;
                case '[':
                    square.Push(pieces.Count);
                    break;
                case ')' when round.Count > 0:
                    Multiply(round.Pop(), RoundBracketFactor);
                    break;
                case ']' when square.Count > 0:
                    Multiply(square.Pop(), SquareBracketFactor);
                    break;
                case ':' when Weight.Match(prompt, position) is { Success: true } weight:
                    // Without an open bracket A1111 keeps the whole ":1.3)" as text.
                    if (round.Count == 0) pieces.Add(new PromptPiece(weight.Value, 1));
                    else if (ParseNumber(weight.Groups[1].Value) is { } factor) Multiply(round.Pop(), factor);
                    else
                    {
                        pieces.Add(new PromptPiece(":", 1));
                        position++;
                        continue;
                    }
                    position += weight.Length;
                    continue;
                case ')' or ']' or ':':
                    pieces.Add(new PromptPiece(c.ToString(), 1));
                    break;
                default:
                    int end = prompt.AsSpan(position).IndexOfAny(SpecialCharacters);
                    end = end < 0 ? prompt.Length : position + end;
                    AddText(pieces, prompt[position..end]);
                    position = end;
                    continue;
            }
            position++;
        }

        // Brackets left open weight everything after them: round ones first, then square, each from the outermost.
        foreach (var start in round.Reverse()) Multiply(start, RoundBracketFactor);
        foreach (var start in square.Reverse()) Multiply(start, SquareBracketFactor);
        if (pieces.Count == 0) pieces.Add(new PromptPiece("", 1));
        return Merge(pieces);
    }

    private static void AddText(List<PromptPiece> pieces, string text)
    {
        var parts = BreakWord.Split(text);
        for (int i = 0; i < parts.Length; i++)
        {
            if (i > 0) pieces.Add(PromptPiece.Break);
            pieces.Add(new PromptPiece(parts[i], 1));
        }
    }

    /// <summary>Python's float() of the digits and dots the pattern took: null where they are no number ("1.2.3", ".").</summary>
    private static double? ParseNumber(string text) =>
        double.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static List<PromptPiece> Merge(List<PromptPiece> pieces)
    {
        var merged = new List<PromptPiece>(pieces.Count);
        foreach (var piece in pieces)
        {
            if (merged.Count > 0 && !piece.IsBreak && merged[^1] is { IsBreak: false } last && last.Weight == piece.Weight)
            {
                merged[^1] = last with { Text = last.Text + piece.Text };
                continue;
            }
            merged.Add(piece);
        }
        return merged;
    }
}
