using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>One source image of a character, with its SHA-256 so provenance survives renames.</summary>
public sealed record ReferenceSource(string Path, string Sha256);

/// <summary>A picture of a character, decoded (<see cref="Imaging.SafeImageDecoder"/>), with the file it came from.</summary>
public sealed record ReferencePicture(string Path, Imaging.RgbImage Image);

/// <summary>
/// A character's "memory": the CLIP image embedding of one or more reference images (averaged), with
/// where it came from. Encoded once, reused for every scene, and savable to a small JSON file. A reference
/// made by an IP-Adapter Plus engine also keeps the encoder's penultimate hidden states (averaged), which
/// the Plus adapters' resampler reads; format version 2 records the kind, version 1 files are base references.
/// </summary>
public sealed record CharacterReference
{
    public const string FormatName = "mnemosyne-reference";
    public const int FormatVersion = 2;
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
    /// <summary>The kind of IP-Adapter whose engine made the reference: only an engine with the same kind uses it.</summary>
    public IpAdapterKind AdapterKind { get; init; } = IpAdapterKind.Base;
    /// <summary>For <see cref="IpAdapterKind.Plus"/>: the image encoder's penultimate hidden states [tokens, hidden], averaged over the sources; else null.</summary>
    public FloatTensor? HiddenStates { get; init; }

    /// <summary>
    /// The hidden states are kept as base64 of little-endian float32 (1.3 MB at ViT-H's 257 × 1280, 1.75 MB as text):
    /// as JSON numbers they would pass the file cap.
    /// </summary>
    private sealed record FileModel(
        string Format, int Version, string Name, string Encoder, DateTimeOffset Created,
        ReferenceSource[] Sources, float[] Embedding, string? AdapterKind = null, int[]? HiddenStatesShape = null, string? HiddenStates = null,
        float[][]? PictureEmbeddings = null);

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
        if (HiddenStates is { } states && Array.FindIndex(states.Data, v => !float.IsFinite(v)) is var badState and >= 0)
            throw new ArgumentException(
                $"The reference '{Name}' holds {states.Data[badState]} at position {badState + 1} of its hidden states, so it is damaged and cannot be saved (it could not be read back). " +
                "Import its pictures again with Import-MnemosyneReference.", nameof(HiddenStates));
        if (PictureEmbeddings?.SelectMany(e => e).Any(v => !float.IsFinite(v)) == true)
            throw new ArgumentException($"The reference '{Name}' holds a non-finite value in a picture's embedding, so it is damaged and cannot be saved. " +
                "Import its pictures again with Import-MnemosyneReference.", nameof(PictureEmbeddings));
        JsonSerializer.Serialize(stream, new FileModel(FormatName, FormatVersion, Name, Encoder, Created, Sources.ToArray(), Embedding,
            AdapterKind.ToString().ToLowerInvariant(), HiddenStates?.Shape, HiddenStates is null ? null : Convert.ToBase64String(LittleEndianBytes(HiddenStates.Data)),
            PictureEmbeddings), Json);
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
        var (kind, hiddenStates) = model.Version < 2 ? (IpAdapterKind.Base, null) : ReadAdapterSide(path, model);
        return new CharacterReference
        {
            Name = model.Name,
            Encoder = model.Encoder,
            Created = model.Created,
            Sources = model.Sources ?? [],
            Embedding = model.Embedding,
            AdapterKind = kind,
            HiddenStates = hiddenStates,
            PictureEmbeddings = model.PictureEmbeddings,
        };
    }

    /// <summary>Version 2's adapter kind and, for Plus, the hidden states, checked as the embedding is.</summary>
    private static (IpAdapterKind, FloatTensor?) ReadAdapterSide(string path, FileModel model)
    {
        var kinds = Enum.GetValues<IpAdapterKind>();
        if (Array.FindIndex(kinds, k => string.Equals(k.ToString(), model.AdapterKind, StringComparison.OrdinalIgnoreCase)) is not (>= 0 and var found))
            throw new InvalidDataException($"{path}: the saved reference's adapter kind '{model.AdapterKind}' is none of {string.Join(", ", Enum.GetNames<IpAdapterKind>().Select(n => n.ToLowerInvariant()))}; the file is corrupted. Export it again.");
        var kind = kinds[found];
        if (kind == IpAdapterKind.Base)
        {
            if (model.HiddenStates is not null)
                throw new InvalidDataException($"{path}: a base reference holds hidden states, which only Plus references have; the file is corrupted. Export it again.");
            return (kind, null);
        }
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(model.HiddenStates ?? throw new FormatException("they are missing"));
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{path}: the saved hidden states of this Plus reference are missing or not base64 ({e.Message}); the file is corrupted. Export it again.", e);
        }
        if (model.HiddenStatesShape is not [> 0, > 0] shape || bytes.Length != 4L * shape[0] * shape[1])
            throw new InvalidDataException($"{path}: the saved hidden states hold {bytes.Length / 4} values, not the [tokens, features] their shape [{string.Join(", ", model.HiddenStatesShape ?? [])}] says; the file is corrupted. Export it again.");
        var values = new float[bytes.Length / 4];
        for (int i = 0; i < values.Length; i++) values[i] = BitConverter.ToSingle(LittleEndian(bytes, i * 4));
        if (values.Any(v => !float.IsFinite(v)))
            throw new InvalidDataException($"{path}: the saved hidden states hold non-finite values; the file is corrupted. Export it again.");
        return (kind, new FloatTensor(values, shape));
    }

    private static byte[] LittleEndianBytes(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), values[i]);
        if (!BitConverter.IsLittleEndian)
            for (int i = 0; i < bytes.Length; i += 4) bytes.AsSpan(i, 4).Reverse();
        return bytes;
    }

    private static ReadOnlySpan<byte> LittleEndian(byte[] bytes, int offset)
    {
        if (BitConverter.IsLittleEndian) return bytes.AsSpan(offset, 4);
        var copy = bytes.AsSpan(offset, 4).ToArray();
        Array.Reverse(copy);
        return copy;
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
