using System.Text.Json;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Tests;

/// <summary>
/// A tiny checkpoint of the SDXL + IP-Adapter architecture and diffusers' outputs for it. Config B is the engine's
/// own random checkpoint, written here from its seed, with its cases in tests/reference: every equivalence test
/// runs on it, so a clone with nothing beside it tests itself. Config A is ../shared/fidelity, made independently:
/// an extra check, present only where ../shared is.
/// </summary>
public sealed class TinyModel
{
    /// <summary>The seed of the command in tests/reference/networks-b/checkpoint.json.</summary>
    public const ulong ConfigBSeed = 20240607;

    private static readonly Lazy<string> ConfigBFolder = new(WriteConfigB);

    private TinyModel(string name, Func<string> folder, string networkCases, string referenceImage, string referenceFolder, IReadOnlyList<string> sceneSources)
    {
        Name = name;
        this.folder = folder;
        NetworkCases = networkCases;
        ReferenceImage = referenceImage;
        ReferenceFolder = referenceFolder;
        SceneSources = sceneSources;
    }

    private readonly Func<string> folder;

    public string Name { get; }

    /// <summary>The checkpoint in the diffusers layout, with the IP-Adapter repository in its ip-adapter/ folder.</summary>
    public string Folder => folder();

    public string TextEncoder => Path.Combine(Folder, "text_encoder");

    public string TextEncoder2 => Path.Combine(Folder, "text_encoder_2");

    public string Unet => Path.Combine(Folder, "unet");

    public string Vae => Path.Combine(Folder, "vae");

    public string IpAdapterRepository => Path.Combine(Folder, RandomCheckpoint.IpAdapterFolder);

    public string IpAdapterFile => Path.Combine(IpAdapterRepository, IpAdapterFiles.AdapterRelativePath);

    /// <summary>Config B's IP-Adapter Plus file, beside the base adapter (config A has none).</summary>
    public static string PlusAdapterFile => Path.Combine(B.IpAdapterRepository, "sdxl_models", RandomCheckpoint.PlusAdapterFileName);

    /// <summary>diffusers' outputs of config B's IP-Adapter Plus image side (make_network_cases.py --plus).</summary>
    public static string PlusNetworkCase(string file) => Reference("networks-plus-b", file);

    /// <summary>diffusers' per-network outputs (tests/reference/networks-*).</summary>
    public string NetworkCases { get; }

    /// <summary>The character picture of every whole-scene case.</summary>
    public string ReferenceImage { get; }

    /// <summary>Where reference-pixel-values.npy and reference-image-embeds.npy (diffusers' view of <see cref="ReferenceImage"/>) are.</summary>
    public string ReferenceFolder { get; }

    /// <summary>Folders of whole-scene cases: manifest.json and one folder per case (under cases/ for the shared ones).</summary>
    public IReadOnlyList<string> SceneSources { get; }

    public static TinyModel B { get; } = new("B", () => ConfigBFolder.Value,
        Reference("networks-b"), Reference("pipeline-b", "reference.png"), Reference("pipeline-b"), [Reference("pipeline-b"), Reference("img2img-b")]);

    public static TinyModel A { get; } = new("A", () => TestPaths.FidelityModel,
        Reference("networks-a"), Path.Combine(TestPaths.Fidelity, "reference.png"), TestPaths.Fidelity, [TestPaths.Fidelity, Reference("pipeline-a")]);

    /// <summary>The models present: B always, A where ../shared/fidelity is.</summary>
    public static IEnumerable<TinyModel> Present => TestPaths.HasFidelity ? [B, A] : [B];

    /// <summary>The names of <see cref="Present"/>, as theory data.</summary>
    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var model in Present) data.Add(model.Name);
        return data;
    }

    public static TinyModel Named(string name) => name switch
    {
        "A" => A,
        "B" => B,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such tiny model"),
    };

    /// <summary>A file of diffusers' per-network outputs.</summary>
    public string NetworkCase(string file) => Path.Combine(NetworkCases, file);

    /// <summary>
    /// The image encoder's random input: torch.randn(1, 3, 224, 224) from seed 1234. Config A keeps it as a file;
    /// config B's is redrawn here bit for bit rather than kept in the repository (600 KB).
    /// </summary>
    public FloatTensor RandomPixelValues()
    {
        var file = NetworkCase("image-encoder-random-pixel-values.npy");
        return File.Exists(file)
            ? NpyFile.Read(file)
            : new FloatTensor(new TorchGenerator(1234).Randn(1, 3, 224, 224), [1, 3, 224, 224]);
    }

    /// <summary>A file of one whole-scene case of this model, wherever its source keeps it.</summary>
    public string SceneCaseFile(string caseName, string file)
    {
        foreach (var source in SceneSources)
        {
            var folder = CaseFolder(source, caseName);
            if (Directory.Exists(folder)) return Path.Combine(folder, file);
        }
        throw new ArgumentException($"model {Name} has no scene case {caseName}", nameof(caseName));
    }

    /// <summary>The folder of a case of a source: the shared fidelity cases are under cases/.</summary>
    public static string CaseFolder(string source, string caseName)
        => source == TestPaths.Fidelity ? Path.Combine(source, "cases", caseName) : Path.Combine(source, caseName);

    /// <summary>The cases of a source's manifest.json.</summary>
    public static JsonElement[] SceneCases(string source)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(source, "manifest.json")));
        return manifest.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    }

    public override string ToString() => Name;

    private static string Reference(params string[] parts) => Path.Combine([TestPaths.RepositoryRoot, "tests", "reference", .. parts]);

    /// <summary>Config B, written once per test run (it takes a moment) and removed when the run ends.</summary>
    private static string WriteConfigB()
    {
        var root = Directory.CreateTempSubdirectory("mnemosyne-config-b-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (IOException) { } // a file still mapped by a session being torn down: the temp folder keeps it
        };
        RandomCheckpoint.Write(root, CheckpointShape.Tiny, ConfigBSeed);
        return root;
    }
}
