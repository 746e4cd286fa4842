using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Tests.Checkpoints;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public class DiffusersCheckpointTests
{
    [FidelityFact]
    public void OpensTheFidelityCheckpointWithTypedConfigs()
    {
        var checkpoint = DiffusersCheckpoint.Open(TestPaths.FidelityModel);
        var unet = checkpoint.ReadUnetConfig();
        Assert.Equal([32, 64], unet.BlockOutChannels.Values);
        Assert.Equal(2, unet.HeadsAt(0));
        Assert.Equal(4, unet.HeadsAt(1));
        Assert.Equal(2, unet.TransformerLayersPerBlock[1]);
        Assert.Equal(8, unet.NormNumGroups);
        Assert.Equal(0.13025f, checkpoint.ReadVaeConfig().ScalingFactor);
        Assert.Equal("quick_gelu", checkpoint.ReadTextEncoderConfig().HiddenAct);
        var text2 = checkpoint.ReadTextEncoder2Config();
        Assert.True(text2.HasProjection);
        Assert.Equal("gelu", text2.HiddenAct);
        Assert.EndsWith("diffusion_pytorch_model.safetensors", checkpoint.Unet.WeightsPath);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void OpensTheIpAdapterRepositoryLayout(string model)
    {
        var files = IpAdapterFiles.FromRepository(TinyModel.Named(model).IpAdapterRepository);
        Assert.Equal(16, files.ReadImageEncoderConfig().ProjectionDim);
    }

    [Fact]
    public void RefusesAFolderWithoutModelIndex()
    {
        var dir = Directory.CreateTempSubdirectory("mnemosyne-ckpt-").FullName;
        try
        {
            var e = Assert.Throws<FileNotFoundException>(() => DiffusersCheckpoint.Open(dir));
            Assert.Contains("model_index.json", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void RefusesAnSd15StyleFolder()
    {
        var dir = Directory.CreateTempSubdirectory("mnemosyne-ckpt-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "model_index.json"), "{\"_class_name\": \"StableDiffusionPipeline\"}");
            Directory.CreateDirectory(Path.Combine(dir, "unet"));
            Directory.CreateDirectory(Path.Combine(dir, "text_encoder"));
            var e = Assert.Throws<CheckpointException>(() => DiffusersCheckpoint.Open(dir));
            Assert.Contains("not a Stable Diffusion XL checkpoint", e.Message);
            Assert.Contains("StableDiffusionPipeline", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}

public sealed class DiffusersCheckpointVariantTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-variant-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void AFolderWithOnlyFp16FilesUsesThem()
    {
        RandomCheckpoint.Write(root, CheckpointShape.Tiny, 1);
        foreach (var (folder, stem) in new[] { ("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model"), ("text_encoder_2", "model") })
            File.Move(Path.Combine(root, folder, stem + ".safetensors"), Path.Combine(root, folder, stem + ".fp16.safetensors"));

        var checkpoint = DiffusersCheckpoint.Open(root);

        Assert.EndsWith("diffusion_pytorch_model.fp16.safetensors", checkpoint.Unet.WeightsPath);
        Assert.EndsWith("model.fp16.safetensors", checkpoint.TextEncoder2.WeightsPath);
    }
}
