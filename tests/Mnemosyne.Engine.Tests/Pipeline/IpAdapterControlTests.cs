using System.Text.Json;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// Several references with region masks, per-block scales, a start/end window and token concatenation, against diffusers'
/// scenes on config B (tests/reference/ipa-control-b, made by make_ipa_control_cases.py).
/// </summary>
public sealed class IpAdapterControlTests(SceneEngineFixture engines, ITestOutputHelper output) : IClassFixture<SceneEngineFixture>
{
    private static readonly string Cases = Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "ipa-control-b");

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var c in TinyModel.SceneCases(Cases)) data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void MatchesDiffusers(string name)
    {
        var scene = engines.Engine(TinyModel.B).Generate(Request(name));

        DiffusersSceneCases.AssertMatches(output, name, Path.Combine(Cases, name), scene);
    }

    /// <summary>Each control changes the scene: without it the latents are far from diffusers' case.</summary>
    [Theory]
    [InlineData("two-masked")]
    [InlineData("style-only")]
    [InlineData("window")]
    [InlineData("concatenated")]
    public void WithoutTheControlTheSceneDiffers(string name)
    {
        var request = Request(name);
        var plain = name switch
        {
            "two-masked" => request with { References = request.References!.Select(r => r with { Mask = null }).ToList() },
            "style-only" => request with { ReferenceBlocks = IpAdapterBlockScales.All },
            "window" => request with { ReferenceStart = 0, ReferenceEnd = 1 },
            _ => request with { References = [new SceneReference(engines.Reference(TinyModel.B), request.References![0].Weight)] },
        };
        var expected = NpyFile.Read(Path.Combine(Cases, name, "final-latents.npy"));
        var latents = engines.Engine(TinyModel.B).Generate(plain).FinalLatents;
        var difference = expected.Data.Zip(latents.Data, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{name} without its control: {difference:E2} from diffusers' case");
        Assert.True(difference > 1e-3, $"the control changed the latents by only {difference}");
    }

    /// <summary>Weights per layer, masks and windows are UNet inputs: once the references are encoded, changing them makes no session.</summary>
    [Fact]
    public void ControlsMakeNoNewSession()
    {
        var engine = engines.Engine(TinyModel.B);
        var request = Request("two-masked");
        engine.Generate(request);
        int before = Engine.Onnx.OnnxModel.CreatedOnThisThread;
        engine.Generate(request with { ReferenceBlocks = IpAdapterBlockScales.Style, ReferenceStart = 0.4 });
        engine.Generate(request with { References = [request.References![1] with { Mask = null }], ReferenceBlocks = IpAdapterBlockScales.FromTable(new Dictionary<string, object> { ["mid"] = 1.5 }) });
        engine.Generate(request with { References = [.. request.References!, request.References![0] with { Weight = 0.3f, Mask = null }] });
        engine.Generate(request with { References = request.References!.Select(r => r with { Mask = null }).ToList(), Width = 64, Height = 128 });
        Assert.Equal(before, Engine.Onnx.OnnxModel.CreatedOnThisThread);
    }

    /// <summary>The hires fix's second pass takes the references' masks enlarged with the scene.</summary>
    [Fact]
    public void TheHiresFixEnlargesTheMasks()
    {
        var request = Request("two-masked") with { Steps = 2 };
        var scene = new HiresFix { Scale = 2 }.Generate(engines.Engine(TinyModel.B), request);
        Assert.Equal((192, 128), (scene.Width, scene.Height));
        var mask = request.References![1].Mask!;
        var enlarged = mask.Enlarged(192, 128);
        Assert.Equal(mask.Downsample(24), enlarged.Downsample(24));
    }

    [Fact]
    public void TheWindowRuleIsDiffusersControlNetRule()
    {
        // Steps 6, start 0.2, end 0.7: i/6 ≥ 0.2 and (i+1)/6 ≤ 0.7 hold for i = 2, 3 only.
        var request = new SceneRequest { Prompt = "x", Seed = 1, Steps = 6, ReferenceStart = 0.2, ReferenceEnd = 0.7 };
        Assert.Equal([false, false, true, true, false, false], Enumerable.Range(0, 6).Select(i => SdxlPipeline.ReferencesAct(request, i, 6)));
        var whole = request with { ReferenceStart = 0, ReferenceEnd = 1 };
        Assert.All(Enumerable.Range(0, 7), i => Assert.True(SdxlPipeline.ReferencesAct(whole, i, 7)));
    }

    private SceneRequest Request(string name)
    {
        var c = TinyModel.SceneCases(Cases).Single(e => e.GetProperty("name").GetString() == name);
        var engine = engines.Engine(TinyModel.B);
        var pictures = c.GetProperty("refs").EnumerateArray().Select(r => Path.GetFullPath(Path.Combine(Cases, r.GetString()!))).ToList();
        var weights = c.GetProperty("weights").EnumerateArray().Select(w => w.GetSingle()).ToList();
        int width = c.GetProperty("w").GetInt32(), height = c.GetProperty("h").GetInt32();
        List<SceneReference> references;
        if (c.TryGetProperty("masks", out var masks))
            references = pictures.Zip(weights, masks.EnumerateArray()).Select(e => new SceneReference(
                engine.EncodeReference([e.First]), e.Second,
                e.Third.ValueKind == JsonValueKind.String
                    ? ReferenceMask.FromPicture(SafeImageDecoder.Default.Decode(Path.Combine(Cases, e.Third.GetString()!)), e.Third.GetString()!)
                    : Rectangle(e.Third, width, height))).ToList();
        else if (pictures.Count > 1)
            references = [new SceneReference(engine.EncodeReference(pictures, "both", combine: ReferenceCombination.Concatenate), weights[0])];
        else
            references = [new SceneReference(engines.Reference(TinyModel.B), weights[0])];
        var request = new SceneRequest
        {
            Prompt = c.GetProperty("prompt").GetString()!,
            PromptStyle = PromptStyle.Diffusers,
            NegativePrompt = c.GetProperty("negative").ValueKind == JsonValueKind.Null ? null : c.GetProperty("negative").GetString(),
            Width = width,
            Height = height,
            Steps = c.GetProperty("steps").GetInt32(),
            GuidanceScale = c.GetProperty("g").GetSingle(),
            Seed = c.GetProperty("seed").GetInt64(),
            Scheduler = SchedulerKind.Euler,
            References = references,
        };
        if (c.TryGetProperty("blocks", out var blocks))
            request = request with
            {
                ReferenceBlocks = blocks.ValueKind == JsonValueKind.String ? IpAdapterBlockScales.Preset(blocks.GetString()!)! : IpAdapterBlockScales.FromTable(Table(blocks)),
            };
        if (c.TryGetProperty("start", out var start)) request = request with { ReferenceStart = start.GetDouble(), ReferenceEnd = c.GetProperty("end").GetDouble() };
        return request;
    }

    private static ReferenceMask Rectangle(JsonElement box, int width, int height)
    {
        var v = box.EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return ReferenceMask.Rectangle(width, height, v[0], v[1], v[2], v[3]);
    }

    /// <summary>A JSON object as the nested dictionaries and lists a PowerShell hashtable gives.</summary>
    private static Dictionary<string, object> Table(JsonElement e)
        => e.EnumerateObject().ToDictionary(p => p.Name, p => Value(p.Value));

    private static object Value(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => Table(e),
        JsonValueKind.Array => e.EnumerateArray().Select(Value).ToArray(),
        _ => e.GetDouble(),
    };
}
