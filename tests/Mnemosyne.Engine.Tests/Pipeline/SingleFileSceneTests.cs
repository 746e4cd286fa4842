using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>A single-file checkpoint makes the same scenes as the same weights in the diffusers layout.</summary>
public sealed class SingleFileSceneTests : IDisposable
{
    private const ulong Seed = 23;
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-single-scene-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string Diffusers => Path.Combine(root, "diffusers");

    private string AdapterPath => Path.Combine(Diffusers, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath);

    /// <summary>
    /// The tiny model in both layouts, and a base folder with only what a single file lacks (the diffusers
    /// folder's configs, tokenizers and scheduler; no weights), so the single file's weights are the only ones.
    /// </summary>
    private (string Single, string BaseFolder) Write()
    {
        RandomCheckpoint.Write(Diffusers, CheckpointShape.Tiny, Seed);
        var single = Path.Combine(root, "tiny-sdxl.safetensors");
        RandomCheckpoint.WriteSingleFile(single, CheckpointShape.Tiny, Seed);
        var baseFolder = Path.Combine(root, "base");
        foreach (var file in Directory.EnumerateFiles(Diffusers, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(Diffusers, file);
            if (relative.StartsWith(RandomCheckpoint.IpAdapterFolder, StringComparison.Ordinal) || file.EndsWith(".safetensors", StringComparison.Ordinal)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(baseFolder, relative))!);
            File.Copy(file, Path.Combine(baseFolder, relative));
        }
        return (single, baseFolder);
    }

    [Fact]
    public void TheSameWeightsInBothLayoutsGiveTheSameImage()
    {
        var (single, baseFolder) = Write();
        using var fromFolder = SceneEngine.Open(new EngineOptions { CheckpointPath = Diffusers, IpAdapterPath = AdapterPath });
        using var fromFile = SceneEngine.Open(new EngineOptions { CheckpointPath = single, BaseModelPath = baseFolder, IpAdapterPath = AdapterPath });
        var picture = Path.Combine(root, "character.png");
        PngFile.Save(picture, new RgbImage(32, 24, Enumerable.Range(0, 32 * 24 * 3).Select(i => (byte)(i * 13)).ToArray()));
        var reference = fromFolder.EncodeReference([picture], "toy");
        var request = new SceneRequest
        {
            Prompt = "a lighthouse at dusk", NegativePrompt = "fog", Seed = 9, Steps = 3, Width = 64, Height = 80,
            Reference = reference, ReferenceWeight = 0.8f,
        };

        var expected = fromFolder.Generate(request);
        var actual = fromFile.Generate(request);

        Assert.Equal(expected.FinalLatents.Data, actual.FinalLatents.Data);
        Assert.Equal(expected.Image.Rgb, actual.Image.Rgb);
        Assert.Equal("tiny-sdxl", actual.Model);
        // The reference steers the single-file model too.
        Assert.NotEqual(actual.FinalLatents.Data, fromFile.Generate(request with { ReferenceWeight = 0 }).FinalLatents.Data);
    }

    [Fact]
    public void AsksForTheBaseModelFolderASingleFileLacks()
    {
        var (single, baseFolder) = Write();
        var e = Assert.Throws<ArgumentException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = single }));
        Assert.Contains("BaseModelPath", e.Message);

        File.Delete(Path.Combine(baseFolder, "tokenizer_2", "merges.txt"));
        var missing = Assert.Throws<FileNotFoundException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = single, BaseModelPath = baseFolder }));
        Assert.Contains(Path.Combine("tokenizer_2", "merges.txt"), missing.Message);
    }

    [Fact]
    public void RefusesMissingAndPickledCheckpointFiles()
    {
        var absent = Path.Combine(root, "absent.safetensors");
        Assert.Contains(absent, Assert.Throws<FileNotFoundException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = absent })).Message);

        var pickle = Path.Combine(root, "model.ckpt");
        File.WriteAllBytes(pickle, [0x80, 0x02]);
        var e = Assert.Throws<ArgumentException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = pickle, BaseModelPath = root }));
        Assert.Contains(".safetensors", e.Message);
    }

    [Fact]
    public void ReadsTheSizesFromTheBaseFolderNotTheSdxlDefaults()
    {
        var (single, baseFolder) = Write();
        // Without the base folder's unet config the SDXL base sizes apply, which this tiny file does not have.
        File.Delete(Path.Combine(baseFolder, "unet", "config.json"));
        var e = Assert.Throws<CheckpointException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = single, BaseModelPath = baseFolder }));
        Assert.Contains("model.diffusion_model.", e.Message);
        Assert.Contains("checkpoint and config do not match", e.Message);
    }
}
