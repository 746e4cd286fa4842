using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Tests.Onnx;

/// <summary>
/// Optimised sessions kept on disk (<see cref="SessionCache"/>): a later load maps the saved session instead of
/// optimising, computes exactly what an uncached session computes, and a changed, damaged or half-written entry is
/// never used.
/// </summary>
public sealed class SessionCacheTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-sessions-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string CacheRoot => Path.Combine(root, "sessions");

    private string Checkpoint(ulong seed = 5)
    {
        var folder = Path.Combine(root, $"checkpoint-{seed}");
        if (!Directory.Exists(folder)) RandomCheckpoint.Write(folder, CheckpointShape.Tiny, seed);
        return folder;
    }

    private static string UnetFolder(string checkpoint) => Path.Combine(checkpoint, "unet");

    private static SessionSettings Cached(SessionCache cache) => new() { SessionCache = cache };

    /// <summary>One forward of the tiny UNet on fixed inputs.</summary>
    private static float[] Forward(string unetFolder, SessionSettings settings)
    {
        using var unet = Unet.Load(unetFolder, null, settings);
        var config = unet.Config;
        var conditioning = new UnetConditioning(
            Random([1, 7, config.CrossAttentionDim], 2), Random([1, unet.PooledTextDim], 3),
            new FloatTensor([64, 48, 0, 0, 64, 48], [1, Unet.TimeIdCount]));
        return unet.Run(Random([1, config.InChannels, 8, 6], 1), 500f, conditioning).Data;
    }

    private static FloatTensor Random(int[] shape, int seed)
    {
        var random = new Random(seed);
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        return new FloatTensor(data, shape);
    }

    /// <summary>The entry folders of the cache (each with its model, data file and manifest), without writers' temporary folders.</summary>
    private string[] Entries() => Directory.Exists(CacheRoot)
        ? Directory.GetDirectories(CacheRoot).SelectMany(Directory.GetDirectories).Order().ToArray()
        : [];

    private string TheEntry() => Assert.Single(Entries());

    [Fact]
    public void TheSecondLoadMapsTheSavedSessionAndComputesTheSame()
    {
        var unet = UnetFolder(Checkpoint());
        var uncached = Forward(unet, SessionSettings.Default);
        Assert.Empty(Entries());

        var first = new SessionCache(CacheRoot);
        Assert.Equal(uncached, Forward(unet, Cached(first)));
        Assert.Equal((0, 1), (first.Loaded, first.Saved));
        var entry = TheEntry();
        Assert.Equal(["manifest.json", "model.data", "model.onnx"], Directory.GetFiles(entry).Select(Path.GetFileName).Order());
        // The pre-packed weights are saved beside the originals: the data file is larger than the weights it came from.
        Assert.True(new FileInfo(Path.Combine(entry, "model.data")).Length > new FileInfo(Path.Combine(unet, "diffusion_pytorch_model.safetensors")).Length);
        var written = Directory.GetFiles(entry).Select(File.GetLastWriteTimeUtc).ToArray();

        var second = new SessionCache(CacheRoot);
        Assert.Equal(uncached, Forward(unet, Cached(second)));
        Assert.Equal((1, 0), (second.Loaded, second.Saved));
        Assert.Equal(written, Directory.GetFiles(entry).Select(File.GetLastWriteTimeUtc));
        Assert.Empty(first.TakeWarnings());
        Assert.Empty(second.TakeWarnings());
    }

    [Fact]
    public void AChangedWeightFileReplacesItsEntryWithAWarning()
    {
        var checkpoint = Checkpoint();
        var unet = UnetFolder(checkpoint);
        var cache = new SessionCache(CacheRoot);
        Forward(unet, Cached(cache));
        var old = TheEntry();

        // Other weights under the same name: a fine-tune copied over the file.
        var weights = Path.Combine(unet, "diffusion_pytorch_model.safetensors");
        RandomCheckpoint.WriteUnet(weights, ConfigJson.Read<UnetConfig>(Path.Combine(unet, "config.json")), seed: 99);
        File.SetLastWriteTimeUtc(weights, DateTime.UtcNow.AddMinutes(1));
        var expected = Forward(unet, SessionSettings.Default);

        Assert.Equal(expected, Forward(unet, Cached(cache)));
        Assert.Equal((0, 2), (cache.Loaded, cache.Saved));
        var warning = Assert.Single(cache.TakeWarnings());
        Assert.Contains("other weights", warning);
        Assert.Contains(old, warning);
        Assert.NotEqual(old, TheEntry());

        Assert.Equal(expected, Forward(unet, Cached(cache)));
        Assert.Equal(1, cache.Loaded);
    }

    public static TheoryData<string> Damages => ["truncated data", "overwritten data", "overwritten model", "missing manifest", "foreign manifest"];

    [Theory]
    [MemberData(nameof(Damages))]
    public void ADamagedEntryIsNotUsedButReplacedWithAWarning(string damage)
    {
        var unet = UnetFolder(Checkpoint());
        var expected = Forward(unet, SessionSettings.Default);
        Forward(unet, Cached(new SessionCache(CacheRoot)));
        var entry = TheEntry();
        string File(string name) => Path.Combine(entry, name);
        switch (damage)
        {
            case "truncated data":
                using (var stream = new FileStream(File("model.data"), FileMode.Open)) stream.SetLength(stream.Length / 2);
                break;
            case "overwritten data":
                // Zeros in the middle of the weights: ONNX Runtime would load them without a word.
                using (var stream = new FileStream(File("model.data"), FileMode.Open))
                {
                    stream.Position = stream.Length / 2;
                    stream.Write(new byte[4096]);
                }
                break;
            case "overwritten model":
                using (var stream = new FileStream(File("model.onnx"), FileMode.Open))
                {
                    stream.Position = stream.Length / 3;
                    stream.Write("not a graph"u8);
                }
                break;
            case "missing manifest":
                System.IO.File.Delete(File("manifest.json"));
                break;
            case "foreign manifest":
                System.IO.File.WriteAllText(File("manifest.json"), "{\"Key\": \"some other graph\"}");
                break;
        }

        var cache = new SessionCache(CacheRoot);
        Assert.Equal(expected, Forward(unet, Cached(cache)));
        Assert.Equal((0, 1), (cache.Loaded, cache.Saved));
        var warning = Assert.Single(cache.TakeWarnings());
        Assert.Contains("is damaged", warning);
        Assert.Contains(entry, warning);

        // The replacement is whole, and used.
        Assert.Equal(expected, Forward(unet, Cached(cache)));
        Assert.Equal(1, cache.Loaded);
        Assert.Empty(cache.TakeWarnings());
    }

    [Fact]
    public void ConcurrentLoadsLeaveOneWholeEntry()
    {
        var unet = UnetFolder(Checkpoint());
        var expected = Forward(unet, SessionSettings.Default);
        // Caches of their own, as separate processes would have.
        var caches = Enumerable.Range(0, 4).Select(_ => new SessionCache(CacheRoot)).ToArray();
        using var start = new Barrier(caches.Length);
        var results = caches.AsParallel().WithDegreeOfParallelism(caches.Length).Select(cache =>
        {
            start.SignalAndWait();
            return Forward(unet, Cached(cache));
        }).ToList();

        Assert.All(results, result => Assert.Equal(expected, result));
        Assert.All(caches, cache => Assert.Empty(cache.TakeWarnings()));
        var entry = TheEntry();
        // Every loser of the race discarded its copy.
        Assert.Single(Directory.GetDirectories(Path.GetDirectoryName(entry)!));

        var after = new SessionCache(CacheRoot);
        Assert.Equal(expected, Forward(unet, Cached(after)));
        Assert.Equal((1, 0), (after.Loaded, after.Saved));
    }

    [Fact]
    public void GraphsOverTheSameWeightsKeepEntriesOfTheirOwn()
    {
        var checkpoint = Checkpoint();
        var adapter = IpAdapterFiles.FromRepository(Path.Combine(checkpoint, RandomCheckpoint.IpAdapterFolder));
        var cache = new SessionCache(CacheRoot);
        void LoadBoth()
        {
            Unet.Load(UnetFolder(checkpoint), adapter, Cached(cache)).Dispose();
            Unet.Load(UnetFolder(checkpoint), null, Cached(cache)).Dispose();
        }

        LoadBoth();
        LoadBoth();
        Assert.Equal((2, 2), (cache.Loaded, cache.Saved));
        Assert.Equal(2, Entries().Length);
        Assert.Empty(cache.TakeWarnings());
    }

    [Fact]
    public void ACacheThatCannotBeWrittenStillGivesTheSessionWithAWarning()
    {
        var unet = UnetFolder(Checkpoint());
        var blocked = Path.Combine(root, "a-file");
        File.WriteAllText(blocked, "a file where the cache folder should be");
        var cache = new SessionCache(blocked);

        Assert.Equal(Forward(unet, SessionSettings.Default), Forward(unet, Cached(cache)));
        Assert.Equal((0, 0), (cache.Loaded, cache.Saved));
        var warning = Assert.Single(cache.TakeWarnings());
        Assert.Contains("could not be kept", warning);
        Assert.Contains("SessionCachePath", warning);
    }

    [Fact]
    public void EntriesOfACheckpointThatIsGoneAreDeletedWhenAnotherIsSaved()
    {
        var cache = new SessionCache(CacheRoot);
        var gone = Checkpoint(seed: 6);
        Forward(UnetFolder(gone), Cached(cache));
        Directory.Delete(gone, recursive: true);

        Forward(UnetFolder(Checkpoint()), Cached(cache));
        var entry = TheEntry();
        Assert.Contains(Path.Combine(root, "checkpoint-5"), File.ReadAllText(Path.Combine(entry, "manifest.json")));
    }

    [Fact]
    public void AnEngineOpenedTwiceMakesTheSameScenesAsOneWithoutTheCache()
    {
        var checkpoint = Checkpoint();
        var options = new EngineOptions
        {
            CheckpointPath = checkpoint,
            IpAdapterPath = Path.Combine(checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath),
            SessionCachePath = CacheRoot,
        };
        var request = new SceneRequest { Prompt = "a lighthouse at dusk", Seed = 4, Steps = 2, Width = 64, Height = 64 };
        Scene Generate(EngineOptions o, out SessionCache? cache)
        {
            using var engine = SceneEngine.Open(o);
            var scene = engine.Generate(request);
            cache = engine.SessionCache;
            return scene;
        }

        var uncached = Generate(options with { DisableSessionCache = true }, out var none);
        Assert.Null(none);
        Assert.Empty(Entries());

        var first = Generate(options, out var filled);
        // The UNet, the VAE and the image projection at the open; both text encoders for the scene.
        Assert.Equal((0, 5), (filled!.Loaded, filled.Saved));
        Assert.Equal(5, Entries().Length);
        var second = Generate(options, out var used);
        Assert.Equal((5, 0), (used!.Loaded, used.Saved));

        foreach (var scene in new[] { first, second })
        {
            Assert.Equal(uncached.FinalLatents.Data, scene.FinalLatents.Data);
            Assert.Equal(uncached.Image.Rgb, scene.Image.Rgb);
            Assert.Empty(scene.Warnings);
        }
    }

    [Fact]
    public void AnInt8EngineUsesTheCacheToo()
    {
        var checkpoint = Checkpoint();
        var options = new EngineOptions
        {
            CheckpointPath = checkpoint,
            Precision = WeightPrecision.Int8,
            ConvertedWeightsPath = Path.Combine(root, "converted"),
            SessionCachePath = CacheRoot,
        };
        var request = new SceneRequest { Prompt = "a lighthouse at dusk", Seed = 4, Steps = 2, Width = 64, Height = 64 };
        float[] Latents(EngineOptions o, out SessionCache? cache)
        {
            using var engine = SceneEngine.Open(o);
            var latents = engine.Generate(request).FinalLatents.Data;
            cache = engine.SessionCache;
            return latents;
        }

        var uncached = Latents(options with { DisableSessionCache = true }, out _);
        Assert.Equal(uncached, Latents(options, out var filled));
        Assert.Equal((0, 4), (filled!.Loaded, filled.Saved));
        Assert.Equal(uncached, Latents(options, out var used));
        Assert.Equal((4, 0), (used!.Loaded, used.Saved));
        Assert.Empty(used.TakeWarnings());
    }
}
