using System.Globalization;
using System.Numerics;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// A scene's settings as a picture's <c>parameters</c> text records them (Mnemosyne's or AUTOMATIC1111's, see
/// <see cref="Infotext"/>). The properties a scene request takes have its names, so that the settings can make the
/// scene again; a setting the text leaves out is null. Settings Mnemosyne does not know are kept in <see cref="Extra"/>.
/// </summary>
public sealed record SceneSettings
{
    public required string Prompt { get; init; }
    /// <summary>null when the text has no "Negative prompt:" line.</summary>
    public string? NegativePrompt { get; init; }
    public int? Steps { get; init; }
    /// <summary>The sampler as written (A1111's "Euler a", "DPM++ 2M" …).</summary>
    public string? Sampler { get; init; }
    /// <summary>A1111's schedule type as written ("Automatic", "Karras" …).</summary>
    public string? ScheduleType { get; init; }
    /// <summary>Mnemosyne's scheduler for <see cref="Sampler"/> and <see cref="ScheduleType"/>; null when it has none like it.</summary>
    public SchedulerKind? Scheduler { get; init; }
    public TimestepSpacing? Spacing { get; init; }
    public float? GuidanceScale { get; init; }
    public double? GuidanceCutoff { get; init; }
    public long? Seed { get; init; }
    public int? Width { get; init; }
    public int? Height { get; init; }
    /// <summary>A1111's short model hash: the first 10 hex digits of the checkpoint file's SHA-256 (<see cref="Scene.ModelHash"/>).</summary>
    public string? ModelHash { get; init; }
    public string? Model { get; init; }
    /// <summary>The name of the character reference the scene was made with (the reference itself is not in the picture).</summary>
    public string? ReferenceName { get; init; }
    public float? ReferenceWeight { get; init; }
    public int? DeepCacheInterval { get; init; }
    public SceneDecoder? Decoder { get; init; }
    public PromptStyle? PromptStyle { get; init; }
    /// <summary>
    /// A1111's "Hires upscale": the hires fix's scale (Width and Height are then the base scene's, as Size is); read
    /// only with an upscaler Mnemosyne has (<see cref="HiresUpscale"/>).
    /// </summary>
    public double? HiresScale { get; init; }
    /// <summary>With <see cref="HiresScale"/>: the refine pass's strength, A1111's "Denoising strength".</summary>
    public double? HiresStrength { get; init; }
    /// <summary>
    /// A1111's "Hires upscaler" when Mnemosyne has it ("Latent" → Latent, "Lanczos" → Pixel); another upscaler
    /// (ESRGAN…) leaves the three hires settings null and in <see cref="Extra"/>.
    /// </summary>
    public HiresUpscale? HiresUpscale { get; init; }
    /// <summary>The file name of the initial noise the scene was made from instead of its seed's.</summary>
    public string? InitialNoise { get; init; }
    /// <summary>A1111's "Lora hashes": each LoRA's name and short hash. Recorded only: Mnemosyne does not apply LoRAs.</summary>
    public IReadOnlyDictionary<string, string> LoraHashes { get; init; } = new Dictionary<string, string>();
    /// <summary>Every other setting, by its key as written.</summary>
    public IReadOnlyDictionary<string, string> Extra { get; init; } = new Dictionary<string, string>();
    /// <summary>The picture the settings were read from; null for a text given as such.</summary>
    public string? Path { get; init; }
    /// <summary>The whole text the settings were read from.</summary>
    public required string Parameters { get; init; }

