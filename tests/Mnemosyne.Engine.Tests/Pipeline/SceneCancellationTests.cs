using Microsoft.ML.OnnxRuntime;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>Ctrl+C in the middle of a denoising step: ONNX Runtime stops inside the UNet, and the engine goes on as if nothing happened.</summary>
public sealed class SceneCancellationTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-cancel-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    /// <summary>Reports on the generating thread, so that the test sees each step as it ends.</summary>
    private sealed class Immediate(Action<SceneProgress> report) : IProgress<SceneProgress>
    {
        public void Report(SceneProgress value) => report(value);
    }

    [Fact]
    public void ACancelDuringAStepStopsTheUnetRunAndTheNextSceneIsUnchanged()
    {
        RandomCheckpoint.Write(root, CheckpointShape.Tiny, 1);
        using var engine = SceneEngine.Open(new EngineOptions { CheckpointPath = root });
        var small = new SceneRequest { Prompt = "a cat", Seed = 3, Steps = 2, Width = 64, Height = 64 };
        var before = engine.Generate(small);

        // At 1024² a guided step of the tiny UNet takes several hundred milliseconds (more on a busy machine),
        // so a cancel 50 ms after step 1 ends lands inside step 2's UNet run.
        using var cancel = new CancellationTokenSource();
        var steps = new List<int>();
        var progress = new Immediate(p =>
        {
            steps.Add(p.Step);
            if (p.Step == 1) cancel.CancelAfter(50);
        });
        var large = new SceneRequest { Prompt = "a cat", Seed = 3, Steps = 50, Width = 1024, Height = 1024 };
        var stopped = Assert.ThrowsAny<OperationCanceledException>(() => engine.Generate(large, progress, cancel.Token));

        Assert.IsType<OnnxRuntimeException>(stopped.InnerException);
        Assert.Equal([1], steps);
        var after = engine.Generate(small);
        Assert.Equal(before.Image.Rgb, after.Image.Rgb);
        Assert.Equal(before.FinalLatents.Data, after.FinalLatents.Data);
    }
}
