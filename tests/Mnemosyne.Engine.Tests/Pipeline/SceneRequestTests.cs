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

    /// <summary>
    /// diffusers' SDXLCFGCutoffCallback turns guidance off after step int(num_timesteps * cutoff_step_ratio), in
    /// Python's doubles: 10 × 0.7 is 7.000000000000001 there, so 8 steps are guided (a float 0.7 widened to double would give 7).
    /// </summary>
    [Theory]
    [InlineData(6, 5f, 1.0, 6)]
    [InlineData(6, 5f, 0.9, 6)]
    [InlineData(6, 5f, 0.4, 3)]
    [InlineData(6, 5f, 0.0, 1)]
    [InlineData(10, 5f, 0.7, 8)]
    [InlineData(20, 5f, 0.4, 9)]
    [InlineData(6, 1f, 0.4, 0)]
    [InlineData(6, 0f, 1.0, 0)]
    public void GuidesTheStepsUpToTheCutoffAsDiffusersCountsThem(int steps, float guidance, double cutoff, int guided)
        => Assert.Equal(guided, (Request() with { Steps = steps, GuidanceScale = guidance, GuidanceCutoff = cutoff }).GuidedSteps);

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.01)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void RefusesACutoffOutsideZeroToOne(double cutoff)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => (Request() with { GuidanceCutoff = cutoff }).Validate());
        Assert.Equal(nameof(SceneRequest.GuidanceCutoff), e.ParamName);
        Assert.Contains("from 0 to 1", e.Message);
    }
}
