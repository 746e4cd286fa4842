using Mnemosyne.Engine.Text;

namespace Mnemosyne.Engine.Tests.Text;

public sealed class PromptSyntaxTests
{
    private static (string Text, double Weight)[] Parse(string prompt) =>
        PromptSyntax.Parse(prompt).Select(p => p.IsBreak ? ("BREAK", double.NaN) : (p.Text, p.Weight)).ToArray();

    private static void AssertPieces(string prompt, params (string Text, double Weight)[] expected)
    {
        var actual = Parse(prompt);
        Assert.Equal(expected.Select(e => e.Text), actual.Select(a => a.Text));
        for (int i = 0; i < expected.Length; i++)
        {
            if (double.IsNaN(expected[i].Weight)) Assert.True(double.IsNaN(actual[i].Weight), $"piece {i} should be a BREAK");
            else Assert.Equal(expected[i].Weight, actual[i].Weight, 12);
        }
    }

    /// <summary>A1111's own examples (parse_prompt_attention's docstring), piece for piece.</summary>
    [Fact]
    public void ReadsA1111sExamples()
    {
        AssertPieces("normal text", ("normal text", 1));
        AssertPieces("an (important) word", ("an ", 1), ("important", 1.1), (" word", 1));
        AssertPieces("(unbalanced", ("unbalanced", 1.1));
        AssertPieces(@"\(literal\]", ("(literal]", 1));
        AssertPieces("(unnecessary)(parens)", ("unnecessaryparens", 1.1));
        AssertPieces("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            ("a ", 1), ("house", 1.3 * 1.1 * 1.1), (" ", 1.1), ("on", 1), (" a ", 1.1), ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.1 * 1.1 * 1.1 * 1.1), (".", 1.1));
    }

    [Fact]
    public void MultipliesNestedWeightsInTheOrderTheBracketsClose()
    {
        AssertPieces("((word))", ("word", 1.1 * 1.1));
        AssertPieces("[word]", ("word", 1 / 1.1));
        AssertPieces("[[word]]", ("word", 1 / 1.1 / 1.1));
        AssertPieces("(word:1.3)", ("word", 1.3));
        AssertPieces("((word:1.3))", ("word", 1.3 * 1.1));
        AssertPieces("[(word:0.5)]", ("word", 0.5 / 1.1));
        AssertPieces("(word:-1)", ("word", -1));
        AssertPieces("(word:+.5)", ("word", 0.5));
        AssertPieces("(word:2.)", ("word", 2));
    }

    [Fact]
    public void EscapedBracketsAndBackslashesAreText()
    {
        AssertPieces(@"\(word\)", ("(word)", 1));
        AssertPieces(@"\[word\]", ("[word]", 1));
        AssertPieces(@"a \\ b", (@"a \ b", 1));
        AssertPieces(@"(\(word\))", ("(word)", 1.1));
        // A backslash before anything else is dropped, as A1111 drops it.
        AssertPieces(@"a\b", ("ab", 1));
        AssertPieces(@"end\", ("end", 1));
    }

    [Fact]
    public void UnbalancedBracketsAreReadAsA1111ReadsThem()
    {
        // Left open: everything after the bracket, to the end of the prompt.
        AssertPieces("a (cat in a hat", ("a ", 1), ("cat in a hat", 1.1));
        AssertPieces("a [[cat", ("a ", 1), ("cat", 1 / 1.1 / 1.1));
        AssertPieces("((a cat) hat", ("a cat", 1.1 * 1.1), (" hat", 1.1));
        // Closing nothing: text.
        AssertPieces("a cat) in a hat]", ("a cat) in a hat]", 1));
        // A ) closes the innermost (, whatever [ lies between.
        AssertPieces("(a [b) c]", ("a ", 1.1), ("b", 1.1 / 1.1), (" c", 1 / 1.1));
        AssertPieces("a :1.5) b", ("a :1.5) b", 1));
    }

    [Fact]
    public void AWeightThatIsNoNumberIsText()
    {
        AssertPieces("(word:abc)", ("word:abc", 1.1));
        AssertPieces("(word:)", ("word:", 1.1));
        // A1111 stops with a Python error on these; here they are text too.
        AssertPieces("(word:1.2.3)", ("word:1.2.3", 1.1));
        AssertPieces("(word:.)", ("word:.", 1.1));
        AssertPieces("ratio 16:9", ("ratio 16:9", 1));
    }

    [Fact]
    public void AllowsWhiteSpaceAroundTheWeight()
    {
        AssertPieces("(word: 1.3 )", ("word", 1.3));
        AssertPieces("(word :1.3)", ("word ", 1.3));
    }

    [Fact]
    public void BreakIsAnUpperCaseWordOfItsOwn()
    {
        AssertPieces("a castle BREAK a dragon", ("a castle", 1), ("BREAK", double.NaN), ("a dragon", 1));
        AssertPieces("BREAK", ("", 1), ("BREAK", double.NaN), ("", 1));
        AssertPieces("a BREAK BREAK b", ("a", 1), ("BREAK", double.NaN), ("", 1), ("BREAK", double.NaN), ("b", 1));
        AssertPieces("a break b BREAKING BREAK_x xBREAK", ("a break b BREAKING BREAK_x xBREAK", 1));
        AssertPieces("a,BREAK,b", ("a,", 1), ("BREAK", double.NaN), (",b", 1));
        // Inside brackets it still breaks, and the bracket weights the text on both sides.
        AssertPieces("(a BREAK b)", ("a", 1.1), ("BREAK", double.NaN), ("b", 1.1));
    }

    [Fact]
    public void AnEmptyPromptIsOneEmptyPiece()
    {
        AssertPieces("", ("", 1));
        AssertPieces("()", ("", 1));
        AssertPieces("[]()", ("", 1));
    }

    [Fact]
    public void KeepsEmptyPiecesOfOtherWeightsBetweenText()
    {
        // Each piece is tokenized alone, so "a" and "b" must not join into "ab".
        AssertPieces(@"a(\x)b", ("a", 1), ("x", 1.1), ("b", 1));
        AssertPieces("a(BREAK)b", ("a", 1), ("", 1.1), ("BREAK", double.NaN), ("", 1.1), ("b", 1));
    }
}
