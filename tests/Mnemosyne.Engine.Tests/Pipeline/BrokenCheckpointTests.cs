using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>A damaged text file of a checkpoint is reported as that file's defect, so a caller can point at it.</summary>
public sealed class BrokenCheckpointTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-broken-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Theory]
    [InlineData("unet/config.json", "unet/config.json", "not a valid UnetConfig config")]
    [InlineData("model_index.json", "model_index.json", "not a valid ModelIndex config")]
    [InlineData("tokenizer_2/vocab.json", "tokenizer_2", "is not a JSON object of token strings")]
    [InlineData("scheduler/scheduler_config.json", "scheduler/scheduler_config.json", "not valid JSON")]
    public void NamesTheDamagedFile(string damaged, string named, string problem)
    {
        RandomCheckpoint.Write(root, CheckpointShape.Tiny, 1);
        File.WriteAllText(Path.Combine(root, damaged), "{ \"cut\": [1, ");

        var e = Assert.Throws<CheckpointException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = root }));

        Assert.Equal(Path.Combine(root, named), e.FilePath);
        Assert.Contains(problem, e.Message);
        Assert.Contains("estore it from the model's download", e.Message);
    }
}
