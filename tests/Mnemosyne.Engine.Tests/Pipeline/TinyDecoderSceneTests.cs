using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// Whole scenes with the tiny decoder: Decoder Tiny decodes the same final latents with it, and live previews show
/// its picture of each step's denoised estimate in a PNG file while the scene runs.
/// </summary>
public sealed class TinyDecoderSceneTests(TinyDecoderSceneTests.Model model, ITestOutputHelper output) : IClassFixture<TinyDecoderSceneTests.Model>
{
    /// <summary>The tiny checkpoint and tiny decoder, and an engine opened with both.</summary>
    public sealed class Model : IDisposable
    {
        public Model()
        {
            RandomCheckpoint.Write(Checkpoint, CheckpointShape.Tiny, 41);
            RandomCheckpoint.WriteTinyDecoder(TinyDecoder, RandomCheckpoint.TinyDecoderShape, 42);
            Engine = SceneEngine.Open(new EngineOptions { CheckpointPath = Checkpoint, TinyDecoderPath = TinyDecoder });
        }

        public string Root { get; } = Directory.CreateTempSubdirectory("mnemosyne-tiny-scene-").FullName;
        public string Checkpoint => Path.Combine(Root, "model");
        public string TinyDecoder => Path.Combine(Root, "taesd");
        public SceneEngine Engine { get; }

        public void Dispose()
        {
            Engine.Dispose();
            Directory.Delete(Root, recursive: true);
        }
    }

    private static readonly SceneRequest Small = new() { Prompt = "a lighthouse at dusk", Seed = 5, Steps = 4, Width = 96, Height = 64 };

    /// <summary>Reports on the generating thread, so that the test sees each step as it ends.</summary>
    private sealed class Immediate(Action<SceneProgress> report) : IProgress<SceneProgress>
    {
        public List<SceneProgress> Reports { get; } = [];

        public void Report(SceneProgress value)
        {
            Reports.Add(value);
            report(value);
        }
    }

    private string NewFolder() => Directory.CreateDirectory(Path.Combine(model.Root, $"previews-{Guid.NewGuid():N}")).FullName;

    private RgbImage TinyDecode(FloatTensor latents)
    {
        using var decoder = TinyAutoencoderDecoder.Load(model.TinyDecoder, SessionSettings.Default);
        return DecoderOutputConverter.ToRgbImage(decoder.Run(latents));
    }

    private static int MaxLevelDifference(RgbImage a, RgbImage b)
    {
        Assert.Equal((a.Width, a.Height), (b.Width, b.Height));
        return a.Rgb.Zip(b.Rgb, (x, y) => Math.Abs(x - y)).Max();
    }

    [Fact]
    public void DecoderTinyDecodesTheSameFinalLatentsWithTheTinyDecoder()
    {
        var full = model.Engine.Generate(Small);
        var tiny = model.Engine.Generate(Small with { Decoder = SceneDecoder.Tiny });

        Assert.Equal(full.FinalLatents.Data, tiny.FinalLatents.Data);
        Assert.Equal(TinyDecode(tiny.FinalLatents).Rgb, tiny.Image.Rgb);
        Assert.Equal((96, 64), (tiny.Image.Width, tiny.Image.Height));
        Assert.NotEqual(full.Image.Rgb, tiny.Image.Rgb);
        Assert.True(tiny.Image.Rgb.Distinct().Count() > 32, "the tiny decoder's picture is nearly flat: the test would not see a wrong decode");
        Assert.Equal((SceneDecoder.Full, SceneDecoder.Tiny), (full.Decoder, tiny.Decoder));
        Assert.Contains(", Decoder: Tiny,", tiny.ParametersText());
        Assert.DoesNotContain("Decoder", full.ParametersText());
    }

