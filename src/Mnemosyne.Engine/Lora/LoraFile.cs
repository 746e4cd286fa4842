using System.Security.Cryptography;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Lora;

/// <summary>The network a LoRA layer changes.</summary>
public enum LoraTarget
{
    Unet,
    TextEncoder,
    TextEncoder2,
}

/// <summary>
/// One layer of a LoRA: ΔW = (alpha / rank) · up · down, for the module <see cref="Module"/> of <see cref="Target"/>
/// as the file names it (kohya: the module path with '_' for '.'; diffusers/PEFT: the dotted module path).
/// </summary>
/// <param name="Down">[rank, in] or [rank, in, kh, kw].</param>
/// <param name="Up">[out, rank] or [out, rank, 1, 1].</param>
/// <param name="Alpha">The file's alpha; null scales by 1 (alpha = rank).</param>
public sealed record LoraLayer(LoraTarget Target, string Module, bool KohyaName, TensorInfo Down, TensorInfo Up, float? Alpha)
{
    public long Rank => Down.Shape[0];

    /// <summary>The factor of up · down before the user's weight.</summary>
    public float Scale => Alpha is { } alpha ? alpha / Rank : 1f;
}

/// <summary>
/// A LoRA file in one of the layouts people download: kohya/sd-scripts (<c>lora_unet_*</c>, <c>lora_te1_*</c>,
/// <c>lora_te2_*</c> with <c>lora_down</c>/<c>lora_up</c>/<c>alpha</c>) or diffusers/PEFT (<c>unet.*</c>,
/// <c>text_encoder.*</c>, <c>text_encoder_2.*</c> with <c>lora_A</c>/<c>lora_B</c>, or the older
/// <c>lora.down</c>/<c>lora.up</c>). Other kinds (LyCORIS LoHa/LoKr, DoRA, an SD 1.x/2.x LoRA with one text
/// encoder) are refused here, naming what they are. Keeps the file open until disposed.
/// </summary>
public sealed class LoraFile : IDisposable
{
    private static readonly (string Prefix, LoraTarget Target)[] KohyaPrefixes =
        [("lora_unet_", LoraTarget.Unet), ("lora_te1_", LoraTarget.TextEncoder), ("lora_te2_", LoraTarget.TextEncoder2)];

    private static readonly (string Prefix, LoraTarget Target)[] DiffusersPrefixes =
        [("unet.", LoraTarget.Unet), ("text_encoder.", LoraTarget.TextEncoder), ("text_encoder_2.", LoraTarget.TextEncoder2)];

    private static readonly (string Suffix, bool Up)[] Factors =
        [(".lora_down.weight", false), (".lora_up.weight", true), (".lora_A.weight", false), (".lora_B.weight", true),
         (".lora.down.weight", false), (".lora.up.weight", true)];

    private LoraFile(SafetensorsFile file, IReadOnlyList<LoraLayer> layers)
    {
        File = file;
        Layers = layers;
    }

    public SafetensorsFile File { get; }

    public string Path => File.Path;

    /// <summary>The file's name without extension, as A1111 names a LoRA.</summary>
    public string Name => System.IO.Path.GetFileNameWithoutExtension(Path);

    public IReadOnlyList<LoraLayer> Layers { get; }

