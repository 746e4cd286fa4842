using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class ClipVisionEncoderTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-clip-vision-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static ClipVisionEncoder Load(TinyModel model)
        => ClipVisionEncoder.Load(IpAdapterFiles.FromRepository(model.IpAdapterRepository), SessionSettings.Default);

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void MatchesDiffusersOnTheReferenceImage(string model)
    {
        var tiny = TinyModel.Named(model);
        using var encoder = Load(tiny);
        var embeds = encoder.Run(ReadNpy(Path.Combine(tiny.ReferenceFolder, "reference-pixel-values.npy")));
        var error = MaxAbsError(ReadNpy(Path.Combine(tiny.ReferenceFolder, "reference-image-embeds.npy")), embeds);
        output.WriteLine($"config {model} reference image_embeds: {error:E2}");
        Assert.InRange(error, 0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void MatchesDiffusersOnRandomPixels(string model)
    {
        var tiny = TinyModel.Named(model);
        using var encoder = Load(tiny);
        var error = MaxAbsError(ReadNpy(tiny.NetworkCase("image-encoder-random-image-embeds.npy")), encoder.Run(tiny.RandomPixelValues()));
        output.WriteLine($"config {model} random pixels' image_embeds: {error:E2}");
        Assert.InRange(error, 0, Tolerance);
    }

    [Fact]
    public void EncodesEachImageOfABatchAlone()
    {
        var tiny = TinyModel.B;
        var reference = ReadNpy(Path.Combine(tiny.ReferenceFolder, "reference-pixel-values.npy"));
        var random = tiny.RandomPixelValues();
        var batch = new FloatTensor([.. random.Data, .. reference.Data], [2, 3, 224, 224]);
        using var encoder = Load(tiny);
        var embeds = encoder.Run(batch);
        Assert.Equal([2, 16], embeds.Shape);
        Assert.InRange(MaxAbsError(ReadNpy(tiny.NetworkCase("image-encoder-random-image-embeds.npy")), Rows(embeds, 0, 1)), 0, Tolerance);
        Assert.InRange(MaxAbsError(ReadNpy(Path.Combine(tiny.ReferenceFolder, "reference-image-embeds.npy")), Rows(embeds, 1, 1)), 0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void AsksForExactlyTheTensorsOfTheCheckpoint(string model)
    {
        var files = IpAdapterFiles.FromRepository(TinyModel.Named(model).IpAdapterRepository);
        var recorder = new WeightRecorder("recorded");
        ClipVisionEncoder.BuildGraph(files.ReadImageEncoderConfig(), recorder, null);
        Assert.Equal(KeySet(files.ImageEncoderWeightsPath, "vision_model.embeddings.position_ids"), KeySet(recorder));
    }

    [Fact]
    public void RecordsTheVitHKeySet()
    {
        var recorder = new WeightRecorder("image_encoder");
        ClipVisionEncoder.BuildGraph(new ClipVisionConfig(), recorder, null);
        // ViT-H/14 with its 1024-wide projection.
        Assert.Equal(632_076_800, recorder.Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)));
        Assert.Equal([257L, 1280L], recorder.Tensors.Single(t => t.Name == "vision_model.embeddings.position_embedding.weight").Shape);
        Assert.Equal([1280L, 3L, 14L, 14L], recorder.Tensors.Single(t => t.Name == "vision_model.embeddings.patch_embedding.weight").Shape);
    }

    [Fact]
    public void RefusesACheckpointMissingATensor()
    {
        const string missing = "vision_model.pre_layrnorm.weight";
        var copy = CopyComponent(Path.Combine(TinyModel.B.IpAdapterRepository, "models", "image_encoder"), "model.safetensors", dir,
            (name, shape) => name == missing ? null : shape);
        var e = Assert.Throws<CheckpointException>(() => ClipVisionEncoder.Load(dir, SessionSettings.Default));
        Assert.Equal(copy, e.FilePath);
        Assert.Equal(missing, e.TensorName);
        Assert.Contains(copy, e.Message);
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void RefusesACheckpointWithAWrongShape()
    {
        const string wrong = "visual_projection.weight";
        var copy = CopyComponent(Path.Combine(TinyModel.B.IpAdapterRepository, "models", "image_encoder"), "model.safetensors", dir,
            (name, shape) => name == wrong ? [shape[1], shape[0]] : shape);
        var e = Assert.Throws<CheckpointException>(() => ClipVisionEncoder.Load(dir, SessionSettings.Default));
        Assert.Equal(copy, e.FilePath);
        Assert.Equal(wrong, e.TensorName);
        Assert.Contains("[32, 16]", e.Message);
        Assert.Contains("[16, 32]", e.Message);
    }

    [Fact]
    public void RefusesPixelsOfTheWrongSize()
    {
        using var encoder = Load(TinyModel.B);
        var e = Assert.Throws<ArgumentException>(() => encoder.Run(new FloatTensor(new float[3 * 200 * 200], [1, 3, 200, 200])));
        Assert.Contains("[B, 3, 224, 224]", e.Message);
    }
}
