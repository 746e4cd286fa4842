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

    [Theory]
    [InlineData("scheduler/scheduler_config.json", "num_train_timesteps", "0", "num_train_timesteps 0 is too small")]
    [InlineData("unet/config.json", "layers_per_block", "\"two\"", "layers_per_block")]
    [InlineData("unet/config.json", "norm_eps", "-1", "norm_eps is -1; a normalisation's epsilon must be a small positive number")]
    [InlineData("text_encoder/config.json", "layer_norm_eps", "0", "layer_norm_eps is 0; a normalisation's epsilon")]
    [InlineData("unet/config.json", "block_out_channels", "[\"32\", \"64\"]", "block_out_channels")]
    public void ABadConfigValue_IsRefusedAtOpen_NamingTheFileAndTheKey(string file, string key, string value, string problem)
    {
        RandomCheckpoint.Write(root, CheckpointShape.Tiny, 1);
        var path = Path.Combine(root, file);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config[key] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(path, config.ToJsonString());

        var e = Assert.Throws<CheckpointException>(() => SceneEngine.Open(new EngineOptions { CheckpointPath = root }));

        Assert.Equal(path, e.FilePath);
        Assert.Contains(problem, e.Message);
    }
}
