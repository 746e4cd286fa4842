using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The phases a scene reports, in order, and the ones its caches answer.</summary>
public sealed class ScenePhaseTests(SceneEngineFixture engines) : IClassFixture<SceneEngineFixture>
{
    /// <summary>Keeps the reports in the order they are made, on the generating thread.</summary>
    private sealed class Recorder<T> : IProgress<T>
    {
        public List<T> Reports { get; } = [];

        public void Report(T value) => Reports.Add(value);
    }

    [Fact]
    public void ASceneReportsItsPhasesInOrder_AndWhatItsCachesAnswered()
    {
        var engine = engines.Engine(TinyModel.B);
        var reference = engine.EncodeReference([TinyModel.B.ReferenceImage], "phases");
        var request = new SceneRequest { Prompt = "a lighthouse, phases", Seed = 2, Steps = 2, Width = 64, Height = 64, Reference = reference };
        var phases = new Recorder<ScenePhaseReport>();
        engine.Generate(request, phases: phases);

        Assert.Equal(
            [
                (ScenePhase.TextEncoding, false), (ScenePhase.TextEncoding, true), (ScenePhase.ReferenceEncoding, false), (ScenePhase.ReferenceEncoding, true),
                (ScenePhase.Denoising, false), (ScenePhase.Denoising, true), (ScenePhase.Decoding, false), (ScenePhase.Decoding, true),
            ],
            phases.Reports.Select(r => (r.Phase, r.Finished)));
        Assert.All(phases.Reports, r => Assert.False(r.Cached));
        Assert.Equal(["a lighthouse, phases", "phases", "a lighthouse, phases", "VAE"], phases.Reports.Where(r => r.Finished).Select(r => r.Subject));
        Assert.All(phases.Reports.Where(r => r.Finished), r => Assert.True(r.Elapsed > TimeSpan.Zero));

        // Again: the prompt's encoding and the reference's keys and values come from the caches, finished at once.
        var again = new Recorder<ScenePhaseReport>();
        engine.Generate(request, phases: again);
        Assert.Equal(
            [(ScenePhase.TextEncoding, true, true), (ScenePhase.ReferenceEncoding, true, true), (ScenePhase.Denoising, false, false), (ScenePhase.Denoising, true, false)],
            again.Reports.Take(4).Select(r => (r.Phase, r.Finished, r.Cached)));
    }

    [Fact]
    public void EncodingAReferenceReportsEachPicture()
    {
        var engine = engines.Engine(TinyModel.B);
        var picture = new ReferencePicture(TinyModel.B.ReferenceImage, SafeImageDecoder.Default.Decode(TinyModel.B.ReferenceImage));
        var phases = new Recorder<ScenePhaseReport>();
        engine.EncodeReference([picture, picture], "twice", phases: phases);
        Assert.Equal([(1, false), (1, true), (2, false), (2, true)], phases.Reports.Select(r => (r.Item, r.Finished)));
        Assert.All(phases.Reports, r => Assert.Equal((ScenePhase.ReferenceEncoding, TinyModel.B.ReferenceImage, 2), (r.Phase, r.Subject, r.ItemCount)));
    }
}