    [Fact]
    public void PreviewsShowEachStepsEstimateAndEndWithTheFinalOne()
    {
        var path = Path.Combine(NewFolder(), "preview.png");
        var previews = new List<RgbImage>();
        var progress = new Immediate(_ => previews.Add(SafeImageDecoder.Default.Decode(path)));

        var scene = model.Engine.Generate(Small with { Decoder = SceneDecoder.Tiny }, progress, preview: new PreviewSettings { Path = path });

        Assert.Equal(new int?[] { 1, 2, 3, 4 }, progress.Reports.Select(r => r.PreviewStep));
        Assert.All(progress.Reports, r => Assert.Equal(path, r.PreviewPath));
        Assert.All(previews, p => Assert.Equal((96, 64), (p.Width, p.Height)));
        Assert.NotEqual(previews[0].Rgb, previews[^1].Rgb);
        // Euler's last estimate is its final latents up to float rounding (the final sigma is 0).
        int difference = MaxLevelDifference(scene.Image, previews[^1]);
        output.WriteLine($"last preview vs the tiny decode of the final latents: {difference} levels at most");
        Assert.InRange(difference, 0, 1);
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    [Fact]
    public void PreviewEveryDrawsEveryNthStepAndTheLast()
    {
        var path = Path.Combine(NewFolder(), "every.png");
        var progress = new Immediate(_ => { });

        var scene = model.Engine.Generate(Small with { Steps = 5 }, progress, preview: new PreviewSettings { Path = path, Every = 2 });

        Assert.Equal(new int?[] { null, 2, 2, 4, 5 }, progress.Reports.Select(r => r.PreviewStep));
        Assert.Equal(new[] { null, path, path, path, path }, progress.Reports.Select(r => r.PreviewPath));
        // A full-decoder scene's preview is still the tiny decoder's picture.
        Assert.Equal(SceneDecoder.Full, scene.Decoder);
        Assert.InRange(MaxLevelDifference(TinyDecode(scene.FinalLatents), SafeImageDecoder.Default.Decode(path)), 0, 1);
    }

    [Fact]
    public void ACancelDuringPreviewsStopsTheSceneAndLeavesTheLastWholePreview()
    {
        var before = model.Engine.Generate(Small);
        var path = Path.Combine(NewFolder(), "cancelled.png");
        using var cancel = new CancellationTokenSource();
        var progress = new Immediate(p => { if (p.Step == 2) cancel.Cancel(); });

        Assert.ThrowsAny<OperationCanceledException>(() =>
            model.Engine.Generate(Small with { Steps = 20 }, progress, cancel.Token, new PreviewSettings { Path = path }));

        Assert.Equal(2, progress.Reports.Count);
        Assert.Equal((96, 64), (SafeImageDecoder.Default.Decode(path).Width, SafeImageDecoder.Default.Decode(path).Height));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!));
        var after = model.Engine.Generate(Small);
        Assert.Equal(before.Image.Rgb, after.Image.Rgb);
        Assert.Equal(before.FinalLatents.Data, after.FinalLatents.Data);
    }

    [Fact]
    public void APreviewThatCannotBeWrittenIsAWarningAndTheSceneGoesOn()
    {
        var folder = NewFolder();
        var path = Path.Combine(folder, "gone.png");
        var progress = new Immediate(p => { if (p.Step == 1) Directory.Delete(folder, recursive: true); });

        var scene = model.Engine.Generate(Small, progress, preview: new PreviewSettings { Path = path });

        Assert.Equal(4, progress.Reports.Count);
        Assert.All(progress.Reports, r => Assert.Equal(1, r.PreviewStep));
        Assert.Contains(scene.Warnings, w => w.Contains("preview of step 2 could not be written", StringComparison.Ordinal));
        Assert.Single(scene.Warnings, w => w.Contains("preview", StringComparison.Ordinal));
    }

    [Fact]
    public void BadPreviewSettingsAreRefusedBeforeAnyStep()
    {
        var progress = new Immediate(_ => { });
        var missing = Path.Combine(model.Root, "no-such-folder", "preview.png");

        var e = Assert.Throws<DirectoryNotFoundException>(() => model.Engine.Generate(Small, progress, preview: new PreviewSettings { Path = missing }));
        Assert.Contains(Path.GetDirectoryName(missing)!, e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Engine.Generate(Small, progress, preview: new PreviewSettings { Path = Path.Combine(model.Root, "p.png"), Every = 0 }));
        Assert.Throws<ArgumentException>(() => model.Engine.Generate(Small, progress, preview: new PreviewSettings { Path = model.Root }));
        Assert.Empty(progress.Reports);
    }

    [Fact]
    public void AnEngineWithoutATinyDecoderRefusesTinySceneAndPreviews()
    {
        using var plain = SceneEngine.Open(new EngineOptions { CheckpointPath = model.Checkpoint });

        Assert.False(plain.SupportsTinyDecoder);
        Assert.True(model.Engine.SupportsTinyDecoder);
        var tiny = Assert.Throws<InvalidOperationException>(() => plain.Generate(Small with { Decoder = SceneDecoder.Tiny }));
        Assert.Contains("without a tiny decoder", tiny.Message);
        Assert.Contains("Decoder Tiny", tiny.Message);
        var previews = Assert.Throws<InvalidOperationException>(() => plain.Generate(Small, preview: new PreviewSettings { Path = Path.Combine(model.Root, "p.png") }));
        Assert.Contains("live previews", previews.Message);
    }

    [Fact]
    public void ATinyDecoderOfAnotherLatentSpaceIsRefusedAtOpen()
    {
        var folder = Path.Combine(model.Root, "taef1-like");
        RandomCheckpoint.WriteTinyDecoder(folder, RandomCheckpoint.TinyDecoderShape with { LatentChannels = 16 }, 43);

        var e = Assert.Throws<CheckpointException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = model.Checkpoint, TinyDecoderPath = folder }));

        Assert.Contains("16-channel latents", e.Message);
        Assert.Contains("madebyollin/taesdxl", e.Message);
        Assert.Equal(Path.Combine(folder, "config.json"), e.FilePath);
    }
}
