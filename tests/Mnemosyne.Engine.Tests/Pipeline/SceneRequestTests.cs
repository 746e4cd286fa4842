using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Tests.Pipeline;

public class SceneRequestTests
{
    private static SceneRequest Request(string prompt = "a cat", long seed = 1) => new() { Prompt = prompt, Seed = seed, Width = 64, Height = 64 };

    [Theory]
    [InlineData(0L)]
    [InlineData(1L)]
    [InlineData(4294967295L)]
    public void TakesEverySeedPyTorchTellsApart(long seed) => Request(seed: seed).Validate();

    /// <summary>torch seeds its Mersenne Twister with the low 32 bits: 2^32 would silently repeat seed 0's picture.</summary>
    [Theory]
    [InlineData(-1L)]
    [InlineData(4294967296L)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    public void RefusesSeedsOutsideThe32BitsPyTorchUses(long seed)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Request(seed: seed).Validate());
        Assert.Equal(nameof(SceneRequest.Seed), e.ParamName);
        Assert.Equal(seed, e.ActualValue);
        Assert.Contains("from 0 to 4294967295", e.Message);
    }

    [Theory]
    [InlineData("a cat\tin a hat")]
    [InlineData("line one\nline two\r\n")]
    [InlineData("café 🐱 猫")]
    [InlineData("")]
    public void TakesTabsLineBreaksAndAnyUnicodeText(string prompt)
    {
        Request(prompt).Validate();
        (Request() with { NegativePrompt = prompt }).Validate();
    }

    [Theory]
    [InlineData("a\0cat", "U+0000 at position 2")]
    [InlineData("\u001b[31mred", "U+001B at position 1")]
    [InlineData("bell\u0007", "U+0007 at position 5")]
    [InlineData("c1\u0085", "U+0085 at position 3")]
    [InlineData("del\u007f", "U+007F at position 4")]
    public void RefusesControlCharactersNamingWhere(string prompt, string where)
    {
        var e = Assert.Throws<ArgumentException>(() => Request(prompt).Validate());
        Assert.Equal(nameof(SceneRequest.Prompt), e.ParamName);
        Assert.Contains(where, e.Message);
        Assert.Contains("remove it", e.Message);

        var negative = Assert.Throws<ArgumentException>(() => (Request() with { NegativePrompt = prompt }).Validate());
        Assert.Equal(nameof(SceneRequest.NegativePrompt), negative.ParamName);
        Assert.StartsWith("The negative prompt has", negative.Message);
    }

    /// <summary>Built at run time: attribute data cannot hold a lone surrogate (it becomes U+FFFD).</summary>
    [Theory]
    [InlineData("a", 0xD800, "cat", 2)]
    [InlineData("cat", 0xDC00, "", 4)]
    [InlineData("", 0xDC00, "\ud83d\ude00", 1)]
    public void RefusesUnpairedSurrogates(string before, int surrogate, string after, int position)
    {
        var e = Assert.Throws<ArgumentException>(() => Request(before + (char)surrogate + after).Validate());
        Assert.Contains($"unpaired UTF-16 surrogate at position {position}", e.Message);
    }
}
