namespace Mnemosyne.Engine.Pipeline;

/// <summary>Identity consistency: how close a picture's CLIP image embedding is to a character's (CLIP-I).</summary>
public static class Consistency
{
    /// <summary>Cosine similarity, from -1 to 1; 1 means the same direction. Summed in double so long embeddings lose nothing.</summary>
    public static double CosineSimilarity(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"The embeddings have different lengths ({a.Length} and {b.Length}); they come from different image encoders and cannot be compared.", nameof(b));
        double dot = 0, normA = 0, normB = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            normA += (double)a[i] * a[i];
            normB += (double)b[i] * b[i];
        }
        if (normA == 0 || normB == 0 || !double.IsFinite(dot))
            throw new ArgumentException("An embedding is all zeros or not finite, so it has no direction to compare.", normA == 0 ? nameof(a) : nameof(b));
        return Math.Clamp(dot / (Math.Sqrt(normA) * Math.Sqrt(normB)), -1, 1);
    }
}
