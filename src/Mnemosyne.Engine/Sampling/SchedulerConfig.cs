using System.Globalization;
using System.Text.Json;

namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// A diffusers scheduler_config.json, key for key. A null property is a key the file does not have
/// (or has as null); each scheduler then takes its own class default, as diffusers' from_config does —
/// DDIM, for one, defaults clip_sample and set_alpha_to_one to true where Euler has neither.
/// Keys this engine does not read are ignored, as diffusers ignores keys another class does not take.
/// </summary>
public sealed record SchedulerConfig
{
    public const string FileName = "scheduler_config.json";

    /// <summary>Where the values came from, for messages.</summary>
    public string Source { get; init; } = "scheduler config";

    public string? ClassName { get; init; }
    public int? NumTrainTimesteps { get; init; }
    public double? BetaStart { get; init; }
    public double? BetaEnd { get; init; }
    public string? BetaSchedule { get; init; }
    public IReadOnlyList<double>? TrainedBetas { get; init; }
    public string? PredictionType { get; init; }
    public string? TimestepSpacing { get; init; }
    public int? StepsOffset { get; init; }
    public bool? UseKarrasSigmas { get; init; }
    public string? InterpolationType { get; init; }
    public string? FinalSigmasType { get; init; }
    public string? TimestepType { get; init; }
    public double? SigmaMin { get; init; }
    public double? SigmaMax { get; init; }
    public bool? RescaleBetasZeroSnr { get; init; }
    public bool? ClipSample { get; init; }
    public double? ClipSampleRange { get; init; }
    public bool? SetAlphaToOne { get; init; }
    public bool? Thresholding { get; init; }
    public string? AlgorithmType { get; init; }
    public int? SolverOrder { get; init; }
    public string? SolverType { get; init; }
    public bool? LowerOrderFinal { get; init; }
    public bool? EulerAtFinal { get; init; }
    public bool? UseLuLambdas { get; init; }
    public double? LambdaMinClipped { get; init; }
    public string? VarianceType { get; init; }
    public int? OriginalInferenceSteps { get; init; }
    public double? TimestepScaling { get; init; }

