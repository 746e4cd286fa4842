using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// diffusers' fidelity scenes made by an engine opened with <see cref="WeightPrecision.Int8"/>: how far the final
/// latents drift from diffusers' (float32) over a whole sampling loop. Reported for every case, and bounded
/// loosely: the int8 deviation of a few steps, not that of a broken UNet.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class Int8SceneTests(Int8EngineFixture engines, ITestOutputHelper output) : IClassFixture<Int8EngineFixture>
{
    /// <summary>Bound on max-abs(int8 − diffusers) / max-abs(diffusers) of the final latents.</summary>
    private const double RelativeBound = 0.1;

    [Theory]
    [MemberData(nameof(DiffusersSceneCases.All), MemberType = typeof(DiffusersSceneCases))]
    public void FinalLatentsStayNearDiffusers(string model, string name)
    {
        var tiny = TinyModel.Named(model);
        var (request, folder) = DiffusersSceneCases.Load(tiny, name, engines.Reference(tiny));

        var scene = engines.Engine(tiny).Generate(request);
        var latents = scene.FinalLatents;

        var expected = NpyFile.Read(Path.Combine(folder, "final-latents.npy"));
        Assert.Equal(expected.Shape, latents.Shape);
        double error = expected.Data.Zip(latents.Data, (a, b) => Math.Abs(a - b)).Max();
        double peak = expected.Data.Max(Math.Abs);
        var pixels = SafeImageDecoder.Default.Decode(Path.Combine(folder, "image.png")).Rgb.Zip(scene.Image.Rgb, (a, b) => Math.Abs(a - b)).ToArray();
        output.WriteLine($"{model} {name}: int8 final latents max-abs {error:E2} from diffusers (latents up to {peak:F2}: {error / peak:P2}); "
                         + $"8-bit pixels {pixels.Average():F2} levels apart on average, {pixels.Count(d => d <= 4) / (double)pixels.Length:P1} within 4");
        Assert.True(error <= RelativeBound * peak, $"int8 final latents are {error:E2} from diffusers, over {RelativeBound:P0} of {peak:F2}");
    }
}

/// <summary>Int8 over a single-file checkpoint: the weights are converted through its layout (renamed, fused, transposed).</summary>
public sealed class Int8SingleFileTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-int8-single-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void TheSameWeightsInBothLayoutsGiveTheSameInt8Image()
    {
        var diffusers = Path.Combine(root, "diffusers");
        RandomCheckpoint.Write(diffusers, CheckpointShape.Tiny, seed: 23);
        var single = Path.Combine(root, "tiny-sdxl.safetensors");
        RandomCheckpoint.WriteSingleFile(single, CheckpointShape.Tiny, seed: 23);
        var adapter = Path.Combine(diffusers, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath);
        var cache = Path.Combine(root, "converted");
        EngineOptions Int8(string checkpoint) => new()
        {
            CheckpointPath = checkpoint, BaseModelPath = diffusers, IpAdapterPath = adapter, Precision = WeightPrecision.Int8, ConvertedWeightsPath = cache,
        };

        using var fromFolder = SceneEngine.Open(Int8(diffusers));
        using var fromFile = SceneEngine.Open(Int8(single));
        using var float32 = SceneEngine.Open(Int8(diffusers) with { Precision = WeightPrecision.Float32 });
        var request = new SceneRequest { Prompt = "a lighthouse at dusk", Seed = 9, Steps = 3, Width = 64, Height = 80 };

        var scene = fromFolder.Generate(request);
        Assert.Equal(WeightPrecision.Int8, scene.Precision);
        Assert.Contains(", Precision: Int8,", scene.ParametersText());
        var expected = scene.FinalLatents.Data;
        Assert.Equal(expected, fromFile.Generate(request).FinalLatents.Data);
        var float32Scene = float32.Generate(request);
        Assert.NotEqual(expected, float32Scene.FinalLatents.Data);
        Assert.DoesNotContain("Precision", float32Scene.ParametersText());
        // The networks read from one single file get a converted file each, in that file's folder, and keep them.
        var folder = ConvertedWeightCache.FolderFor(single, WeightPrecision.Int8, cache);
        var files = Directory.GetFiles(folder, "*.safetensors").Select(Path.GetFileName).Order().ToArray();
        Assert.Collection(files,
            name => Assert.StartsWith("text-encoder-", name),
            name => Assert.StartsWith("text-encoder-", name),
            name => Assert.StartsWith("unet-", name));
        var written = files.Select(f => File.GetLastWriteTimeUtc(Path.Combine(folder, f!))).ToArray();
        using (var reopened = SceneEngine.Open(Int8(single))) reopened.Generate(request);
        Assert.Equal(written, files.Select(f => File.GetLastWriteTimeUtc(Path.Combine(folder, f!))));
    }
}

/// <summary>Int8 engines over the tiny models, converting into a temporary cache.</summary>
public sealed class Int8EngineFixture : SceneEngineFixture
{
    protected override WeightPrecision Precision => WeightPrecision.Int8;
}
