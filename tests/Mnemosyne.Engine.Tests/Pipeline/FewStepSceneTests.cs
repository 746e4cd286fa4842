using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// A replacement UNet (a random F16 UNet file standing in for SDXL-Lightning's 4-step UNet) with the
/// few-step settings: 4 Euler steps at trailing timesteps, no guidance, the reference still applied.
/// </summary>
public sealed class FewStepSceneTests : IClassFixture<FewStepSceneTests.Model>
{
    private readonly Model model;

    public FewStepSceneTests(Model model) => this.model = model;

    /// <summary>The tiny base model, its engine, and the same with the stand-in Lightning UNet.</summary>
    public sealed class Model : IDisposable
    {
        public Model()
        {
            RandomCheckpoint.Write(Checkpoint, CheckpointShape.Tiny, 31);
            RandomCheckpoint.WriteUnet(LightningUnet, CheckpointShape.Tiny.Unet, 32, TensorDType.F16);
            Base = SceneEngine.Open(new EngineOptions { CheckpointPath = Checkpoint, IpAdapterPath = AdapterPath });
            Fast = SceneEngine.Open(new EngineOptions { CheckpointPath = Checkpoint, IpAdapterPath = AdapterPath, UnetWeightsPath = LightningUnet });
            var picture = Path.Combine(Root, "character.png");
            PngFile.Save(picture, new RgbImage(24, 40, Enumerable.Range(0, 24 * 40 * 3).Select(i => (byte)(i * 5)).ToArray()));
            Reference = Base.EncodeReference([picture], "toy");
        }

        public string Root { get; } = Directory.CreateTempSubdirectory("mnemosyne-few-step-").FullName;
        public string Checkpoint => Path.Combine(Root, "base");
        public string AdapterPath => Path.Combine(Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath);
        public string LightningUnet => Path.Combine(Root, "lightning", "sdxl_lightning_4step_unet.safetensors");
        public SceneEngine Base { get; }
        public SceneEngine Fast { get; }
        public CharacterReference Reference { get; }

        public void Dispose()
        {
            Base.Dispose();
            Fast.Dispose();
            Directory.Delete(Root, recursive: true);
        }
    }

    private SceneRequest FewStep(float referenceWeight = 0.7f) => new SceneRequest
    {
        Prompt = "a knight in the rain", Seed = 3, Width = 64, Height = 64, Reference = model.Reference, ReferenceWeight = referenceWeight,
    }.ForFewStepUnet();

    private sealed class Recorder : IProgress<SceneProgress>
    {
        public List<SceneProgress> Reports { get; } = [];

        public void Report(SceneProgress value) => Reports.Add(value);
    }

