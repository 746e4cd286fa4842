using System.Text.Json;
using Mnemosyne.Engine.Text;

namespace Mnemosyne.Engine.Tests.Text;

/// <summary>A test that needs the fidelity tokenizers and the given reference file in tests/reference/.</summary>
public sealed class ReferenceCasesFactAttribute : FactAttribute
{
    public ReferenceCasesFactAttribute(string fileName)
    {
        var path = ClipTokenizerTests.ReferencePath(fileName);
        if (!TestPaths.HasFidelity) Skip = $"{TestPaths.Fidelity} is absent: the tokenizer files live in ../shared beside the checkout.";
        else if (!File.Exists(path)) Skip = $"{path} is absent: the reference harness writes it.";
    }
}

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public class ClipTokenizerTests
{
    private const int Bos = 49406;
    private const int Eos = 49407;
    private const int WordId = 2653; // "word</w>"
    private const int AId = 320; // "a</w>"

    private static string TokenizerFolder(string name) => Path.Combine(TestPaths.FidelityModel, name);

    internal static string ReferencePath(string fileName) => Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", fileName);

    [FidelityFact]
    public void MatchesTheFidelityTokenizerCases() =>
        AssertMatchesReference(Path.Combine(TestPaths.Fidelity, "tokenizer-cases.json"), minimumPrompts: 21);

    [ReferenceCasesFact("tokenizer-cases-extra.json")]
    public void MatchesTheExtraTokenizerCases() =>
        AssertMatchesReference(ReferencePath("tokenizer-cases-extra.json"), minimumPrompts: 40);

    /// <summary>Every prompt of a reference file, through both SDXL tokenizers, gives the reference ids.</summary>
    private static void AssertMatchesReference(string casesPath, int minimumPrompts)
    {
        using var cases = JsonDocument.Parse(File.ReadAllBytes(casesPath));
        var prompts = cases.RootElement.GetProperty("prompts").EnumerateArray().ToList();
        Assert.True(prompts.Count >= minimumPrompts, $"{casesPath} has {prompts.Count} prompts, expected at least {minimumPrompts}.");

        var mismatches = new List<string>();
        foreach (var name in new[] { "tokenizer", "tokenizer_2" })
        {
            var tokenizer = ClipTokenizer.Load(TokenizerFolder(name));
            foreach (var reference in prompts)
            {
                var prompt = reference.GetProperty("prompt").GetString()!;
                var expected = reference.GetProperty(name).EnumerateArray().Select(id => id.GetInt32()).ToArray();
                var actual = tokenizer.Encode(prompt).Ids;
                if (!expected.SequenceEqual(actual))
                    mismatches.Add($"{name} {JsonSerializer.Serialize(prompt)}:\n  expected {string.Join(' ', expected)}\n  actual   {string.Join(' ', actual)}");
            }
        }
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
    }

    [FidelityFact]
    public void ReadsEachFoldersSpecialTokens()
    {
        var first = ClipTokenizer.Load(TokenizerFolder("tokenizer"));
        var second = ClipTokenizer.Load(TokenizerFolder("tokenizer_2"));
        Assert.Equal((Bos, Eos, Eos, "<|endoftext|>", 77), (first.BosId, first.EosId, first.PadId, first.PadToken, first.MaxLength));
        Assert.Equal((Bos, Eos, 0, "!", 77), (second.BosId, second.EosId, second.PadId, second.PadToken, second.MaxLength));
    }

    [FidelityFact]
    public void PadsWithTheFoldersPadId()
    {
        int[] body = [Bos, AId, 1125, Eos]; // "a photo"
        var first = ClipTokenizer.Load(TokenizerFolder("tokenizer")).Encode("A  Photo ");
        var second = ClipTokenizer.Load(TokenizerFolder("tokenizer_2")).Encode("A  Photo ");
        Assert.Equal([.. body, .. Enumerable.Repeat(Eos, 73)], first.Ids);
        Assert.Equal([.. body, .. Enumerable.Repeat(0, 73)], second.Ids);
        Assert.Equal((2, 0), (first.TokenCount, first.DroppedTokenCount));
    }

    [FidelityFact]
    public void AnEmptyPromptIsBosEosAndPadding()
    {
        var encoded = ClipTokenizer.Load(TokenizerFolder("tokenizer_2")).Encode(" \t\n ");
        Assert.Equal([Bos, Eos, .. Enumerable.Repeat(0, 75)], encoded.Ids);
        Assert.Equal((0, 0), (encoded.TokenCount, encoded.DroppedTokenCount));
    }

    [FidelityFact]
    public void TruncatesToSeventyFiveTokensAndCountsTheDropped()
    {
        var tokenizer = ClipTokenizer.Load(TokenizerFolder("tokenizer"));
        var encoded = tokenizer.Encode(string.Join(' ', Enumerable.Repeat("word", 100)));
        Assert.Equal(100, encoded.TokenCount);
        Assert.Equal(25, encoded.DroppedTokenCount);
        Assert.Equal([Bos, .. Enumerable.Repeat(WordId, 75), Eos], encoded.Ids);

        Assert.Equal((75, 0), Counts(tokenizer.Encode(string.Join(' ', Enumerable.Repeat("a", 75)))));
        Assert.Equal((76, 1), Counts(tokenizer.Encode(string.Join(' ', Enumerable.Repeat("a", 76)))));
        Assert.Equal(Eos, tokenizer.Encode(string.Join(' ', Enumerable.Repeat("a", 76))).Ids[^1]);

        static (int, int) Counts(TokenizedText t) => (t.TokenCount, t.DroppedTokenCount);
    }

    [FidelityFact]
    public void TokenizerTwoTurnsEveryExclamationMarkIntoItsPadId()
    {
        // transformers splits "!" (tokenizer_2's registered pad token) out before BPE; tokenizer 1 BPE-encodes it.
        var first = ClipTokenizer.Load(TokenizerFolder("tokenizer"));
        var second = ClipTokenizer.Load(TokenizerFolder("tokenizer_2"));
        Assert.Equal([Bos, 2781, 748, Eos], first.Encode("wow!!").Ids[..4]);
        Assert.Equal([Bos, 2781, 0, 0, Eos], second.Encode("wow!!").Ids[..5]);
        Assert.Equal([Bos, 1883, 256, 997, Eos], first.Encode("hi!there").Ids[..5]);
        Assert.Equal([Bos, 1883, 0, 997, Eos], second.Encode("hi!there").Ids[..5]);
        Assert.Equal(3, second.Encode("hi!there").TokenCount);
    }

    [FidelityFact]
    public void CleansPromptsAsFtfyDoes()
    {
        // Fixes the reference's NFC-only ftfy stand-in does not make; real ftfy (transformers' path) does.
        var tokenizer = ClipTokenizer.Load(TokenizerFolder("tokenizer"));
        int[] Ids(string text) => tokenizer.Encode(text).Ids;
        Assert.Equal(Ids("\"don't\" 'go'"), Ids("\u201Cdon\u2019t\u201D \u2018go\u2019"));
        Assert.Equal(Ids("fish flower"), Ids("\uFB01sh \uFB02ower"));
        Assert.Equal(Ids("full width!"), Ids("\uFF26\uFF55\uFF4C\uFF4C\u3000\uFF57\uFF49\uFF44\uFF54\uFF48\uFF01"));
        Assert.Equal(Ids("abell"), Ids("a\u0007bell"));
        Assert.Equal(Ids("bom"), Ids("\uFEFFbom"));
        Assert.NotEqual(Ids("a b"), Ids("ab"));
    }

    [FidelityFact]
    public void LowerCasesAsPythonDoes()
    {
        // Python's str.lower gives ς at the end of a Greek word and i + U+0307 for İ; ids from openai/CLIP.
        var tokenizer = ClipTokenizer.Load(TokenizerFolder("tokenizer"));
        Assert.Equal([Bos, 139, 225, 138, 123, 139, 228, 138, 123, 139, 480, Eos], tokenizer.Encode("ΣΟΦΟΣ").Ids[..12]);
        Assert.Equal([Bos, 139, 225, 138, 123, 139, 228, 138, 123, 139, 481, Eos], tokenizer.Encode("σοφοσ").Ids[..12]);
        Assert.Equal([Bos, 328, 16384, 11231, Eos], tokenizer.Encode("İstanbul").Ids[..5]);
    }

    [FidelityFact]
    public void SplitsLettersOutsideTheBmpAsLetters()
    {
        // 𝐀 (U+1D400) is a letter: "𝐀bc" is one word to the reference regex, so BPE sees it whole
        // (split as "𝐀" + "bc" it would end 𝐀 with an end-of-word byte token, 478).
        var tokenizer = ClipTokenizer.Load(TokenizerFolder("tokenizer"));
        Assert.Equal([Bos, 15889, 222, 2162, Eos], tokenizer.Encode("𝐀bc").Ids[..5]);
    }

    [FidelityFact]
    public void LoadsEachFolderOnce()
    {
        Assert.Same(ClipTokenizer.Load(TokenizerFolder("tokenizer")), ClipTokenizer.Load(TokenizerFolder("tokenizer") + Path.DirectorySeparatorChar));
        Assert.NotSame(ClipTokenizer.Load(TokenizerFolder("tokenizer")), ClipTokenizer.Load(TokenizerFolder("tokenizer_2")));
    }

    [FidelityFact]
    public void RefusesAnUnpairedSurrogate()
    {
        var e = Assert.Throws<ArgumentException>(() => ClipTokenizer.Load(TokenizerFolder("tokenizer")).Encode("ab\uD800c"));
        Assert.Contains("index 2", e.Message);
    }

    [Fact]
    public void IdsAsInt64WidensEveryId()
    {
        var text = new TokenizedText([Bos, 5, Eos], 1, 0);
        Assert.Equal([Bos, 5L, Eos], text.IdsAsInt64());
    }
}