    public static LoraFile Open(string path)
    {
        var file = SafetensorsFile.Open(path);
        try
        {
            return new LoraFile(file, ReadLayers(file));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A1111's short hash of a LoRA (its "Lora hashes"): the first 12 hex digits of the SHA-256 of the file's data
    /// section, the header left out (sd-webui-additional-networks' hash, which A1111 uses for .safetensors).
    /// </summary>
    public string ShortHash()
    {
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        stream.Seek(File.DataStart, SeekOrigin.Begin);
        return Convert.ToHexString(SHA256.HashData(stream))[..12].ToLowerInvariant();
    }

    private static List<LoraLayer> ReadLayers(SafetensorsFile file)
    {
        var path = file.Path;
        var keys = file.Tensors.Keys.ToList();
        if (keys.Count == 0) throw new CheckpointException($"{path} holds no tensors, so it is not a LoRA.", path);
        string? Find(Func<string, bool> test) => keys.FirstOrDefault(test);

        if (Find(k => k.Contains(".hada_", StringComparison.Ordinal)) is { } hada)
            throw Refused(path, hada, "a LyCORIS LoHa, not a LoRA; the engine applies LoRAs only (kohya or diffusers/PEFT lora_down/lora_up or lora_A/lora_B)");
        if (Find(k => k.Contains(".lokr_", StringComparison.Ordinal)) is { } lokr)
            throw Refused(path, lokr, "a LyCORIS LoKr, not a LoRA; the engine applies LoRAs only (kohya or diffusers/PEFT lora_down/lora_up or lora_A/lora_B)");
        if (Find(k => k.Contains("dora_scale", StringComparison.Ordinal) || k.Contains("lora_magnitude_vector", StringComparison.Ordinal)) is { } dora)
            throw Refused(path, dora, "a DoRA (weight-decomposed LoRA), which the engine does not apply");
        if (Find(k => k.Contains(".lora_mid.", StringComparison.Ordinal)) is { } mid)
            throw Refused(path, mid, "a LyCORIS LoCon with a Tucker-decomposed middle (lora_mid), which the engine does not apply");
        if (Find(k => k.StartsWith("lora_te_", StringComparison.Ordinal)) is { } te)
            throw Refused(path, te, "a LoRA for Stable Diffusion 1.x/2.x (one text encoder, lora_te_), not for SDXL");

        var groups = new Dictionary<(LoraTarget, string, bool), (TensorInfo? Down, TensorInfo? Up, float? Alpha)>();
        foreach (var key in keys)
        {
            var (target, rest, kohya) = Split(path, key);
            string module;
            var part = Factors.FirstOrDefault(f => rest.EndsWith(f.Suffix, StringComparison.Ordinal));
            if (part.Suffix is not null) module = rest[..^part.Suffix.Length];
            else if (rest.EndsWith(".alpha", StringComparison.Ordinal)) module = rest[..^".alpha".Length];
            else throw Refused(path, key, "another kind of network (a LoRA holds only lora_down/lora_up/alpha or lora_A/lora_B per layer)");
            var id = (target, module, kohya);
            groups.TryGetValue(id, out var group);
            var info = file[key];
            if (part.Suffix is null)
            {
                if (info.ElementCount != 1) throw Refused(path, key, $"an alpha of shape {info.ShapeText}, where a LoRA has one number");
                group.Alpha = file.ReadFloat32(key)[0];
            }
            else if (part.Up) group.Up = info;
            else group.Down = info;
            groups[id] = group;
        }

        var layers = new List<LoraLayer>();
        foreach (var ((target, module, kohya), group) in groups)
        {
            if (group.Down is not { } down || group.Up is not { } up)
                throw new CheckpointException($"{path}: layer '{module}' has {(group.Down is null ? "no down (A)" : "no up (B)")} matrix: the file is incomplete or damaged.", path, module);
            if (down.Shape.Length is not (2 or 4) || up.Shape.Length != down.Shape.Length || up.Shape[1] != down.Shape[0] || up.Shape.Skip(2).Any(d => d != 1) || down.Shape[0] < 1)
                throw new CheckpointException(
                    $"{path}: layer '{module}' has down {down.ShapeText} and up {up.ShapeText}, which do not make a LoRA's low-rank product: the file is damaged or another kind of network.", path, module);
            layers.Add(new LoraLayer(target, module, kohya, down, up, group.Alpha));
        }
        return layers;
    }

    private static (LoraTarget Target, string Remainder, bool Kohya) Split(string path, string key)
    {
        foreach (var (prefix, target) in KohyaPrefixes)
            if (key.StartsWith(prefix, StringComparison.Ordinal)) return (target, key[prefix.Length..], true);
        foreach (var (prefix, target) in DiffusersPrefixes)
            if (key.StartsWith(prefix, StringComparison.Ordinal)) return (target, key[prefix.Length..], false);
        throw Refused(path, key, "something other than an SDXL LoRA (whose tensors are named lora_unet_/lora_te1_/lora_te2_ by kohya, unet./text_encoder./text_encoder_2. by diffusers)");
    }

    private static CheckpointException Refused(string path, string key, string what)
        => new($"{path} is not a LoRA the engine can apply: its tensor '{key}' makes it {what}.", path, key);

    public void Dispose() => File.Dispose();
}
