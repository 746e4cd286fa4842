using System.Text.Json;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// The tiny decoder against diffusers v0.30.0's AutoencoderTiny on the generator's random tiny decoder, whose
/// reference numbers are tests/reference/taesd-b (made by make_taesd_cases.py). The decoder is regenerated here
/// from its seed, so these tests need nothing outside the repository.
/// </summary>
public sealed class TinyAutoencoderDecoderTests : IDisposable
{
    /// <summary>The seed of the command in tests/reference/taesd-b/checkpoint.json.</summary>
    public const ulong Seed = 20240607;

    private readonly ITestOutputHelper output;
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-taesd-").FullName;
    private readonly string decoderFolder;

    public TinyAutoencoderDecoderTests(ITestOutputHelper output)
    {
        this.output = output;
        decoderFolder = Path.Combine(dir, "taesd-b");
        RandomCheckpoint.WriteTinyDecoder(decoderFolder, RandomCheckpoint.TinyDecoderShape, Seed);
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static string TaesdB => Path.Combine(TestPaths.RepositoryRoot, "tests", "reference", "taesd-b");

    private static FloatTensor Fixture(string name) => ReadNpy(Path.Combine(TaesdB, name));

    [Fact]
    public void RegeneratesTheDecoderTheFixturesWereMadeFrom()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TaesdB, "checkpoint.json")));
        Assert.Equal(
            $"dotnet pwsh ./build.ps1 TinyDecoder -Output out/taesd-b -Seed {Seed} -Size Tiny",
            doc.RootElement.GetProperty("command").GetString());
    }

    [Theory]
    [InlineData("taesd-8x12")]
    [InlineData("taesd-7x9")]
    [InlineData("taesd-batch2-5x6")]
    public void DecodesAsDiffusersDoes(string caseName)
    {
        using var decoder = TinyAutoencoderDecoder.Load(decoderFolder, SessionSettings.Default);
        var expected = Fixture(caseName + "-sample.npy");

        var actual = decoder.Run(Fixture(caseName + "-latents.npy"));

        var error = MaxAbsError(expected, actual);
        output.WriteLine($"{caseName}: max-abs error {error:E2} (values from {expected.Data.Min():g3} to {expected.Data.Max():g3})");
        Assert.True(error <= Tolerance, $"{caseName}: max-abs error {error:g3} > {Tolerance:g3}");
        Assert.Equal(8, decoder.UpscaleFactor);
    }

    /// <summary>TAESDXL is AutoencoderTiny's defaults; diffusers' own decoder tensors for them are in the fixtures' manifest.</summary>
    [Fact]
    public void AsksForTheTaesdxlDecoderTensors()
    {
        var recorder = new WeightRecorder("taesdxl");
        TinyAutoencoderDecoder.BuildGraph(new TinyAutoencoderConfig(), recorder, null);

        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(TaesdB, "manifest.json")));
        var expected = manifest.RootElement.GetProperty("taesdxl_decoder_tensors").EnumerateObject()
            .ToDictionary(p => p.Name, p => string.Join(", ", p.Value.EnumerateArray().Select(d => d.GetInt64())));
        var asked = recorder.Tensors.ToDictionary(t => t.Name, t => string.Join(", ", t.Shape));
        Assert.Equal(67, expected.Count);
        Assert.Equal(expected.OrderBy(p => p.Key), asked.OrderBy(p => p.Key));
        Assert.Equal(1_222_531L, recorder.Tensors.Sum(t => t.Shape.Aggregate(1L, (a, d) => a * d)));
    }

    [Fact]
    public void LoadsFromTheWeightsFileToo()
    {
        using var decoder = TinyAutoencoderDecoder.Load(Path.Combine(decoderFolder, TinyAutoencoderDecoder.WeightsFileName), SessionSettings.Default);
        var error = MaxAbsError(Fixture("taesd-7x9-sample.npy"), decoder.Run(Fixture("taesd-7x9-latents.npy")));
        Assert.True(error <= Tolerance, $"max-abs error {error:g3}");
    }

    [Fact]
    public void DividesByTheConfigsScalingFactor()
    {
        const float factor = 0.5f;
        var config = RandomCheckpoint.TinyDecoderShape;
        using var weights = SafetensorsFile.Open(Path.Combine(decoderFolder, TinyAutoencoderDecoder.WeightsFileName));
        using var plain = OnnxModel.Create(TinyAutoencoderDecoder.BuildGraph(config, weights, decoderFolder), SessionSettings.Default);
        using var scaled = OnnxModel.Create(TinyAutoencoderDecoder.BuildGraph(config with { ScalingFactor = factor }, weights, decoderFolder), SessionSettings.Default);
        var latents = Fixture("taesd-7x9-latents.npy");
        var halved = new FloatTensor(latents.Data.Select(v => v * factor).ToArray(), latents.Shape);

        FloatTensor Run(OnnxModel model, FloatTensor input)
            => model.Run([ModelInput.Float(TinyAutoencoderDecoder.LatentsInput, input)], [TinyAutoencoderDecoder.ImageOutput])[0];

        Assert.True(MaxAbsError(Run(plain, latents), Run(scaled, halved)) <= 1e-5f);
        Assert.True(MaxAbsError(Run(plain, latents), Run(plain, halved)) > 0.01f, "halving the latents should change the picture");
    }

    [Fact]
    public void RefusesAFolderOfAnotherAutoencoder()
    {
        var folder = Directory.CreateDirectory(Path.Combine(dir, "vae")).FullName;
        ConfigJson.Write(Path.Combine(folder, "config.json"), new VaeConfig());
        File.Copy(Path.Combine(decoderFolder, TinyAutoencoderDecoder.WeightsFileName), Path.Combine(folder, TinyAutoencoderDecoder.WeightsFileName));

        var e = Assert.Throws<CheckpointException>(() => TinyAutoencoderDecoder.Load(folder, SessionSettings.Default));

        Assert.Equal(Path.Combine(folder, "config.json"), e.FilePath);
        Assert.Contains("'AutoencoderKL', not 'AutoencoderTiny'", e.Message);
        Assert.Contains("madebyollin/taesdxl", e.Message);
    }

    [Fact]
    public void RefusesWeightsOfAnotherNetwork()
    {
        var folder = Directory.CreateDirectory(Path.Combine(dir, "wrong-weights")).FullName;
        File.Copy(Path.Combine(decoderFolder, "config.json"), Path.Combine(folder, "config.json"));
        var weights = Path.Combine(folder, TinyAutoencoderDecoder.WeightsFileName);
        SafetensorsWriter.Write(weights, [new SafetensorsWriter.Entry("decoder.conv_in.weight", [16, 4, 3, 3], () => new float[16 * 4 * 9])]);

        var e = Assert.Throws<CheckpointException>(() => TinyAutoencoderDecoder.Load(folder, SessionSettings.Default));

        Assert.Equal(weights, e.FilePath);
        Assert.Equal("decoder.layers.0.weight", e.TensorName);
    }

    [Fact]
    public void RefusesAFolderWithoutItsFiles()
    {
        var empty = Directory.CreateDirectory(Path.Combine(dir, "empty")).FullName;
        var missing = Path.Combine(dir, "nowhere");

        Assert.Contains(TinyAutoencoderDecoder.WeightsFileName, Assert.Throws<FileNotFoundException>(() => TinyAutoencoderDecoder.Load(empty, SessionSettings.Default)).Message);
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => TinyAutoencoderDecoder.Load(missing, SessionSettings.Default)).Message);
    }

    [Theory]
    [InlineData("ClassName", "_class_name")]
    [InlineData("Widths", "must all be equal")]
    [InlineData("Blocks", "num_decoder_blocks")]
    [InlineData("ActFn", "act_fn")]
    [InlineData("UpsampleFn", "upsample_fn")]
    public void RefusesConfigsItCannotBuild(string change, string named)
    {
        var config = change switch
        {
            "ClassName" => new TinyAutoencoderConfig { ClassName = "AutoencoderKL" },
            "Widths" => new TinyAutoencoderConfig { DecoderBlockOutChannels = new[] { 64, 64, 32, 32 } },
            "Blocks" => new TinyAutoencoderConfig { NumDecoderBlocks = new[] { 3, 3, 1 } },
            "ActFn" => new TinyAutoencoderConfig { ActFn = "mish" },
            _ => new TinyAutoencoderConfig { UpsampleFn = "bilinear" },
        };
        var e = Assert.Throws<InvalidDataException>(() => TinyAutoencoderDecoder.BuildGraph(config, new WeightRecorder("taesd"), null));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void RefusesLatentsOfTheWrongShapeAndStopsWhenCancelled()
    {
        using var decoder = TinyAutoencoderDecoder.Load(decoderFolder, SessionSettings.Default);

        var e = Assert.Throws<ArgumentException>(() => decoder.Run(new FloatTensor(new float[3 * 8 * 8], [1, 3, 8, 8])));
        Assert.Contains("[1, 3, 8, 8]", e.Message);
        Assert.Throws<OperationCanceledException>(() => decoder.Run(new FloatTensor(new float[4 * 8 * 8], [1, 4, 8, 8]), new CancellationToken(true)));
    }
}
