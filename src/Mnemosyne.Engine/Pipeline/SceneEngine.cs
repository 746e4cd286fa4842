using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// The open engine: SDXL's networks, the IP-Adapter and the caches of prompt and reference
/// encodings. Thread-safe: scenes are made one at a time.
/// </summary>
public sealed class SceneEngine : IDisposable
{
    private SceneEngine(EngineOptions options) => Options = options;

    public EngineOptions Options { get; }

    /// <summary>A short name for the checkpoint (its folder name), stored with every scene.</summary>
    public string ModelName => Path.GetFileName(Path.TrimEndingDirectorySeparator(Options.CheckpointPath));

    public bool SupportsReferences => Options.IpAdapterPath is not null;

    public static SceneEngine Open(EngineOptions options, IProgress<string>? log = null, CancellationToken cancellation = default)
        => throw new NotImplementedException();

    /// <summary>Encodes one or more images of one character; their embeddings are averaged.</summary>
    public CharacterReference EncodeReference(IReadOnlyList<string> imagePaths, string? name = null, CancellationToken cancellation = default)
        => throw new NotImplementedException();

    /// <summary>The CLIP image embedding of a picture, for identity-consistency measures.</summary>
    public float[] EmbedImage(RgbPixels image, CancellationToken cancellation = default)
        => throw new NotImplementedException();

    public Scene Generate(SceneRequest request, IProgress<SceneProgress>? progress = null, CancellationToken cancellation = default)
        => throw new NotImplementedException();

    public void Dispose()
    {
    }
}
