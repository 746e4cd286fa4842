using System.Text.Json;
using System.Text.Json.Serialization;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Checkpoints;

/// <summary>Reads the config.json files of a diffusers checkpoint into typed records.</summary>
public static class ConfigJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        Converters = { new IntListConverter() },
        WriteIndented = true,
    };

    public static T Read<T>(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Config file not found: {path}", path);
        // A checkpoint's defect: reported with the file's path, which callers show as the thing to fix.
        T config;
        try
        {
            config = JsonSerializer.Deserialize<T>(File.ReadAllText(path), Options)
                ?? throw new CheckpointException($"{path}: config is empty. Restore it from the model's download.", path);
        }
        catch (JsonException e)
        {
            // A converter's own message does not say where it failed; the serializer's path does.
            var key = e.Path is { } at && !e.Message.Contains(at, StringComparison.Ordinal) ? $", at {at}" : "";
            throw new CheckpointException($"{path}: not a valid {typeof(T).Name} config ({e.Message}{key}). Restore it from the model's download.", path, null, e);
        }
        CheckEpsilons(config, path);
        return config;
    }

    /// <summary>A normalisation's epsilon that is not positive makes NaN in every scene: refused where it is read.</summary>
    private static void CheckEpsilons<T>(T config, string path)
    {
        foreach (var property in typeof(T).GetProperties())
        {
            if (!property.Name.EndsWith("Eps", StringComparison.Ordinal) || property.GetValue(config) is not float epsilon || epsilon > 0) continue;
            var key = Options.PropertyNamingPolicy!.ConvertName(property.Name);
            throw new CheckpointException(
                $"{path}: {key} is {epsilon.ToString(System.Globalization.CultureInfo.InvariantCulture)}; a normalisation's epsilon must be a small positive number " +
                "(diffusers' models use 1e-5 or 1e-6). Restore it from the model's download.", path);
        }
    }

    public static void Write<T>(string path, T value) => File.WriteAllText(path, JsonSerializer.Serialize(value, Options));
}

/// <summary>A list of ints that diffusers configs may also give as one int (meaning "this, for every block").</summary>
public sealed record IntList(IReadOnlyList<int> Values, bool IsScalar)
{
    public static implicit operator IntList(int value) => new([value], true);

    public static implicit operator IntList(int[] values) => new(values, false);

    /// <summary>Entry i, or the single value for every i.</summary>
    public int this[int index] => IsScalar ? Values[0] : Values[index];

    public int Count => Values.Count;
}

internal sealed class IntListConverter : JsonConverter<IntList>
{
    public override IntList Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number) return reader.GetInt32();
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("expected an int or a list of ints");
        var values = new List<int>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) values.Add(reader.GetInt32());
        return values.ToArray();
    }

    public override void Write(Utf8JsonWriter writer, IntList value, JsonSerializerOptions options)
    {
        if (value.IsScalar) { writer.WriteNumberValue(value.Values[0]); return; }
        writer.WriteStartArray();
        foreach (var v in value.Values) writer.WriteNumberValue(v);
        writer.WriteEndArray();
    }
}
