using System.Text.Json;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Sampling;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public class TorchGeneratorTests
{
    private sealed record RandnCase(ulong Seed, int[] Shape, string File);

    /// <summary>The repository's torch.randn draws (tests/reference/torch-randn), and ../shared's where present.</summary>
    public static TheoryData<string> Sources()
    {
        var data = new TheoryData<string> { Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "torch-randn") };
        if (TestPaths.HasTorchRandn) data.Add(TestPaths.TorchRandn);
        return data;
    }

    private static IReadOnlyList<RandnCase> Cases(string source)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(source, "manifest.json")));
        return manifest.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new RandnCase(
                c.GetProperty("seed").GetUInt64(),
                c.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(),
                c.GetProperty("file").GetString()!))
            .ToList();
    }

    private static float[] ReadReference(string source, string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(source, file));
        var values = new float[bytes.Length / sizeof(float)];
        for (int i = 0; i < values.Length; i++) values[i] = BitConverter.ToSingle(bytes, i * sizeof(float));
        return values;
    }

    private static float[] Reference(string source, ulong seed, int count) =>
        ReadReference(source, Cases(source).Single(c => c.Seed == seed && c.Shape.Aggregate(1, (a, b) => a * b) == count).File);

    private static void AssertBitwiseEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, torch gives {expected[i]:R}.");
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void EveryReferenceFileMatchesBitForBit(string source)
    {
        var cases = Cases(source);
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            var expected = ReadReference(source, c.File);
            Assert.Equal(c.Shape.Aggregate(1, (a, b) => a * b), expected.Length);
            AssertBitwiseEqual(expected, new TorchGenerator(c.Seed).Randn(c.Shape), c.File);
        }
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void SuccessiveBlockDrawsContinueTheStream(string source)
    {
        // As diffusers draws initial latents, then a latent-shaped noise per step: torch's blocks of 16
        // are positional, so 256 then 24320 values are the two parts of one 24576-value draw.
        var expected = Reference(source, 0, 24576);
        var generator = new TorchGenerator(0);
        AssertBitwiseEqual(expected.AsSpan(0, 256), generator.Randn(1, 4, 8, 8), "first draw");
        AssertBitwiseEqual(expected.AsSpan(256), generator.Randn(24320), "second draw");
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void TheCachedSmallDrawSurvivesABlockDraw(string source)
    {
        // Under 16 elements torch keeps the second value of each Box–Muller pair in the generator;
        // a block draw in between neither uses nor clears it, so the next small draw starts with it.
        var expected = Reference(source, 0, 15);
        var generator = new TorchGenerator(0);
        var first = generator.Randn(3);
        generator.Randn(20);
        var next = generator.Randn(1);
        AssertBitwiseEqual(expected.AsSpan(0, 4), [.. first, .. next], "3 + 1 values around a block draw");
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void SuccessiveSmallDrawsContinueThePairs(string source)
    {
        var expected = Reference(source, 42, 15);
        var generator = new TorchGenerator(42);
        AssertBitwiseEqual(expected, [.. generator.Randn(3), .. generator.Randn(12)], "3 then 12 values");
    }

    [Theory]
    [MemberData(nameof(Sources))]
    public void OnlyTheLow32BitsOfTheSeedMatter(string source)
    {
        var expected = Reference(source, 4294967303, 100);
        AssertBitwiseEqual(expected, new TorchGenerator(7).Randn(100), "seed 7 against seed 2^32 + 7");
    }

    [Fact]
    public void FillNormalDependsOnTheCountNotTheShape()
    {
        var flat = new float[96];
        new TorchGenerator(3).FillNormal(flat);
        Assert.Equal(flat, new TorchGenerator(3).Randn(2, 3, 16));
    }

    [Fact]
    public void EmptyShapesDrawNothing()
    {
        var generator = new TorchGenerator(11);
        Assert.Empty(generator.Randn(0, 4));
        Assert.Equal(new TorchGenerator(11).Randn(5), generator.Randn(5));
    }

    [Fact]
    public void RefusesANegativeDimension()
    {
        var e = Assert.Throws<ArgumentException>(() => new TorchGenerator(0).Randn(4, -1));
        Assert.Contains("[4, -1]", e.Message);
    }
}
