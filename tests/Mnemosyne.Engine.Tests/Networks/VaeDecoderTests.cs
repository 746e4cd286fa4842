using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Networks;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class VaeDecoderTests(ITestOutputHelper output) : IDisposable
{
    private const float Tolerance = 1e-4f;

    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-vae-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static ComponentFiles Vae(TinyModel model) => new(
        model.Vae,
        Path.Combine(model.Vae, "config.json"),
        Path.Combine(model.Vae, "diffusion_pytorch_model.safetensors"));

    /// <summary>Config B's VAE, which every test that needs a decoder but no particular one reads.</summary>
    private static ComponentFiles TinyVae => Vae(TinyModel.B);

    private static VaeConfig TinyConfig => ConfigJson.Read<VaeConfig>(TinyVae.ConfigPath);

    private static string CaseFile(string name, string file) => TinyModel.B.SceneCaseFile(name, file);

    /// <summary>
    /// The pipeline's last steps after the VAE: x/2 + 0.5 clamped to [0, 1], NCHW → HWC. Returns the
    /// largest error of the clamped image, and of the unclamped values where the reference lies inside (0, 1).
    /// The fixtures are diffusers' numpy output: [1, H, W, 3].
    /// </summary>
    private static (float Clamped, float Inside, int InsideCount) CompareWithImage(FloatTensor image, FloatTensor expected)
    {
        int channels = image.Shape[1], height = image.Shape[2], width = image.Shape[3];
        Assert.Equal([1, height, width, channels], expected.Shape);
        float clampedError = 0, insideError = 0;
        int inside = 0;
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    float value = image.Data[(c * height + y) * width + x] / 2 + 0.5f;
                    float reference = expected.Data[(y * width + x) * channels + c];
                    clampedError = MathF.Max(clampedError, MathF.Abs(Math.Clamp(value, 0f, 1f) - reference));
                    if (reference > 0 && reference < 1)
                    {
                        inside++;
                        insideError = MathF.Max(insideError, MathF.Abs(value - reference));
                    }
                }
        return (clampedError, insideError, inside);
    }

    private static float MaxAbsDifference(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++) max = MathF.Max(max, MathF.Abs(a[i] - b[i]));
        return max;
    }

    /// <summary>(model, case, height, width) of the whole-scene cases that keep diffusers' float image.</summary>
    public static TheoryData<string, string, int, int> DecodedCases()
    {
        var data = new TheoryData<string, string, int, int> { { "B", "euler-seed", 64, 64 } };
        if (!TestPaths.HasFidelity) return data;
        data.Add("A", "euler-seed", 64, 64);
        data.Add("A", "euler-noisefile-wide", 64, 96);
        data.Add("A", "dpm2m-karras-tall", 96, 64);
        return data;
    }

    [Theory]
    [MemberData(nameof(DecodedCases))]
    public void DecodesTheSceneCasesAsDiffusersDoes(string model, string caseName, int height, int width)
    {
        var tiny = TinyModel.Named(model);
        using var decoder = VaeDecoder.Load(Vae(tiny), SessionSettings.Default);
        var latents = NpyFile.Read(tiny.SceneCaseFile(caseName, "final-latents.npy"));
        Assert.Equal([1, 4, height / 8, width / 8], latents.Shape);

        var image = decoder.Run(latents, CancellationToken.None);

        Assert.Equal([1, 3, height, width], image.Shape);
        var (clamped, inside, insideCount) = CompareWithImage(image, NpyFile.Read(tiny.SceneCaseFile(caseName, "image-float.npy")));
        output.WriteLine($"config {model} {caseName}: max-abs {clamped:E2} clamped, {inside:E2} over the {insideCount} values inside (0, 1)");
        Assert.True(insideCount > image.Length / 2, $"only {insideCount} reference values lie inside (0, 1)");
        Assert.True(clamped <= Tolerance, $"clamped image differs by {clamped}");
        Assert.True(inside <= Tolerance, $"unclamped image differs by {inside}");
    }

    public static TheoryData<string, string> NetworkCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in TinyModel.Present)
            foreach (var caseName in new[] { "vae-8x12", "vae-7x9" }) data.Add(model.Name, caseName);
        return data;
    }

    /// <summary>The network cases' latents are already divided by scaling_factor; the engine's decoder divides itself.</summary>
    [Theory]
    [MemberData(nameof(NetworkCases))]
    public void DecodesTheNetworkCasesAsDiffusersDoes(string model, string caseName)
    {
        var tiny = TinyModel.Named(model);
        using var decoder = VaeDecoder.Load(Vae(tiny), SessionSettings.Default);
        var latents = NpyFile.Read(tiny.NetworkCase(caseName + "-latents.npy"));
        var scaled = new FloatTensor(latents.Data.Select(v => v * decoder.Config.ScalingFactor).ToArray(), latents.Shape);

        var error = MaxAbsDifference(NpyFile.Read(tiny.NetworkCase(caseName + "-sample.npy")).Data, decoder.Run(scaled, CancellationToken.None).Data);
        output.WriteLine($"config {model} {caseName}: max-abs error {error:E2}");
        Assert.True(error <= Tolerance, $"config {model} {caseName}: max-abs error {error:g3} > {Tolerance:g3}");
    }

    [Fact]
    public void DecodesEveryImageOfABatch()
    {
        using var decoder = VaeDecoder.Load(TinyVae, SessionSettings.Default);
        var single = NpyFile.Read(CaseFile("euler-seed", "final-latents.npy"));
        var halved = single.Data.Select(v => v * 0.5f).ToArray();
        var batch = new FloatTensor([.. single.Data, .. halved], [2, .. single.Shape[1..]]);

        var images = decoder.Run(batch, CancellationToken.None);

        Assert.Equal([2, 3, 64, 64], images.Shape);
        int perImage = images.Data.Length / 2;
        var first = decoder.Run(single, CancellationToken.None).Data;
        var second = decoder.Run(new FloatTensor(halved, single.Shape), CancellationToken.None).Data;
        Assert.True(MaxAbsDifference(images.Data[..perImage], first) <= 1e-5f);
        Assert.True(MaxAbsDifference(images.Data[perImage..], second) <= 1e-5f);
        Assert.True(MaxAbsDifference(first, second) > 0.01f, "halving the latents should change the image");
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void AsksForExactlyTheDecoderTensorsOfTheCheckpoint(string model)
    {
        var vae = Vae(TinyModel.Named(model));
        var recorder = new WeightRecorder("vae");
        VaeDecoder.BuildGraph(ConfigJson.Read<VaeConfig>(vae.ConfigPath), recorder, null);

        using var file = SafetensorsFile.Open(vae.WeightsPath);
        var expected = file.Tensors.Values
            .Where(t => t.Name.StartsWith("decoder.", StringComparison.Ordinal) || t.Name.StartsWith("post_quant_conv.", StringComparison.Ordinal))
            .ToDictionary(t => t.Name, t => t.ShapeText);
        var asked = recorder.Tensors.ToDictionary(t => t.Name, t => "[" + string.Join(", ", t.Shape) + "]");
        Assert.NotEmpty(expected);
        Assert.Equal(expected.OrderBy(p => p.Key), asked.OrderBy(p => p.Key));
    }

    [Fact]
    public void AsksForTheSdxlDecoderParameterCount()
    {
        // SDXL's vae/config.json is VaeConfig's defaults; its decoder + post_quant_conv hold 49,490,199 values.
        var recorder = new WeightRecorder("vae");
        VaeDecoder.BuildGraph(new VaeConfig(), recorder, null);
        var shapes = recorder.Tensors.ToDictionary(t => t.Name, t => t.Shape);

        Assert.Equal(49_490_199L, shapes.Values.Sum(s => s.Aggregate(1L, (a, d) => a * d)));
        Assert.Equal([512L, 512], shapes["decoder.mid_block.attentions.0.to_q.weight"]);
        Assert.Equal([256L, 512, 1, 1], shapes["decoder.up_blocks.2.resnets.0.conv_shortcut.weight"]);
        Assert.Equal([3L, 128, 3, 3], shapes["decoder.conv_out.weight"]);
        Assert.DoesNotContain(shapes.Keys, k => k.StartsWith("encoder.", StringComparison.Ordinal) || k.StartsWith("quant_conv.", StringComparison.Ordinal));
    }

    /// <summary>A copy of config B's VAE in a temp folder, its tensors renamed, dropped (null) or replaced.</summary>
    private ComponentFiles CopyTinyVae(Func<TensorInfo, SafetensorsFile, SafetensorsWriter.Entry?> map)
    {
        var folder = Directory.CreateDirectory(Path.Combine(dir, "vae")).FullName;
        var weights = Path.Combine(folder, "diffusion_pytorch_model.safetensors");
        var config = Path.Combine(folder, "config.json");
        File.Copy(TinyVae.ConfigPath, config);
        using (var source = SafetensorsFile.Open(TinyVae.WeightsPath))
        {
            var entries = source.Tensors.Values.OrderBy(t => t.Offset).Select(t => map(t, source)).OfType<SafetensorsWriter.Entry>().ToList();
            SafetensorsWriter.Write(weights, entries);
        }
        return new ComponentFiles(folder, config, weights);
    }

    private static SafetensorsWriter.Entry Same(TensorInfo tensor, SafetensorsFile file, string? name = null)
        => new(name ?? tensor.Name, tensor.Shape, () => file.ReadFloat32(tensor.Name));

    [Fact]
    public void AcceptsTheLegacyAttentionNames()
    {
        const string prefix = "decoder.mid_block.attentions.0.";
        var legacy = new Dictionary<string, string> { ["to_q"] = "query", ["to_k"] = "key", ["to_v"] = "value", ["to_out.0"] = "proj_attn" };
        var renamed = 0;
        var vae = CopyTinyVae((t, file) =>
        {
            foreach (var (current, old) in legacy)
                if (t.Name.StartsWith(prefix + current + ".", StringComparison.Ordinal))
                {
                    renamed++;
                    return Same(t, file, prefix + old + t.Name[(prefix + current).Length..]);
                }
            return Same(t, file);
        });
        Assert.Equal(8, renamed);

        using var decoder = VaeDecoder.Load(vae, SessionSettings.Default);
        var image = decoder.Run(NpyFile.Read(CaseFile("euler-seed", "final-latents.npy")), CancellationToken.None);

        var (clamped, inside, _) = CompareWithImage(image, NpyFile.Read(CaseFile("euler-seed", "image-float.npy")));
        Assert.True(clamped <= Tolerance && inside <= Tolerance, $"legacy-named VAE differs by {clamped} / {inside}");
    }

    [Fact]
    public void RefusesACheckpointWithoutATensor()
    {
        const string missing = "decoder.up_blocks.1.resnets.0.conv2.weight";
        var vae = CopyTinyVae((t, file) => t.Name == missing ? null : Same(t, file));

        var e = Assert.Throws<CheckpointException>(() => VaeDecoder.Load(vae, SessionSettings.Default));

        Assert.Equal(vae.WeightsPath, e.FilePath);
        Assert.Equal(missing, e.TensorName);
        Assert.Contains(vae.WeightsPath, e.Message);
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void RefusesATensorOfTheWrongShape()
    {
        const string wrong = "decoder.conv_out.weight";
        var vae = CopyTinyVae((t, file) => t.Name == wrong
            ? new SafetensorsWriter.Entry(t.Name, [3, 8, 1, 1], () => new float[24])
            : Same(t, file));

        var e = Assert.Throws<CheckpointException>(() => VaeDecoder.Load(vae, SessionSettings.Default));

        Assert.Equal(wrong, e.TensorName);
        Assert.Contains(vae.WeightsPath, e.Message);
        Assert.Contains("[3, 8, 1, 1]", e.Message);
        Assert.Contains("[3, 8, 3, 3]", e.Message);
    }

    [Fact]
    public void AppliesLatentsMeanAndStdAsTheSdxlPipelineDoes()
    {
        float[] mean = [0.1f, -0.2f, 0.3f, -0.4f];
        float[] std = [0.9f, 1.1f, 0.8f, 1.2f];
        var config = TinyConfig;
        using var weights = SafetensorsFile.Open(TinyVae.WeightsPath);
        using var plain = new DecoderModel(VaeDecoder.BuildGraph(config, weights, TinyVae.Folder));
        using var normalised = new DecoderModel(VaeDecoder.BuildGraph(config with { LatentsMean = mean, LatentsStd = std }, weights, TinyVae.Folder));
        var latents = NpyFile.Read(CaseFile("euler-seed", "final-latents.npy"));
        int plane = latents.Shape[2] * latents.Shape[3];
        float factor = config.ScalingFactor;
        // latents·std/scaling_factor + mean equals plain decoding of (latents·std/scaling_factor + mean)·scaling_factor.
        var equivalent = latents.Data.Select((v, i) => (v * std[i / plane] / factor + mean[i / plane]) * factor).ToArray();

        var expected = plain.Run(new FloatTensor(equivalent, latents.Shape));
        var actual = normalised.Run(latents);

        Assert.True(MaxAbsDifference(expected.Data, actual.Data) <= 1e-5f);
        Assert.True(MaxAbsDifference(expected.Data, plain.Run(latents).Data) > 0.01f, "mean and std should change the image");
    }

    /// <summary>Runs a graph from <see cref="VaeDecoder.BuildGraph"/> directly, for configs no file on disk has.</summary>
    private sealed class DecoderModel(OnnxGraph graph) : IDisposable
    {
        private readonly OnnxModel model = OnnxModel.Create(graph, SessionSettings.Default);

        public FloatTensor Run(FloatTensor latents)
            => model.Run([ModelInput.Float(VaeDecoder.LatentsInput, latents)], [VaeDecoder.ImageOutput])[0];

        public void Dispose() => model.Dispose();
    }

    [Fact]
    public void DecodesWithoutMidAttentionWhenTheConfigSaysSo()
    {
        var full = new WeightRecorder("vae");
        VaeDecoder.BuildGraph(TinyConfig, full, null);
        var recorder = new WeightRecorder("vae");
        VaeDecoder.BuildGraph(TinyConfig with { MidBlockAddAttention = false, UsePostQuantConv = false }, recorder, null);
        var names = recorder.Tensors.Select(t => t.Name).ToList();

        Assert.DoesNotContain(names, n => n.Contains(".attentions.", StringComparison.Ordinal) || n.StartsWith("post_quant_conv", StringComparison.Ordinal));
        // The mid block's attention has a group norm and four projections (weight and bias each); post_quant_conv a weight and a bias.
        Assert.Equal(full.Tensors.Count() - 10 - 2, names.Count);
    }

    [Fact]
    public void RefusesLatentsOfTheWrongShape()
    {
        using var decoder = VaeDecoder.Load(TinyVae, SessionSettings.Default);

        var e = Assert.Throws<ArgumentException>(() => decoder.Run(new FloatTensor(new float[3 * 8 * 8], [1, 3, 8, 8]), CancellationToken.None));
        Assert.Contains("[1, 3, 8, 8]", e.Message);
        Assert.Throws<ArgumentException>(() => decoder.Run(new FloatTensor(new float[4 * 8 * 8], [4, 8, 8]), CancellationToken.None));
    }

    [Fact]
    public void StopsWhenCancelled()
    {
        using var decoder = VaeDecoder.Load(TinyVae, SessionSettings.Default);
        Assert.Throws<OperationCanceledException>(() => decoder.Run(new FloatTensor(new float[4 * 8 * 8], [1, 4, 8, 8]), new CancellationToken(true)));
    }

    [Theory]
    [InlineData("UpBlockTypes", "up_block_types")]
    [InlineData("ClassName", "_class_name")]
    [InlineData("NormNumGroups", "norm_num_groups")]
    [InlineData("LatentsStd", "latents_mean and latents_std")]
    public void RefusesConfigsItCannotBuild(string change, string named)
    {
        var config = change switch
        {
            "UpBlockTypes" => new VaeConfig { UpBlockTypes = ["UpDecoderBlock2D", "AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"] },
            "ClassName" => new VaeConfig { ClassName = "AutoencoderTiny" },
            "NormNumGroups" => new VaeConfig { NormNumGroups = 48 },
            _ => new VaeConfig { LatentsMean = [0f, 0f, 0f, 0f], LatentsStd = [1f, 1f] },
        };
        var e = Assert.Throws<InvalidDataException>(() => VaeDecoder.BuildGraph(config, new WeightRecorder("vae"), null));
        Assert.Contains(named, e.Message);
    }
}
