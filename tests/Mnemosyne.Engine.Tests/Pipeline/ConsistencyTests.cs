using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Tests.Pipeline;

public sealed class ConsistencyTests
{
    [Theory]
    [InlineData(new float[] { 1, 2, 3 }, new float[] { 2, 4, 6 }, 1.0)]
    [InlineData(new float[] { 1, 2, 3 }, new float[] { -1, -2, -3 }, -1.0)]
    [InlineData(new float[] { 1, 0 }, new float[] { 0, 5 }, 0.0)]
    [InlineData(new float[] { 3, 4 }, new float[] { 4, 3 }, 0.96)]
    [InlineData(new float[] { 1, 1, 0, 0 }, new float[] { 1, 0, 0, 0 }, 0.70710678118654752)]
    public void Cosine_similarity_matches_the_hand_computed_value(float[] a, float[] b, double expected)
        => Assert.Equal(expected, Consistency.CosineSimilarity(a, b), 12);

    [Fact]
    public void Ignores_scale_and_stays_exact_for_long_embeddings()
    {
        var a = Enumerable.Range(0, 1024).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        var scaled = a.Select(v => v * 1000f).ToArray();
        Assert.Equal(1.0, Consistency.CosineSimilarity(a, scaled), 6);
    }

    [Fact]
    public void Refuses_embeddings_of_different_encoders()
    {
        var e = Assert.Throws<ArgumentException>(() => Consistency.CosineSimilarity(new float[1024], new float[768]));
        Assert.Contains("1024", e.Message);
        Assert.Contains("768", e.Message);
    }

    [Fact]
    public void Refuses_a_zero_embedding()
        => Assert.Throws<ArgumentException>(() => Consistency.CosineSimilarity(new float[] { 0, 0 }, new float[] { 1, 0 }));
}
