namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// One PNG text chunk: a keyword (1–79 Latin-1 characters, as PNG requires) and its text. Written
/// as tEXt when the text is Latin-1, as iTXt (UTF-8) otherwise.
/// </summary>
public sealed record PngTextEntry
{
    /// <summary>The keyword A1111-style tools read the generation settings from.</summary>
    public const string ParametersKeyword = "parameters";

    public PngTextEntry(string keyword, string text)
    {
        ArgumentNullException.ThrowIfNull(keyword);
        ArgumentNullException.ThrowIfNull(text);
        if (!IsValidKeyword(keyword))
            throw new ArgumentException(
                $"'{keyword}' is not a PNG text keyword: use 1 to 79 printable Latin-1 characters, without leading, trailing or double spaces.", nameof(keyword));
        if (text.Contains('\0'))
            throw new ArgumentException($"The text for '{keyword}' contains a NUL character, which PNG text chunks cannot hold; remove it.", nameof(text));
        Keyword = keyword;
        Text = text;
    }

    public string Keyword { get; }

    public string Text { get; }

    /// <summary>The generation settings, A1111 style, under the <c>parameters</c> keyword.</summary>
    public static PngTextEntry Parameters(string text) => new(ParametersKeyword, text);

    private static bool IsValidKeyword(string keyword)
    {
        if (keyword.Length is < 1 or > 79 || keyword[0] == ' ' || keyword[^1] == ' ' || keyword.Contains("  ")) return false;
        foreach (var c in keyword)
            if (c is not ((>= ' ' and <= '~') or (>= '\u00A1' and <= '\u00FF'))) return false;
        return true;
    }
}