    /// <summary>Reads a scheduler_config.json, given as the file or as the folder holding it.</summary>
    public static SchedulerConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file))
            throw new FileNotFoundException($"No scheduler config at {file}: pass a checkpoint's scheduler folder or its {FileName}.", file);
        return Parse(File.ReadAllText(file), file);
    }

    /// <summary>Parses scheduler config JSON; <paramref name="source"/> names it in error messages.</summary>
    public static SchedulerConfig Parse(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(QuotePythonNonFiniteNumbers(json), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON ({e.Message}).", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{source}: a scheduler config must be a JSON object, not {root.ValueKind}.");
            var keys = new KeyReader(root, source);
            return new SchedulerConfig
            {
                Source = source,
                ClassName = keys.String("_class_name"),
                NumTrainTimesteps = keys.Int("num_train_timesteps"),
                BetaStart = keys.Double("beta_start"),
                BetaEnd = keys.Double("beta_end"),
                BetaSchedule = keys.String("beta_schedule"),
                TrainedBetas = keys.DoubleArray("trained_betas"),
                PredictionType = keys.String("prediction_type"),
                TimestepSpacing = keys.String("timestep_spacing"),
                StepsOffset = keys.Int("steps_offset"),
                UseKarrasSigmas = keys.Bool("use_karras_sigmas"),
                InterpolationType = keys.String("interpolation_type"),
                FinalSigmasType = keys.String("final_sigmas_type"),
                TimestepType = keys.String("timestep_type"),
                SigmaMin = keys.Double("sigma_min"),
                SigmaMax = keys.Double("sigma_max"),
                RescaleBetasZeroSnr = keys.Bool("rescale_betas_zero_snr"),
                ClipSample = keys.Bool("clip_sample"),
                ClipSampleRange = keys.Double("clip_sample_range"),
                SetAlphaToOne = keys.Bool("set_alpha_to_one"),
                Thresholding = keys.Bool("thresholding"),
                AlgorithmType = keys.String("algorithm_type"),
                SolverOrder = keys.Int("solver_order"),
                SolverType = keys.String("solver_type"),
                LowerOrderFinal = keys.Bool("lower_order_final"),
                EulerAtFinal = keys.Bool("euler_at_final"),
                UseLuLambdas = keys.Bool("use_lu_lambdas"),
                LambdaMinClipped = keys.Double("lambda_min_clipped"),
                VarianceType = keys.String("variance_type"),
                OriginalInferenceSteps = keys.Int("original_inference_steps"),
                TimestepScaling = keys.Double("timestep_scaling"),
            };
        }
    }

    /// <summary>
    /// diffusers writes configs with Python's json module, which spells non-finite floats as bare
    /// NaN, Infinity and -Infinity (DPM-Solver's lambda_min_clipped is -Infinity by default); standard
    /// JSON has no such tokens, so they are quoted here and read back as numbers.
    /// </summary>
    internal static string QuotePythonNonFiniteNumbers(string json)
    {
        var result = new System.Text.StringBuilder(json.Length + 16);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                result.Append(c);
                if (c == '\\' && i + 1 < json.Length) result.Append(json[++i]);
                else if (c == '"') inString = false;
            }
            else if (NonFiniteTokens.FirstOrDefault(t => string.CompareOrdinal(json, i, t, 0, t.Length) == 0) is { } token)
            {
                result.Append('"').Append(token).Append('"');
                i += token.Length - 1;
            }
            else
            {
                inString = c == '"';
                result.Append(c);
            }
        }
        return result.ToString();
    }

    private static readonly string[] NonFiniteTokens = ["-Infinity", "Infinity", "NaN"];

    /// <summary>The spacing the file asks for, or <paramref name="classDefault"/> where it has none.</summary>
    internal TimestepSpacing SpacingOr(TimestepSpacing classDefault) => TimestepSpacing switch
    {
        null => classDefault,
        "linspace" => Sampling.TimestepSpacing.Linspace,
        "leading" => Sampling.TimestepSpacing.Leading,
        "trailing" => Sampling.TimestepSpacing.Trailing,
        var other => throw Unsupported("timestep_spacing", other, "linspace, leading or trailing"),
    };

    internal InvalidDataException Unsupported(string key, object? value, string supported) =>
        new($"{Source}: {key} {Describe(value)} is not supported here; use {supported}.");

    private static string Describe(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private readonly struct KeyReader(JsonElement root, string source)
    {
        private JsonElement? Get(string key) =>
            root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

        private InvalidDataException WrongType(string key, JsonElement value, string expected) =>
            new($"{source}: \"{key}\" should be {expected}, not {value.GetRawText()}.");

        public string? String(string key) => Get(key) is { } v
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw WrongType(key, v, "a string")
            : null;

        public bool? Bool(string key) => Get(key) is { } v
            ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw WrongType(key, v, "true or false")
            : null;

        public double? Double(string key) => Get(key) is { } v
            ? v.ValueKind switch
            {
                JsonValueKind.Number => v.GetDouble(),
                JsonValueKind.String when v.GetString() is "Infinity" => double.PositiveInfinity,
                JsonValueKind.String when v.GetString() is "-Infinity" => double.NegativeInfinity,
                JsonValueKind.String when v.GetString() is "NaN" => double.NaN,
                _ => throw WrongType(key, v, "a number"),
            }
            : null;

        public int? Int(string key) => Get(key) is { } v
            ? v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw WrongType(key, v, "a whole number")
            : null;

        public IReadOnlyList<double>? DoubleArray(string key)
        {
            if (Get(key) is not { } v) return null;
            if (v.ValueKind != JsonValueKind.Array) throw WrongType(key, v, "an array of numbers");
            var values = new List<double>(v.GetArrayLength());
            foreach (var item in v.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number) throw WrongType(key, v, "an array of numbers");
                values.Add(item.GetDouble());
            }
            return values;
        }
    }
}