    [Fact]
    public void RunsFourUnguidedEulerStepsAtTrailingTimesteps()
    {
        var progress = new Recorder();
        var scene = model.Fast.Generate(FewStep(), progress);

        Assert.Equal([999f, 749f, 499f, 249f], progress.Reports.Select(r => r.Timestep));
        Assert.Equal([1, 2, 3, 4], progress.Reports.Select(r => r.Step));
        Assert.All(progress.Reports, r => Assert.Equal(4, r.TotalSteps));
        Assert.Equal((4, SchedulerKind.Euler, TimestepSpacing.Trailing, 0f), (scene.Steps, scene.Scheduler, scene.Spacing, scene.GuidanceScale));
        Assert.Contains("Steps: 4, Sampler: Euler, Schedule type: Automatic, CFG scale: 0,", scene.ParametersText());
        Assert.Contains(", Timestep spacing: trailing,", scene.ParametersText());
        Assert.Equal("base+sdxl_lightning_4step_unet", scene.Model);
        Assert.All(scene.FinalLatents.Data, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void TheBaseSpacingIsKeptWhenNotOverridden()
    {
        var progress = new Recorder();
        model.Base.Generate(new SceneRequest { Prompt = "x", Seed = 1, Steps = 4, Width = 64, Height = 64, GuidanceScale = 0 }, progress);
        // SDXL base's scheduler config: leading spacing with steps_offset 1.
        Assert.Equal([751f, 501f, 251f, 1f], progress.Reports.Select(r => r.Timestep));
    }

    [Fact]
    public void TheReplacementUnetIsTheOneThatRuns()
    {
        var fast = model.Fast.Generate(FewStep());
        Assert.NotEqual(model.Base.Generate(FewStep()).FinalLatents.Data, fast.FinalLatents.Data);

        // The same UNet file inside a diffusers folder gives exactly the same scene.
        var folder = Path.Combine(model.Root, "with-lightning");
        CopyFolder(model.Checkpoint, folder);
        File.Copy(model.LightningUnet, Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors"), overwrite: true);
        using var engine = SceneEngine.Open(new EngineOptions { CheckpointPath = folder, IpAdapterPath = model.AdapterPath });
        Assert.Equal(fast.FinalLatents.Data, engine.Generate(FewStep()).FinalLatents.Data);
    }

    [Fact]
    public void TheReferenceStillSteersAndTheNegativePromptIsIgnoredWithoutGuidance()
    {
        var steered = model.Fast.Generate(FewStep());
        Assert.NotEqual(steered.FinalLatents.Data, model.Fast.Generate(FewStep(referenceWeight: 0)).FinalLatents.Data);
        Assert.Equal(steered.FinalLatents.Data, model.Fast.Generate(FewStep() with { NegativePrompt = "blurry" }).FinalLatents.Data);
        Assert.Equal("toy", steered.ReferenceName);
    }

    [SymbolicLinkFact]
    public void ReadsAUnetLinkedIntoAHuggingFaceCacheBlob()
    {
        // models--ByteDance--SDXL-Lightning/snapshots/<rev>/x.safetensors → ../../blobs/<sha256>
        var hub = Path.Combine(model.Root, "hub");
        var snapshot = Directory.CreateDirectory(Path.Combine(hub, "snapshots", "c9a24f4")).FullName;
        var blob = Path.Combine(Directory.CreateDirectory(Path.Combine(hub, "blobs")).FullName, "a3e5b1f0");
        File.Copy(model.LightningUnet, blob, overwrite: true);
        var link = Path.Combine(snapshot, "sdxl_lightning_4step_unet.safetensors");
        File.CreateSymbolicLink(link, Path.Combine("..", "..", "blobs", "a3e5b1f0"));
        using var engine = SceneEngine.Open(new EngineOptions { CheckpointPath = model.Checkpoint, IpAdapterPath = model.AdapterPath, UnetWeightsPath = link });
        Assert.Equal(model.Fast.Generate(FewStep()).FinalLatents.Data, engine.Generate(FewStep()).FinalLatents.Data);
    }

    [Fact]
    public void RefusesReplacementFilesThatAreNotAUnet()
    {
        var single = Path.Combine(model.Root, "whole.safetensors");
        SafetensorsWriter.Write(single, [new("model.diffusion_model.out.2.bias", [4], () => new float[4])]);
        var lora = Path.Combine(model.Root, "sdxl_lightning_4step_lora.safetensors");
        SafetensorsWriter.Write(lora, [new("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", [1], () => [0f])]);
        var otherSize = Path.Combine(model.Root, "other-size-unet.safetensors");
        RandomCheckpoint.WriteUnet(otherSize, CheckpointShape.Tiny.Unet with { BlockOutChannels = new[] { 16, 32, 32 } }, 1);

        SceneEngine Open(string unet) => SceneEngine.Open(new EngineOptions { CheckpointPath = model.Checkpoint, UnetWeightsPath = unet });
        Assert.Contains("open it as the checkpoint", Assert.Throws<CheckpointException>(() => Open(single)).Message);
        Assert.Contains("LoRA", Assert.Throws<CheckpointException>(() => Open(lora)).Message);
        var wrong = Assert.Throws<CheckpointException>(() => Open(otherSize));
        Assert.Contains(otherSize, wrong.Message);
        Assert.Contains("checkpoint and config do not match", wrong.Message);
        Assert.Throws<FileNotFoundException>(() => Open(Path.Combine(model.Root, "absent.safetensors")));
    }

    [Fact]
    public void RefusesAnUnknownSpacing()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Fast.Generate(FewStep() with { Spacing = (TimestepSpacing)7 }));
        Assert.Equal("Spacing", e.ParamName);
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}

/// <summary>A test that makes symbolic links; skipped on Windows, where that needs developer mode.</summary>
public sealed class SymbolicLinkFactAttribute : FactAttribute
{
    public SymbolicLinkFactAttribute()
    {
        if (OperatingSystem.IsWindows()) Skip = "Creating symbolic links on Windows needs developer mode or administrator rights.";
    }
}
