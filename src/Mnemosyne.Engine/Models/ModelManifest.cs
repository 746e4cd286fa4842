using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Models;

/// <summary>What a model is for in the pipeline.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ModelRole>))]
public enum ModelRole
{
    /// <summary>A whole diffusers pipeline folder (text encoders, UNet, VAE, tokenizers, scheduler).</summary>
    Pipeline,
    /// <summary>IP-Adapter weights (image projection + attention processors).</summary>
    IpAdapter,
    /// <summary>The CLIP vision encoder an IP-Adapter reads embeddings from.</summary>
    ImageEncoder,
    /// <summary>A UNet that replaces the pipeline's own (e.g. a few-step distillation).</summary>
    Unet,
    /// <summary>A tiny distilled latent decoder (TAESDXL): fast drafts and live previews.</summary>
    TinyDecoder,
    /// <summary>A LoRA file (-Lora takes it by name); one with a scheduler is a speed LoRA whose sampling -Quality Fast takes.</summary>
    Lora,
}

/// <summary>One file of a model: its path in the repository, and its size and SHA-256 where known.</summary>
public sealed record ModelFile(string Path, long? Size, string? Sha256);

/// <summary>Sampling settings a model requires (SDXL-Lightning 4-step: Euler, trailing spacing, 4 steps, no guidance; LCM-LoRA: LCM, 4 steps, guidance 1).</summary>
public sealed record SchedulerSettings
{
    [JsonConverter(typeof(JsonStringEnumConverter<SchedulerKind>))]
    public required SchedulerKind Kind { get; init; }

    /// <summary>diffusers' timestep_spacing: "leading", "trailing" or "linspace"; null keeps the scheduler config's (LCM, which picks its own timesteps).</summary>
    public string? TimestepSpacing { get; init; }

    /// <summary><see cref="TimestepSpacing"/> as the engine's enum.</summary>
    [JsonIgnore]
    public TimestepSpacing? Spacing => TimestepSpacing is null ? null : Enum.Parse<TimestepSpacing>(TimestepSpacing, ignoreCase: true);

    public required int Steps { get; init; }

    public required float GuidanceScale { get; init; }
}

/// <summary>
/// A model Mnemosyne knows: which Hugging Face repository and revision it comes from, and which
/// files of it are needed. Read from the JSON files in the repository's models/ folder.
/// </summary>
public sealed partial record ModelManifest
{
    public required string Name { get; init; }

    public required string Description { get; init; }

    public required ModelRole Role { get; init; }

    /// <summary>"org/name" on the hub.</summary>
    public required string Repository { get; init; }

    /// <summary>A 40-hex commit hash, or a branch name such as "main".</summary>
    public required string Revision { get; init; }

    /// <summary>The file or folder in the snapshot that the engine opens; "" is the snapshot folder itself.</summary>
    public string Entry { get; init; } = "";

    /// <summary>"fp16" where the files are diffusers' *.fp16.safetensors variant.</summary>
    public string? Variant { get; init; }

    /// <summary>The model whose other components this one is used with.</summary>
    public string? BaseModel { get; init; }

    public string? Licence { get; init; }

    public string? Notes { get; init; }

    public SchedulerSettings? Scheduler { get; init; }

    public required IReadOnlyList<ModelFile> Files { get; init; }

    /// <summary>The manifest file this was read from, for error messages.</summary>
    [JsonIgnore]
    public string? SourcePath { get; init; }

    /// <summary>The sum of the files' sizes; null while any size is unknown.</summary>
    [JsonIgnore]
    public long? SizeBytes => Files.Any(file => file.Size is null) ? null : Files.Sum(file => file.Size!.Value);

    /// <summary>True when <see cref="Revision"/> names one commit rather than a branch or tag.</summary>
    [JsonIgnore]
    public bool IsPinned => HubNames.IsCommitHash(Revision);

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
    };

    public static ModelManifest Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model manifest not found: {path}", path);
        ModelManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<ModelManifest>(File.ReadAllText(path), JsonOptions)
                ?? throw new InvalidDataException($"{path}: the model manifest is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid model manifest ({e.Message}). See models/README.md for the format.", e);
        }
        manifest = manifest with { SourcePath = Path.GetFullPath(path) };
        manifest.Validate();
        return manifest;
    }

    /// <summary>Every *.json directly in <paramref name="folder"/>, sorted by name; names must be unique.</summary>
    /// <param name="skip">
    /// Takes a warning for each manifest that does not load or repeats an earlier one's name, which is then left out;
    /// null makes either an error.
    /// </param>
    public static IReadOnlyList<ModelManifest> LoadFolder(string folder, Action<string>? skip = null)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Model manifest folder not found: {folder}. It ships beside the engine as models/.");
        var manifests = new List<ModelManifest>();
        foreach (var path in Directory.GetFiles(folder, "*.json").Order(StringComparer.Ordinal))
        {
            ModelManifest manifest;
            try
            {
                manifest = Load(path);
            }
            catch (Exception e) when (skip is not null && e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                // One bad file must not hide every model.
                skip($"{e.Message.TrimEnd('.')}; the manifest is skipped, the other models are available. Fix or remove it.");
                continue;
            }
            if (manifests.FirstOrDefault(m => string.Equals(m.Name, manifest.Name, StringComparison.OrdinalIgnoreCase)) is { } first)
            {
                var twins = $"Two model manifests are both named '{first.Name}': {first.SourcePath}, {manifest.SourcePath}";
                if (skip is null) throw new InvalidDataException(twins + ".");
                skip($"{twins}; the second is skipped. Rename or remove one of them.");
                continue;
            }
            manifests.Add(manifest);
        }
        return manifests;
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    private void Validate()
    {
        var where = SourcePath ?? Name;
        if (!ModelNamePattern().IsMatch(Name))
            throw new InvalidDataException($"{where}: model name '{Name}' must be letters, digits, '.', '_' or '-'.");
        HubNames.CheckRepository(Repository, where);
        HubNames.CheckRevision(Revision, where);
        if (Files.Count == 0) throw new InvalidDataException($"{where}: the manifest lists no files.");
        foreach (var file in Files)
        {
            HubNames.CheckRepositoryPath(file.Path, where);
            if (file.Size is < 0) throw new InvalidDataException($"{where}: {file.Path} has a negative size.");
            if (file.Sha256 is not null && !HubNames.IsSha256(file.Sha256))
                throw new InvalidDataException($"{where}: {file.Path} has sha256 '{file.Sha256}', which is not 64 lower-case hex digits.");
        }
        var repeated = Files.GroupBy(f => f.Path, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null) throw new InvalidDataException($"{where}: {repeated.Key} is listed twice.");
        if (Entry.Length > 0) HubNames.CheckRepositoryPath(Entry, where);
        if (Scheduler is { } scheduler)
        {
            if (scheduler.TimestepSpacing is not (null or "leading" or "trailing" or "linspace"))
                throw new InvalidDataException($"{where}: timestepSpacing '{scheduler.TimestepSpacing}' must be leading, trailing or linspace.");
            if (scheduler.Steps < 1) throw new InvalidDataException($"{where}: scheduler steps must be at least 1.");
            if (scheduler.GuidanceScale < 0) throw new InvalidDataException($"{where}: guidanceScale must not be negative.");
            if (!Enum.IsDefined(scheduler.Kind)) throw new InvalidDataException($"{where}: scheduler kind {scheduler.Kind} is not one of {string.Join(", ", Enum.GetNames<SchedulerKind>())}.");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex ModelNamePattern();
}
