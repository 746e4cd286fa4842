using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The generated tiny checkpoint is a complete SDXL + IP-Adapter model the engine can run.</summary>
public sealed class RandomCheckpointTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-random-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private EngineOptions Write(ulong seed)
    {
        var folder = Path.Combine(root, $"seed{seed}");
        RandomCheckpoint.Write(folder, CheckpointShape.Tiny, seed);
        return new EngineOptions
        {
            CheckpointPath = folder,
            IpAdapterPath = Path.Combine(folder, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath),
        };
    }

    [Fact]
    public void IsTheSameForTheSameSeedAndDiffersForAnother()
    {
        var a = Write(3);
        var b = Write(3);
        var c = Write(4);
        string Unet(EngineOptions o) => Path.Combine(o.CheckpointPath, "unet", "diffusion_pytorch_model.safetensors");
        Assert.Equal(File.ReadAllBytes(Unet(a)), File.ReadAllBytes(Unet(b)));
        Assert.NotEqual(File.ReadAllBytes(Unet(a)), File.ReadAllBytes(Unet(c)));
    }

    [Fact]
    public void MakesReproducibleNonSquareScenesThatTheReferenceSteers()
    {
        using var engine = SceneEngine.Open(Write(11));
        var image = new RgbImage(40, 30, Enumerable.Range(0, 40 * 30 * 3).Select(i => (byte)(i * 7)).ToArray());
        var picture = Path.Combine(root, "character.png");
        PngFile.Save(picture, image);
        var reference = engine.EncodeReference([picture], "toy");
        var request = new SceneRequest { Prompt = "a knight in the rain", Seed = 5, Steps = 3, Width = 96, Height = 64, Reference = reference };

        var first = engine.Generate(request);
        var again = engine.Generate(request);
        var unsteered = engine.Generate(request with { ReferenceWeight = 0 });

        Assert.Equal((96, 64), (first.Image.Width, first.Image.Height));
        Assert.Equal([1, 4, 8, 12], first.FinalLatents.Shape);
        Assert.All(first.FinalLatents.Data, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(first.Image.Rgb, again.Image.Rgb);
        Assert.NotEqual(first.FinalLatents.Data, unsteered.FinalLatents.Data);
        Assert.Equal("toy", first.ReferenceName);
    }

    [Fact]
    public void EncodersLoadedOnDemandGiveTheSameScenesAsKeptOnes()
    {
        var options = Write(12);
        using var onDemand = SceneEngine.Open(options);
        using var kept = SceneEngine.Open(options with { KeepEncodersLoaded = true });
        foreach (var prompt in new[] { "a lighthouse", "a lighthouse at night" })
        {
            var request = new SceneRequest { Prompt = prompt, NegativePrompt = "fog", Seed = 9, Steps = 2, Width = 64, Height = 64 };
            Assert.Equal(kept.Generate(request).FinalLatents.Data, onDemand.Generate(request).FinalLatents.Data);
        }
    }

    /// <summary>
    /// The adapter's keys and values are made once per reference (the first reference's in one batch with the
    /// unconditional branch's) and cached: references taken in another order, guided or not, by another engine,
    /// steer the same scenes.
    /// </summary>
    [Fact]
    public void ReferenceKeysGiveTheSameScenesInAnyOrder()
    {
        var options = Write(15);
        using var engine = SceneEngine.Open(options);
        using var other = SceneEngine.Open(options);
        CharacterReference Reference(string name, int seed)
        {
            var picture = Path.Combine(root, name + ".png");
            PngFile.Save(picture, new RgbImage(32, 48, Enumerable.Range(0, 32 * 48 * 3).Select(i => (byte)(i * seed)).ToArray()));
            return engine.EncodeReference([picture], name);
        }
        var (a, b) = (Reference("a", 7), Reference("b", 13));
        var request = new SceneRequest { Prompt = "a knight", Seed = 4, Steps = 2, Width = 64, Height = 64, ReferenceWeight = 0.8f };

        var expected = new Dictionary<(string, float), float[]>();
        foreach (var (reference, guidance) in new[] { (b, 1f), (a, 5f), (b, 5f), (a, 1f) })
            expected[(reference.Name, guidance)] = other.Generate(request with { Reference = reference, GuidanceScale = guidance }).FinalLatents.Data;
        foreach (var (reference, guidance) in new[] { (a, 5f), (b, 5f), (a, 5f), (a, 1f), (b, 1f) })
            Assert.Equal(expected[(reference.Name, guidance)], engine.Generate(request with { Reference = reference, GuidanceScale = guidance }).FinalLatents.Data);
        Assert.NotEqual(expected[("a", 5f)], expected[("b", 5f)]);
    }

    [Fact]
    public void AnEncoderMissingATensorIsRefusedWhenTheEngineOpens()
    {
        var options = Write(13);
        var file = Path.Combine(options.CheckpointPath, "text_encoder_2", "model.safetensors");
        using (var original = SafetensorsFile.Open(file))
        {
            var kept = original.Tensors.Keys.Where(k => k != "text_projection.weight").ToList();
            var broken = file + ".broken";
            SafetensorsWriter.Write(broken, kept.Select(k => new SafetensorsWriter.Entry(k, original.Tensors[k].Shape, () => original.ReadFloat32(k))).ToList());
            original.Dispose();
            File.Move(broken, file, overwrite: true);
        }
        var e = Assert.Throws<CheckpointException>(() => SceneEngine.Open(options));
        Assert.Equal("text_projection.weight", e.TensorName);
    }

    [Fact]
    public void InLowMemoryTheUnetIsReleasedForTheDecodeAndReloadedForTheNextScene()
    {
        var options = Write(14);
        using var normal = SceneEngine.Open(options);
        using var lowMemory = SceneEngine.Open(options with { LowMemory = true });
        var request = new SceneRequest { Prompt = "a harbour", Seed = 3, Steps = 2, Width = 64, Height = 96 };
        var expected = normal.Generate(request);
        foreach (var _ in new[] { 1, 2 })
        {
            var scene = lowMemory.Generate(request);
            Assert.Equal(expected.FinalLatents.Data, scene.FinalLatents.Data);
            Assert.Equal(expected.Image.Rgb, scene.Image.Rgb);
        }
    }
}
