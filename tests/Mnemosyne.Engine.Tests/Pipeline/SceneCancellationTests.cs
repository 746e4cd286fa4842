using Microsoft.ML.OnnxRuntime;
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

        // At 1024² a guided step of the tiny UNet takes several hundred milliseconds, so a cancel 50 ms
        // after step 1 ends lands inside a later step's UNet run. On a busy machine the timer can fire
        // late, or (rarely) between two steps, where the loop's own check stops the scene instead: the
        // scene is tried a few times until a stop inside ONNX Runtime is seen.
        var large = new SceneRequest { Prompt = "a cat", Seed = 3, Steps = 50, Width = 1024, Height = 1024 };
        bool stoppedInsideARun = false;
        for (int attempt = 0; attempt < 3 && !stoppedInsideARun; attempt++)
        {
            using var cancel = new CancellationTokenSource();
            var steps = new List<int>();
            var progress = new Immediate(p =>
            {
                steps.Add(p.Step);
                if (p.Step == 1) cancel.CancelAfter(50);
            });
            var stopped = Assert.ThrowsAny<OperationCanceledException>(() => engine.Generate(large, progress, cancel.Token));
            Assert.InRange(steps.Count, 1, large.Steps - 1);
            stoppedInsideARun = stopped.InnerException is OnnxRuntimeException;
        }

        Assert.True(stoppedInsideARun, "no cancel landed inside a UNet run in three tries");
        var after = engine.Generate(small);
        Assert.Equal(before.Image.Rgb, after.Image.Rgb);
        Assert.Equal(before.FinalLatents.Data, after.FinalLatents.Data);
    }
}
