using Mnemosyne.Engine.Text;

namespace Mnemosyne.Engine.Tests.Text;

/// <summary>Loading rules, on tiny tokenizer folders written to a temporary directory.</summary>
public sealed class ClipTokenizerFolderTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "mnemosyne-tokenizer-" + Guid.NewGuid().ToString("N"));

    public ClipTokenizerFolderTests()
    {
        // Byte-level symbols for "a", "b" and "!" alone and word-final, one merge, CLIP's special tokens.
        Directory.CreateDirectory(folder);
        Write("vocab.json", """
            {"!": 0, "a": 1, "b": 2, "!</w>": 3, "a</w>": 4, "b</w>": 5, "ab</w>": 6, "<|startoftext|>": 7, "<|endoftext|>": 8}
            """);
        Write("merges.txt", "#version: 0.2\na b</w>\n");
        Write("special_tokens_map.json", """{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!"}""");
        Write("tokenizer_config.json", """{"model_max_length": 6, "pad_token": "<|endoftext|>"}""");
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private void Write(string name, string text) => File.WriteAllText(Path.Combine(folder, name), text);

    [Fact]
    public void EncodesWithTheFoldersTokensAndLength()
    {
        var tokenizer = ClipTokenizer.Load(folder);
        Assert.Equal((7, 8, 0, 6), (tokenizer.BosId, tokenizer.EosId, tokenizer.PadId, tokenizer.MaxLength));
        Assert.Equal([7, 6, 0, 4, 8, 0], tokenizer.Encode("AB!a").Ids);
        var truncated = tokenizer.Encode("ab a b ab");
        Assert.Equal([7, 6, 4, 5, 6, 8], truncated.Ids);
        Assert.Equal((4, 0), (truncated.TokenCount, truncated.DroppedTokenCount));
        Assert.Equal((5, 1), (tokenizer.Encode("ab a b ab a").TokenCount, tokenizer.Encode("ab a b ab a").DroppedTokenCount));
    }

    [Fact]
    public void TakesSpecialTokensFromTheConfigWhenTheMapIsAbsent()
    {
        File.Delete(Path.Combine(folder, "special_tokens_map.json"));
        Write("tokenizer_config.json", """{"pad_token": {"__type": "AddedToken", "content": "<|endoftext|>"}}""");
        var tokenizer = ClipTokenizer.Load(folder);
        Assert.Equal((8, 77), (tokenizer.PadId, tokenizer.MaxLength));
        Assert.Equal([7, 4, 3, 8, 8], tokenizer.Encode("a!").Ids[..5]);
    }

    [Fact]
    public void ReadsAChangedFolderAgain()
    {
        var before = ClipTokenizer.Load(folder);
        Write("special_tokens_map.json", """{"pad_token": "<|endoftext|>"}""");
        var after = ClipTokenizer.Load(folder);
        Assert.NotSame(before, after);
        Assert.Equal((0, 8), (before.PadId, after.PadId));
    }

    [Theory]
    [InlineData("vocab.json")]
    [InlineData("merges.txt")]
    public void NamesAMissingFile(string name)
    {
        File.Delete(Path.Combine(folder, name));
        var e = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.Load(folder));
        Assert.Equal(Path.Combine(folder, name), e.FileName);
        Assert.Contains(name, e.Message);
    }

    [Fact]
    public void NeedsOneOfTheSpecialTokenFiles()
    {
        File.Delete(Path.Combine(folder, "special_tokens_map.json"));
        File.Delete(Path.Combine(folder, "tokenizer_config.json"));
        var e = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.Load(folder));
        Assert.Contains("special_tokens_map.json", e.Message);
        Assert.Contains("tokenizer_config.json", e.Message);
    }

    [Fact]
    public void NamesAMissingFolder()
    {
        var missing = Path.Combine(folder, "tokenizer_3");
        var e = Assert.Throws<DirectoryNotFoundException>(() => ClipTokenizer.Load(missing));
        Assert.Contains(missing, e.Message);
    }

    [Theory]
    [InlineData("vocab.json", "[1, 2]", "vocab.json is not a JSON object")]
    [InlineData("vocab.json", "{}", "vocab.json holds no tokens")]
    [InlineData("merges.txt", "#version: 0.2\na  b\n", "merges.txt, line 2")]
    [InlineData("merges.txt", "#version: 0.2\n", "merges.txt holds no merges")]
    [InlineData("merges.txt", "#version: 0.2\nb a</w>\n", "merges.txt does not fit")]
    [InlineData("special_tokens_map.json", "{\"pad_token\": \"<pad>\"}", "pad_token \"<pad>\" is not in")]
    [InlineData("special_tokens_map.json", "{\"pad_token\": 5}", "pad_token must be a string")]
    [InlineData("special_tokens_map.json", "{\"pad_token\": ", "special_tokens_map.json is not valid JSON")]
    [InlineData("tokenizer_config.json", "{\"model_max_length\": 1e30}", "model_max_length must be an integer from 3 to 77")]
    public void NamesABadFile(string name, string text, string expected)
    {
        Write(name, text);
        var e = Assert.Throws<InvalidDataException>(() => ClipTokenizer.Load(folder));
        Assert.Contains(expected, e.Message);
    }
}
