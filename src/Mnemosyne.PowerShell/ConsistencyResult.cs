using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>How close a picture is to a character: the cosine similarity of their CLIP image embeddings (CLIP-I).</summary>
public sealed class ConsistencyResult
{
    internal ConsistencyResult(string reference, double similarity, Scene scene)
        : this(reference, similarity, scene.Path, scene.Prompt, scene.Seed, scene.ReferenceName is null ? null : scene.ReferenceWeight) => Scene = scene;

    internal ConsistencyResult(string reference, double similarity, string? path, string? prompt, long? seed, float? referenceWeight)
    {
        Reference = reference;
        Similarity = similarity;
        Path = path;
        Prompt = prompt;
        Seed = seed;
        ReferenceWeight = referenceWeight;
    }

    /// <summary>The character's name.</summary>
    public string Reference { get; }
    /// <summary>From -1 to 1; higher means the picture's subject looks more like the reference.</summary>
    public double Similarity { get; }
    /// <summary>The PNG measured, or the file a measured scene was saved to; null for a scene only in memory.</summary>
    public string? Path { get; }
    /// <summary>The scene's prompt, or the one a PNG's settings text records.</summary>
    public string? Prompt { get; }
    public long? Seed { get; }
    /// <summary>How strongly the scene followed its reference; null for one made without a reference.</summary>
    public float? ReferenceWeight { get; }
    /// <summary>The scene measured, to save or use again; null for a picture measured from a file.</summary>
    public Scene? Scene { get; }
}
