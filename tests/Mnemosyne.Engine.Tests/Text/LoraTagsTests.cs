using Mnemosyne.Engine.Text;

namespace Mnemosyne.Engine.Tests.Text;

public sealed class LoraTagsTests
{
    [Fact]
    public void TakesEveryTagOutAndLeavesTheTextAroundItAsA1111Does()
    {
        var (prompt, tags) = LoraTags.Extract("a portrait of kira <lora:kira:0.8>, film grain<lora:styles/film:-0.5> <lora:lightning>");
        // A1111 replaces each tag by nothing: the spaces and commas around it stay.
        Assert.Equal("a portrait of kira , film grain ", prompt);
        Assert.Equal(["kira", "styles/film", "lightning"], tags.Select(t => t.Name));
        Assert.Equal([0.8f, -0.5f, 1f], tags.Select(t => t.Weight));
        Assert.Equal("<lora:styles/film:-0.5>", tags[1].Text);
    }

    [Fact]
    public void LeavesAPromptWithoutTagsAndOtherExtraNetworksAlone()
    {
        var (prompt, tags) = LoraTags.Extract("a (cat:1.2) <hypernet:x:1> <lora> lora:kira:1");
        Assert.Equal("a (cat:1.2) <hypernet:x:1> <lora> lora:kira:1", prompt);
        Assert.Empty(tags);
    }

    [Theory]
    [InlineData("<lora:kira: 0.75 >", 0.75f)]
    [InlineData("<lora:kira:1e-1>", 0.1f)]
    [InlineData("<lora:kira:0>", 0f)]
    [InlineData("<lora:kira:-2>", -2f)]
    public void ReadsWeightsAsNumbers(string tag, float weight) =>
        Assert.Equal(weight, Assert.Single(LoraTags.Extract($"a cat {tag}").Tags).Weight);

    [Theory]
    [InlineData("<lora:kira:strong>", "'strong' is not a number")]
    [InlineData("<lora:kira:nan>", "'nan' is not a number")]
    [InlineData("<lora::0.8>", "names no LoRA")]
    [InlineData("<lora:kira:0.8:0.5>", "separate text-encoder and UNet weights")]
    public void RefusesABadTagNamingIt(string tag, string reason)
    {
        var e = Assert.Throws<LoraTagException>(() => LoraTags.Extract($"a cat <lora:ok:1> {tag}, sky"));
        Assert.Equal(tag, e.Tag);
        Assert.Contains(reason, e.Message);
        Assert.StartsWith(tag, e.Message);
    }
}
