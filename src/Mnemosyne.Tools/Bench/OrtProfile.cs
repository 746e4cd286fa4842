using System.Text.Json;
using System.Text.RegularExpressions;

namespace Mnemosyne.Tools.Bench;

/// <summary>One node's kernel as ONNX Runtime's profiler recorded it: times in microseconds.</summary>
public sealed record ProfiledNode(string Name, string OpType, long Start, long Duration, long[]?[] InputShapes, long[]?[] OutputShapes);

/// <summary>One <c>session.Run</c>: its span and the kernels that ran inside it.</summary>
public sealed record ProfiledRun(long Start, long Duration, IReadOnlyList<ProfiledNode> Nodes);

/// <summary>
/// Reads the JSON trace ONNX Runtime writes with profiling on (Chrome trace format): "model_run"
/// session events, and one "…_kernel_time" node event per kernel with its input and output shapes.
/// </summary>
public static class OrtProfile
{
    public static IReadOnlyList<ProfiledRun> Read(string path)
    {
        using var stream = File.OpenRead(path);
        using var document = JsonDocument.Parse(stream);
        var runs = new List<(long Start, long Duration)>();
        var nodes = new List<ProfiledNode>();
        foreach (var e in document.RootElement.EnumerateArray())
        {
            var category = e.TryGetProperty("cat", out var c) ? c.GetString() : null;
            var name = e.GetProperty("name").GetString() ?? "";
            long start = e.GetProperty("ts").GetInt64(), duration = e.GetProperty("dur").GetInt64();
            if (category == "Session" && name == "model_run") runs.Add((start, duration));
            else if (category == "Node" && name.EndsWith("_kernel_time", StringComparison.Ordinal))
            {
                var args = e.GetProperty("args");
                nodes.Add(new ProfiledNode(
                    name[..^"_kernel_time".Length],
                    args.GetProperty("op_name").GetString() ?? "",
                    start, duration,
                    Shapes(args, "input_type_shape"),
                    Shapes(args, "output_type_shape")));
            }
        }
        if (runs.Count == 0 && nodes.Count > 0)
            throw new InvalidDataException($"{path}: node events without any model_run event; is this an ONNX Runtime profile?");
        return runs
            .OrderBy(r => r.Start)
            .Select(r => new ProfiledRun(r.Start, r.Duration,
                nodes.Where(n => n.Start >= r.Start && n.Start <= r.Start + r.Duration).ToList()))
            .ToList();
    }

    /// <summary>The newest profile written for a prefix: ONNX Runtime appends "_yyyy-MM-dd_HH-mm-ss[_ms].json".</summary>
    public static string Find(string prefix)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(prefix))!;
        var pattern = new Regex("^" + Regex.Escape(Path.GetFileName(prefix)) + @"_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(_\d+)?\.json$");
        return Directory.EnumerateFiles(folder)
            .Where(f => pattern.IsMatch(Path.GetFileName(f)))
            .OrderByDescending(File.GetLastWriteTimeUtc)
            .FirstOrDefault()
            ?? throw new FileNotFoundException($"ONNX Runtime wrote no profile named {prefix}_<timestamp>.json; was the session disposed?", prefix);
    }

    /// <summary>[{"float": [2, 4, 64, 64]}, …]; an optional input ONNX Runtime left out is an empty object.</summary>
    private static long[]?[] Shapes(JsonElement args, string property)
    {
        if (!args.TryGetProperty(property, out var list) || list.ValueKind != JsonValueKind.Array) return [];
        return list.EnumerateArray().Select(item =>
        {
            foreach (var typed in item.EnumerateObject())
                if (typed.Value.ValueKind == JsonValueKind.Array)
                    return typed.Value.EnumerateArray().Select(d => d.GetInt64()).ToArray();
            return null;
        }).ToArray();
    }
}
