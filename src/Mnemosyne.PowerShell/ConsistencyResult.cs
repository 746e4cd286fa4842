namespace Mnemosyne.PowerShell;

/// <summary>How close a picture is to a character: the cosine similarity of their CLIP image embeddings (CLIP-I).</summary>
public sealed class ConsistencyResult
{
    internal ConsistencyResult(string reference, double similarity, string? path, string? prompt, long? seed)
    {
        Reference = reference;
        Similarity = similarity;
        Path = path;
        Prompt = prompt;
        Seed = seed;
    }

    /// <summary>The character's name.</summary>
    public string Reference { get; }
    /// <summary>From -1 to 1; higher means the picture's subject looks more like the reference.</summary>
    public double Similarity { get; }
    /// <summary>The PNG measured, or null for a scene measured in memory.</summary>
    public string? Path { get; }
    public string? Prompt { get; }
    public long? Seed { get; }
}