    /// <summary>The settings in a <c>parameters</c> text.</summary>
    /// <exception cref="InvalidDataException">A setting Mnemosyne reads (Steps, Seed, Size …) holds a value of the wrong kind; the message names each.</exception>
    public static SceneSettings Parse(string text)
    {
        var (prompt, negative, pairs) = Infotext.Parse(text);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        // A key written twice keeps its last value, as A1111 reads it.
        foreach (var (key, value) in pairs) values[key] = value;
        var problems = new List<string>();
        var known = new HashSet<string>(StringComparer.Ordinal);

        string? Text(string key)
        {
            known.Add(key);
            return values.TryGetValue(key, out var value) ? value.Trim() : null;
        }
        T? Value<T>(string key, string expected, Func<string, T?> parse) where T : struct
        {
            if (Text(key) is not { } value) return null;
            if (parse(value) is { } parsed) return parsed;
            problems.Add($"{key} is '{value}', which is not {expected}");
            return null;
        }
        static T? Whole<T>(string s) where T : struct, IBinaryInteger<T> => T.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
        static T? Number<T>(string s) where T : struct, IFloatingPoint<T> =>
            T.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && T.IsFinite(v) ? v : null;
        static T? Named<T>(string s) where T : struct, Enum =>
            Enum.GetNames<T>().FirstOrDefault(n => n.Equals(s, StringComparison.OrdinalIgnoreCase)) is { } name ? Enum.Parse<T>(name) : null;

        var size = Value("Size", "a size WIDTHxHEIGHT (for example 1024x768)", ParseSize);
        var sampler = Text("Sampler");
        var scheduleType = Text("Schedule type");
        var loras = Text("Lora hashes") is { } loraText ? ParseLoraHashes(loraText) : new Dictionary<string, string>();
        // A hires fix is read only with an upscaler Mnemosyne has; with another (ESRGAN…) its settings stay in Extra and
        // the settings make the base scene. Without one, Denoising strength is an img2img scene's, whose picture the text cannot give back.
        HiresUpscale? hiresUpscale = values.GetValueOrDefault("Hires upscaler")?.Trim() switch
        {
            "Latent" => Pipeline.HiresUpscale.Latent,
            "Lanczos" => Pipeline.HiresUpscale.Pixel,
            _ => null,
        };
        double? hiresScale = null, hiresStrength = null;
        if (hiresUpscale is not null)
        {
            known.Add("Hires upscaler");
            hiresScale = Value("Hires upscale", "a number", Number<double>);
            hiresStrength = Value("Denoising strength", "a number", Number<double>);
        }
        var settings = new SceneSettings
        {
            Prompt = prompt,
            NegativePrompt = negative,
            Steps = Value("Steps", "a whole number", Whole<int>),
            Sampler = sampler,
            ScheduleType = scheduleType,
            Scheduler = sampler is null ? null : SamplerNames.FromA1111(sampler, scheduleType),
            Spacing = Value("Timestep spacing", "one of " + string.Join(", ", Enum.GetNames<TimestepSpacing>()), Named<TimestepSpacing>),
            GuidanceScale = Value("CFG scale", "a number", Number<float>),
            GuidanceCutoff = Value("CFG cutoff", "a number", Number<double>),
            Seed = Value("Seed", "a whole number", Whole<long>),
            Width = size?.Width,
            Height = size?.Height,
            ModelHash = Text("Model hash"),
            Model = Text("Model"),
            ReferenceName = Text("Reference"),
            ReferenceWeight = Value("Reference weight", "a number", Number<float>),
            DeepCacheInterval = Value("DeepCache interval", "a whole number", Whole<int>),
            Decoder = Value("Decoder", "one of " + string.Join(", ", Enum.GetNames<SceneDecoder>()), Named<SceneDecoder>),
            PromptStyle = Value("Prompt style", "one of " + string.Join(", ", Enum.GetNames<PromptStyle>()), Named<PromptStyle>),
            HiresScale = hiresScale,
            HiresStrength = hiresStrength,
            HiresUpscale = hiresUpscale,
            InitialNoise = Text("Initial noise"),
            LoraHashes = loras,
            Extra = values.Where(pair => !known.Contains(pair.Key)).ToDictionary(StringComparer.Ordinal),
            Parameters = text,
        };
        if (problems.Count > 0)
            throw new InvalidDataException($"In the settings text, {string.Join("; ", problems)}.");
        return settings;
    }

    /// <summary>The settings in a PNG's <c>parameters</c> text chunk (<see cref="PngFile.ReadUntrustedText"/>: any file is safe to give).</summary>
    /// <exception cref="InvalidDataException">The file is not a whole PNG, has no <c>parameters</c> text, or that text holds a value of the wrong kind.</exception>
    public static SceneSettings Read(string path)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        var text = PngFile.ReadUntrustedText(fullPath).LastOrDefault(entry => entry.Keyword == PngTextEntry.ParametersKeyword)?.Text
            ?? throw new InvalidDataException(
                $"{fullPath} has no '{PngTextEntry.ParametersKeyword}' text, so it records no settings (saved by a program that does not write them, or stripped since).");
        try
        {
            return Parse(text) with { Path = fullPath };
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{fullPath}: {e.Message}", e);
        }
    }

    private static (int Width, int Height)? ParseSize(string value)
    {
        var parts = value.Split('x');
        return parts.Length == 2
               && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var width)
               && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var height)
            ? (width, height)
            : null;
    }

    /// <summary>A1111's "name: hash, name: hash" (the LoRA extension's format).</summary>
    private static Dictionary<string, string> ParseLoraHashes(string value)
    {
        var loras = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int colon = entry.LastIndexOf(':');
            if (colon > 0) loras[entry[..colon].Trim()] = entry[(colon + 1)..].Trim();
        }
        return loras;
    }
}
