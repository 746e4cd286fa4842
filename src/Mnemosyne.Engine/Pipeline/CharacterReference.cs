using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>One source image of a character, with its SHA-256 so provenance survives renames.</summary>
public sealed record ReferenceSource(string Path, string Sha256);

/// <summary>A picture of a character, decoded (<see cref="Imaging.SafeImageDecoder"/>), with the file it came from.</summary>
public sealed record ReferencePicture(string Path, Imaging.RgbImage Image);

/// <summary>
/// A character's "memory": the CLIP image embedding of one or more reference images (averaged), with
/// where it came from. Encoded once, reused for every scene, and savable to a small JSON file.
/// </summary>
public sealed record CharacterReference
{
    public const string FormatName = "mnemosyne-reference";
    public const int FormatVersion = 1;
    private const long MaxFileBytes = 4 * 1024 * 1024;

    public required string Name { get; init; }
    public required IReadOnlyList<ReferenceSource> Sources { get; init; }
    /// <summary>The image encoder's image_embeds (projection output), averaged over the sources.</summary>
    public required float[] Embedding { get; init; }
    /// <summary>Which encoder made the embedding: embeddings of different encoders are not comparable.</summary>
    public required string Encoder { get; init; }
    /// <summary>
    /// With pictures combined by concatenation: each picture's embedding, whose tokens the scene lays side by side in every
    /// cross-attention (diffusers' list of images for one adapter); null when the scene uses the average, <see cref="Embedding"/>.
    /// </summary>
    public float[][]? PictureEmbeddings { get; init; }
    public DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;

    private sealed record FileModel(
        string Format, int Version, string Name, string Encoder, DateTimeOffset Created,
        ReferenceSource[] Sources, float[] Embedding, float[][]? PictureEmbeddings = null);

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <exception cref="ArgumentException">The embedding holds a non-finite value, which Load would refuse.</exception>
    public void Save(Stream stream)
    {
        if (Array.FindIndex(Embedding, v => !float.IsFinite(v)) is var bad and >= 0)
            throw new ArgumentException(
                $"The reference '{Name}' holds {Embedding[bad]} at position {bad + 1} of its embedding, so it is damaged and cannot be saved (it could not be read back). " +
                "Import its pictures again with Import-MnemosyneReference.", nameof(Embedding));
        if (PictureEmbeddings?.SelectMany(e => e).Any(v => !float.IsFinite(v)) == true)
            throw new ArgumentException($"The reference '{Name}' holds a non-finite value in a picture's embedding, so it is damaged and cannot be saved. " +
                "Import its pictures again with Import-MnemosyneReference.", nameof(PictureEmbeddings));
        JsonSerializer.Serialize(stream, new FileModel(FormatName, FormatVersion, Name, Encoder, Created, Sources.ToArray(), Embedding, PictureEmbeddings), Json);
    }

    public static CharacterReference Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"Reference file not found: {path}", path);
        if (info.Length > MaxFileBytes)
            throw new InvalidDataException($"{path}: {info.Length} bytes is too large for a saved reference (at most {MaxFileBytes}); is it the right file?");
        FileModel? model;
        try
        {
            using var stream = info.OpenRead();
            model = JsonSerializer.Deserialize<FileModel>(stream, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a saved Mnemosyne reference, or the file is corrupted ({e.Message}). Export it again with Export-MnemosyneReference.", e);
        }
        if (model is null || model.Format != FormatName)
            throw new InvalidDataException($"{path}: not a saved Mnemosyne reference (format '{model?.Format}'). Export it again with Export-MnemosyneReference.");
        if (model.Version > FormatVersion)
            throw new InvalidDataException($"{path}: saved by a newer Mnemosyne (format version {model.Version}); update the module to read it.");
        if (model.Embedding is not { Length: > 0 } || model.Embedding.Any(v => !float.IsFinite(v)))
            throw new InvalidDataException($"{path}: the saved embedding is empty or holds non-finite values; the file is corrupted. Export it again.");
        if (model.PictureEmbeddings is { } pictures && (pictures.Length == 0 || pictures.Any(p => p is null || p.Length != model.Embedding.Length || p.Any(v => !float.IsFinite(v)))))
            throw new InvalidDataException($"{path}: the saved pictures' embeddings are empty, of another length than the embedding, or hold non-finite values; the file is corrupted. Export it again.");
        if (string.IsNullOrWhiteSpace(model.Encoder) || string.IsNullOrWhiteSpace(model.Name))
            throw new InvalidDataException($"{path}: the saved reference has no name or encoder; the file is corrupted. Export it again.");
        try
        {
            SceneRequest.CheckText(model.Name, nameof(Name), "saved reference's name");
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: {e.Message[..e.Message.IndexOf(" (Parameter '", StringComparison.Ordinal)]} Correct it in the file, or import the pictures again with a plain -Name.", e);
        }
        return new CharacterReference
        {
            Name = model.Name,
            Encoder = model.Encoder,
            Created = model.Created,
            Sources = model.Sources ?? [],
            Embedding = model.Embedding,
            PictureEmbeddings = model.PictureEmbeddings,
        };
    }

    public static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }
}

/// <summary>How several pictures of one character make one reference.</summary>
public enum ReferenceCombination
{
    /// <summary>Their embeddings averaged into one picture's: 4 tokens (the base adapter's), the features the pictures share.</summary>
    Average,

    /// <summary>Each picture's tokens side by side in every cross-attention (diffusers' list of images for one adapter): more detail, more tokens.</summary>
    Concatenate,
}
