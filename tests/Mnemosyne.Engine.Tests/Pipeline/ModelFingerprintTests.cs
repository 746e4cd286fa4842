using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The fingerprint Invoke-MnemosyneBatch compares hosts by: the files' content, not where they are.</summary>
public sealed class ModelFingerprintTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-fingerprint-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void Is_the_same_for_a_copy_elsewhere_and_differs_when_one_weight_differs()
    {
        var copy = CopyOfConfigB("copy");
        var changed = CopyOfConfigB("changed");
        var vae = Path.Combine(changed, "vae", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(vae);
        bytes[^1] ^= 1; // the last weight's lowest bits
        File.WriteAllBytes(vae, bytes);

        var original = Fingerprint(TinyModel.B.Folder);

        Assert.Matches("^[0-9a-f]{64}$", original);
        Assert.Equal(original, Fingerprint(copy));
        Assert.NotEqual(original, Fingerprint(changed));
    }

    [Fact]
    public void Covers_the_ip_adapter()
    {
        using var engine = SceneEngine.Open(new EngineOptions { CheckpointPath = TinyModel.B.Folder });
        Assert.NotEqual(Fingerprint(TinyModel.B.Folder), ModelFingerprint.Of(engine));
    }

    private static string Fingerprint(string checkpoint)
    {
        using var engine = SceneEngine.Open(new EngineOptions
        {
            CheckpointPath = checkpoint,
            IpAdapterPath = Path.Combine(checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath),
        });
        return ModelFingerprint.Of(engine);
    }

    private string CopyOfConfigB(string name)
    {
        var target = Path.Combine(root, name, "model");
        foreach (var file in Directory.EnumerateFiles(TinyModel.B.Folder, "*", SearchOption.AllDirectories))
        {
            var copied = Path.Combine(target, Path.GetRelativePath(TinyModel.B.Folder, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copied)!);
            File.Copy(file, copied);
        }
        return target;
    }
}
