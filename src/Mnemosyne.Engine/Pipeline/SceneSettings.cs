using System.Globalization;
using System.Collections;
using System.Numerics;
using System.Text.Json;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Text;

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
    /// <summary>The reference's weight ("Reference weight"), or each reference's in order when several were used (from "Reference controls").</summary>
    public float[]? ReferenceWeight { get; init; }
    /// <summary>
    /// Where each of several references acted (from "Reference controls"), in order: a rectangle as a table of X, Y, Width
    /// and Height (Left, Right, Top and Bottom are recorded as theirs; a reference without a mask gets the whole scene), or
    /// the file name of a picture mask, which the text cannot give back (<see cref="ReferenceMaskPictures"/>).
    /// </summary>
    public IReadOnlyList<object>? ReferenceMask { get; init; }
    /// <summary>The picture masks' file names among <see cref="ReferenceMask"/>.</summary>
    public IReadOnlyList<string> ReferenceMaskPictures => ReferenceMask?.OfType<string>().ToList() ?? [];
    /// <summary>The cross-attentions the references acted in, when not all (from "Reference controls").</summary>
    public IpAdapterBlockScales? ReferenceBlocks { get; init; }
    /// <summary>The window of steps the references acted in, when not all of them (from "Reference controls").</summary>
    public double? ReferenceStart { get; init; }
    public double? ReferenceEnd { get; init; }
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
    /// <summary>A1111's "Lora hashes": each LoRA's name and short hash (<see cref="LoraFile.ShortHash"/>), in the order applied.</summary>
    public IReadOnlyDictionary<string, string> LoraHashes { get; init; } = new Dictionary<string, string>();
    /// <summary>Mnemosyne's "Lora weights" beside the hashes (A1111 keeps the weights in the prompt's &lt;lora:name:weight&gt; tags).</summary>
    public IReadOnlyDictionary<string, float> LoraWeights { get; init; } = new Dictionary<string, float>();
    /// <summary>
    /// The recorded LoRAs that are not tags in the prompt, as files at their weights, once found in a folder
    /// (<see cref="WithLorasFrom"/>); empty before. New-MnemosyneScene takes them as its -Lora.
    /// </summary>
    public IReadOnlyList<LoraRequest> Loras { get; init; } = [];
    /// <summary>The folder the LoRAs were found in, where the prompt's &lt;lora:name:weight&gt; tags name their files too; null before.</summary>
    public string? LoraFolder { get; init; }
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
        var loras = Text("Lora hashes") is { } loraText ? ParseLoraList(loraText) : new Dictionary<string, string>();
        var loraWeights = new Dictionary<string, float>(StringComparer.Ordinal);
        foreach (var (name, weight) in Text("Lora weights") is { } weightText ? ParseLoraList(weightText) : [])
        {
            if (Number<float>(weight) is { } parsed) loraWeights[name] = parsed;
            else problems.Add($"Lora weights gives {name} '{weight}', which is not a number");
        }
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
        var controls = Text("Reference controls") is { } controlText ? ParseReferenceControls(controlText, size, problems) : default;
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
            ReferenceWeight = controls.Weights ?? (Value("Reference weight", "a number", Number<float>) is { } single ? [single] : null),
            ReferenceMask = controls.Masks,
            ReferenceBlocks = controls.Blocks,
            ReferenceStart = controls.Start,
            ReferenceEnd = controls.End,
            DeepCacheInterval = Value("DeepCache interval", "a whole number", Whole<int>),
            Decoder = Value("Decoder", "one of " + string.Join(", ", Enum.GetNames<SceneDecoder>()), Named<SceneDecoder>),
            PromptStyle = Value("Prompt style", "one of " + string.Join(", ", Enum.GetNames<PromptStyle>()), Named<PromptStyle>),
            HiresScale = hiresScale,
            HiresStrength = hiresStrength,
            HiresUpscale = hiresUpscale,
            InitialNoise = Text("Initial noise"),
            LoraHashes = loras,
            LoraWeights = loraWeights,
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

    /// <summary>
    /// Mnemosyne's "Reference controls" (<see cref="SceneEngine"/> writes it): parts joined by "; ", "weights 0.7 0.6",
    /// "masks 0,0,32,64 mask.png none", "blocks Style" (or the table in diffusers' dict notation), "steps 0.2-0.8" and
    /// "pictures concatenated" (a property of the reference, which it carries itself).
    /// </summary>
    private static (float[]? Weights, IReadOnlyList<object>? Masks, IpAdapterBlockScales? Blocks, double? Start, double? End) ParseReferenceControls(
        string value, (int Width, int Height)? size, List<string> problems)
    {
        var inv = CultureInfo.InvariantCulture;
        (float[]? Weights, IReadOnlyList<object>? Masks, IpAdapterBlockScales? Blocks, double? Start, double? End) controls = default;
        foreach (var part in value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int space = part.IndexOf(' ');
            var (name, rest) = space < 0 ? (part, "") : (part[..space], part[(space + 1)..].Trim());
            var items = rest.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            switch (name)
            {
                case "weights":
                    var weights = items.Select(w => float.TryParse(w, NumberStyles.Float, inv, out var f) && float.IsFinite(f) ? f : (float?)null).ToArray();
                    if (weights.Length > 0 && weights.All(w => w is not null)) controls.Weights = weights.Select(w => w!.Value).ToArray();
                    else Problem();
                    break;
                case "masks":
                    var masks = items.Select(Mask).ToList();
                    if (masks.Count > 0 && masks.All(m => m is not null)) controls.Masks = masks!;
                    else Problem();
                    break;
                case "blocks":
                    if (IpAdapterBlockScales.Preset(rest) is { } preset) controls.Blocks = preset;
                    else
                    {
                        try
                        {
                            using var json = JsonDocument.Parse(rest);
                            if (json.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException();
                            controls.Blocks = IpAdapterBlockScales.FromTable((IDictionary)Plain(json.RootElement)!);
                        }
                        catch (Exception e) when (e is JsonException or ArgumentException)
                        {
                            Problem();
                        }
                    }
                    break;
                case "steps":
                    var window = rest.Split('-');
                    if (window.Length == 2 && Fraction(window[0]) is { } start && Fraction(window[1]) is { } end)
                        (controls.Start, controls.End) = (start, end);
                    else Problem();
                    break;
                case "pictures" when rest == "concatenated":
                    break;
                default:
                    problems.Add($"Reference controls has '{part}', which is none of weights, masks, blocks, steps and pictures concatenated");
                    break;
            }

            object? Mask(string item)
            {
                var numbers = item.Split(',').Select(n => int.TryParse(n, NumberStyles.AllowLeadingSign, inv, out var v) ? v : (int?)null).ToArray();
                if (numbers.Length == 4 && numbers.All(n => n is not null)) return Rectangle(numbers.Select(n => n!.Value).ToArray());
                // A reference without a mask acts on the whole scene.
                if (item == "none") return size is { } whole ? Rectangle([0, 0, whole.Width, whole.Height]) : null;
                return item.IndexOfAny(System.IO.Path.GetInvalidFileNameChars()) < 0 ? item : null;
            }
            void Problem() => problems.Add($"Reference controls has '{part}', which is not {name} as Mnemosyne writes them");
        }
        return controls;

        static Dictionary<string, int> Rectangle(int[] box) => new(StringComparer.OrdinalIgnoreCase)
        {
            ["X"] = box[0], ["Y"] = box[1], ["Width"] = box[2], ["Height"] = box[3],
        };
        static double? Fraction(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v : null;
        // The table as IpAdapterBlockScales.FromTable reads one: tables, lists and numbers (anything else as its text, which it refuses).
        static object? Plain(JsonElement element) => element.ValueKind switch
        {
            JsonValueKind.Object => element.EnumerateObject().ToDictionary(p => p.Name, p => Plain(p.Value), StringComparer.OrdinalIgnoreCase),
            JsonValueKind.Array => element.EnumerateArray().Select(Plain).ToArray(),
            JsonValueKind.Number => element.GetDouble(),
            _ => element.ToString(),
        };
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

    /// <summary>
    /// These settings with their recorded LoRAs found in <paramref name="folder"/>, each as &lt;folder&gt;/&lt;name&gt;.safetensors
    /// (as the prompt's tags name files), its A1111 short hash checked against the recorded one. A LoRA the prompt names in
    /// a &lt;lora:name:weight&gt; tag (an A1111 picture) stays there, found through <see cref="LoraFolder"/> as New-MnemosyneScene
    /// finds tags; the others (a Mnemosyne picture's) become <see cref="Loras"/> at their recorded weights, 1 where none is.
    /// </summary>
    /// <exception cref="FileNotFoundException">A recorded LoRA has no file in the folder.</exception>
    /// <exception cref="InvalidDataException">A file's short hash is not the recorded one (another file under that name), or the file is no LoRA.</exception>
    /// <exception cref="ArgumentException">A recorded name would leave the folder.</exception>
    public SceneSettings WithLorasFrom(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        var root = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(folder));
        var tagged = LoraTags.Extract(Prompt).Tags.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var loras = new List<LoraRequest>();
        foreach (var (name, hash) in LoraHashes)
        {
            var file = LoraTags.FileIn(root, name)
                ?? throw new ArgumentException($"The scene's LoRA '{name}' names a file outside the LoRA folder {root}.", nameof(Loras));
            if (!File.Exists(file))
                throw new FileNotFoundException($"The scene was made with the LoRA '{name}', but the LoRA folder {root} has no {name}.safetensors.", file);
            string found;
            using (var lora = LoraFile.Open(file)) found = lora.ShortHash();
            if (hash.Length > 0 && !string.Equals(found, hash, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException(
                    $"{file} is not the LoRA '{name}' the scene was made with: its short hash is {found}, the scene's {hash}. Put that LoRA's file there, or make the scene without it.");
            if (!tagged.Contains(name)) loras.Add(new LoraRequest(file, LoraWeights.TryGetValue(name, out var weight) ? weight : 1));
        }
        return this with { Loras = loras, LoraFolder = root };
    }

    /// <summary>A1111's "name: value, name: value" (the LoRA extension's format of Lora hashes; Mnemosyne's Lora weights).</summary>
    private static Dictionary<string, string> ParseLoraList(string value)
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
