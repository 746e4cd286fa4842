using System.Text.Json;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// The whole-scene cases diffusers made on the fidelity checkpoint: the shared ones and the repository's
/// own made the same way (tests/reference/pipeline-a), as scene requests with their expected files.
/// </summary>
public static class DiffusersSceneCases
{
    private static readonly string[] Sources =
    [
        TestPaths.Fidelity,
        Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "pipeline-a"),
    ];

    /// <summary>(source, case name) for a theory; one placeholder row per source where ../shared is absent.</summary>
    public static TheoryData<int, string> All()
    {
        var data = new TheoryData<int, string>();
        for (int source = 0; source < Sources.Length; source++)
        {
            if (!TestPaths.HasFidelity) { data.Add(source, "absent"); continue; }
            foreach (var c in Manifest(source)) data.Add(source, c.GetProperty("name").GetString()!);
        }
        return data;
    }

    /// <summary>The case's request (with <paramref name="reference"/>) and the folder of its expected results.</summary>
    public static (SceneRequest Request, string Folder) Load(int source, string name, CharacterReference reference)
    {
        var c = Manifest(source).Single(e => e.GetProperty("name").GetString() == name);
        var folder = source == 0 ? Path.Combine(Sources[source], "cases", name) : Path.Combine(Sources[source], name);
        var seed = c.GetProperty("seed");
        var request = new SceneRequest
        {
            Prompt = c.GetProperty("prompt").GetString()!,
            NegativePrompt = c.GetProperty("negative").ValueKind == JsonValueKind.Null ? null : c.GetProperty("negative").GetString(),
            Width = c.GetProperty("w").GetInt32(),
            Height = c.GetProperty("h").GetInt32(),
            Steps = c.GetProperty("steps").GetInt32(),
            GuidanceScale = c.GetProperty("g").GetSingle(),
            ReferenceWeight = c.GetProperty("ip").GetSingle(),
            Seed = seed.ValueKind == JsonValueKind.Null ? 0 : seed.GetInt64(),
            Scheduler = Enum.Parse<SchedulerKind>(c.GetProperty("sched").GetString()!),
            InitialNoise = c.TryGetProperty("initial_noise", out var noise) ? NpyFile.Read(Path.Combine(folder, noise.GetString()!)) : null,
            Reference = reference,
        };
        return (request, folder);
    }

    private static JsonElement[] Manifest(int source)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(Sources[source], "manifest.json")));
        return manifest.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    }
}
