using System.Security.Cryptography;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>
/// Which of a scene's LoRAs are speed LoRAs: the installed file of a LoRA model with a scheduler, or a file with the
/// SHA-256 its manifest pins. The files need not be LoRAs here: only their paths and bytes are looked at.
/// </summary>
public sealed class SpeedLorasTests : IDisposable
{
    private const string Revision = "0123456789abcdef0123456789abcdef01234567";
    private static readonly SchedulerSettings Lcm = new() { Kind = SchedulerKind.Lcm, Steps = 4, GuidanceScale = 1 };
    private static readonly SchedulerSettings Lightning = new() { Kind = SchedulerKind.Euler, TimestepSpacing = "trailing", Steps = 4, GuidanceScale = 0 };

    private readonly TemporaryFolder folder = new();
    private readonly byte[] lcmBytes = ModelTestSupport.Bytes(300, 1);
    private readonly byte[] lightningBytes = ModelTestSupport.Bytes(300, 2);

    public void Dispose() => folder.Dispose();

    private ModelCatalog Catalog(bool pinned)
    {
        var cache = new HubCache(Path.Combine(folder.Path, "hub"));
        ModelManifest Lora(string name, string repository, string file, byte[] bytes, SchedulerSettings sampling)
        {
            var installed = cache.SnapshotFile(repository, Revision, file);
            Directory.CreateDirectory(Path.GetDirectoryName(installed)!);
            File.WriteAllBytes(installed, bytes);
            return new ModelManifest
            {
                Name = name, Description = "A speed LoRA.", Role = ModelRole.Lora, Repository = repository, Revision = Revision, Entry = file,
                Files = [new ModelFile(file, bytes.Length, pinned ? Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant() : null)],
                Scheduler = sampling,
            };
        }
        return new ModelCatalog(
            [Lora("lcm-lora-sdxl", "latent-consistency/lcm-lora-sdxl", "pytorch_lora_weights.safetensors", lcmBytes, Lcm),
             Lora("sdxl-lightning-4step-lora", "ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors", lightningBytes, Lightning)],
            cache);
    }

    private string Installed(ModelCatalog catalog, string name) => catalog.Inspect(name).EntryPath!;

    private string Copy(byte[] bytes, string name)
    {
        var path = Path.Combine(folder.Path, "loras", name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void TheInstalledFileIsTheSpeedLora_AmongOtherLoras()
    {
        var catalog = Catalog(pinned: false);
        var character = Copy(ModelTestSupport.Bytes(100, 3), "kira.safetensors");

        var found = SpeedLoras.Find(catalog, [new LoraRequest(character, 0.8f), new LoraRequest(Installed(catalog, "lcm-lora-sdxl"))]);

        Assert.Equal(new SpeedLora("lcm-lora-sdxl", Installed(catalog, "lcm-lora-sdxl"), Lcm), found);
        Assert.Null(SpeedLoras.Find(catalog, [new LoraRequest(character)]));
        Assert.Null(SpeedLoras.Find(catalog, [new LoraRequest(Installed(catalog, "lcm-lora-sdxl"), 0)]));
    }

    [Fact]
    public void ACopyElsewhereIsKnownByItsPinnedSha256_AndOnlyThen()
    {
        var copy = Copy(lightningBytes, "fast.safetensors");

        Assert.Equal("sdxl-lightning-4step-lora", SpeedLoras.Find(Catalog(pinned: true), [new LoraRequest(copy, 0.5f)])?.ModelName);
        Assert.Null(SpeedLoras.Find(Catalog(pinned: false), [new LoraRequest(copy, 0.5f)]));
    }

    [Fact]
    public void TwoSpeedLorasThatDiffer_AreOneErrorNamingBoth_TheSameOneTwiceIsNot()
    {
        var catalog = Catalog(pinned: true);
        var lcm = new LoraRequest(Installed(catalog, "lcm-lora-sdxl"));

        var e = Assert.Throws<ArgumentException>(() => SpeedLoras.Find(catalog, [lcm, new LoraRequest(Copy(lightningBytes, "fast.safetensors"))]));

        Assert.Equal("Lora", e.ParamName);
        Assert.Contains("two speed LoRAs that ask for different sampling: lcm-lora-sdxl (4 Lcm steps, guidance 1) and sdxl-lightning-4step-lora (4 Euler steps at trailing timesteps, guidance 0)", e.Message);
        Assert.Equal("lcm-lora-sdxl", SpeedLoras.Find(catalog, [lcm, new LoraRequest(Copy(lcmBytes, "lcm-copy.safetensors"), 0.5f)])?.ModelName);
    }
}
