using System.Diagnostics;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Text;
using Mnemosyne.Testing;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Tools.Bench;

/// <summary>
/// What one phase process is asked to measure. <paramref name="ResultPath"/> is rewritten after every
/// measurement, so a phase killed for memory still leaves what it measured. <paramref name="DecodeBytes"/>:
/// what the VAE phase saw a decode at the scene's size add to memory, or 0 when unknown.
/// </summary>
/// <paramref name="SessionCache"/>: whether networks keep their optimised sessions (<see cref="Engine.Onnx.SessionCache"/>) outside the
/// phases that measure the cache itself. <paramref name="Scenes"/>, <paramref name="Fast"/>: how many scenes each engine process of
/// the "engines" phase makes, and whether as -Quality Fast (4 unguided steps, the tiny decoder) or guided with the VAE.
public sealed record PhaseRequest(string Phase, string Checkpoint, int Threads, int[] Sizes, int Steps, string WorkFolder, string ResultPath, long DecodeBytes = 0, bool LowMemory = false,
    WeightPrecision Precision = WeightPrecision.Float32, bool SessionCache = true, int Scenes = 3, bool Fast = false)
{
    /// <summary>Converted weights are kept beside the benchmark's checkpoint, not in the user's cache.</summary>
    public string ConvertedWeightsRoot => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(Checkpoint))!, "converted-weights");

    /// <summary>Optimised sessions too.</summary>
    public string SessionCacheRoot => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(Checkpoint))!, "sessions");
}

/// <summary>
/// The benchmark's phases. Each runs in its own process (see <see cref="Benchmark"/>), so its peak
/// resident memory is its own and nothing stays loaded from one phase to the next. Components are
/// loaded on their own where the phase is about one network; the "open-…" phases and "scene" open the whole
/// engine as a user would.
/// </summary>
public static partial class BenchPhases
{
    public const string MatMulPeak = "matmul-peak";
    public const string OpenUncached = "open-uncached";
    public const string OpenCaching = "open-caching";
    public const string OpenCached = "open-cached";
    public const string OpenCold = "open-cold";
    public const string Text = "text";
    public const string Reference = "reference";
    public const string Vae = "vae";
    public const string UnetStep = "unet";
    public const string Scene = "scene";
    public const string FastScene = "fast-scene";
    public const string IpAdapterPlus = "ipa-plus";
    public const string Engines = "engines";
    public const string IpaControl = "ipa-control";

    /// <summary>Converts the UNet's weights for a precision other than Float32; run before the others, not chosen.</summary>
    public const string Convert = "convert";

    public static IReadOnlyList<string> All { get; } = [MatMulPeak, OpenUncached, OpenCaching, OpenCached, OpenCold, Text, Reference, Vae, UnetStep, Scene, FastScene];

    /// <summary>Phases that run only when named (-Phases), after the others.</summary>
    public static IReadOnlyList<string> OnRequest { get; } = [Lora, IpAdapterPlus, IpaControl, Engines];

    private const string Prompt = "a portrait of a red-haired explorer in a rain-soaked neon market, cinematic light";

    public static PhaseResult Run(PhaseRequest request)
    {
        var memory = new ProcessMemory();
        var result = new PhaseResult(request.Phase) { LoadBefore = Machine.LoadAverage() };
        var context = new PhaseContext(request, memory, result);
        switch (request.Phase)
        {
            case MatMulPeak: RunMatMulPeak(context); break;
            case OpenUncached: RunOpenWarm(context, sessionCache: false, "engine open, warm, without the session cache"); break;
            case OpenCaching: RunOpenCaching(context); break;
            case OpenCached: RunOpenWarm(context, sessionCache: true, "engine open, warm, from the session cache"); break;
            case OpenCold: RunOpenCold(context); break;
            case Text: RunText(context); break;
            case Reference: RunReference(context); break;
            case Vae: RunVae(context); break;
            case UnetStep: RunUnet(context); break;
            case Scene: RunScene(context); break;
            case FastScene: RunFastScene(context); break;
            case Lora: RunLora(context); break;
            case IpAdapterPlus: RunIpAdapterPlus(context); break;
            case IpaControl: RunIpaControl(context); break;
            case Convert: RunConvert(context); break;
            case Engines: RunEngines(context); break;
            case EngineWorker: RunEngineWorker(context); break;
            default: throw new ArgumentException($"Unknown benchmark phase '{request.Phase}': use one of {string.Join(", ", All.Concat(OnRequest))}.");
        }
        result.Memory.Add(memory.Sample("end"));
        result.ProcessPeakBytes = memory.ProcessPeak;
        result.LoadAfter = Machine.LoadAverage();
        return result;
    }

    /// <summary>Timed runs per MatMul shape after one warm-up; the best is the figure, as the machine is shared.</summary>
    private const int PeakRuns = 4;

    /// <summary>
    /// [M, K, N]: the square 4096³, and the UNet's own linear-layer shapes at 1024² with guidance (8192
    /// tokens at 640 channels, 2048 at 1280; attention projections and feed-forward). On some CPUs the
    /// square product is memory-bound and well below the kernel's best, so the peak is the best of all.
    /// </summary>
    private static readonly int[][] PeakShapes =
    [
        [4096, 4096, 4096],
        [8192, 640, 640],
        [8192, 640, 5120],
        [2048, 1280, 1280],
        [2048, 1280, 10240],
    ];

    /// <summary>M×K·K×N MatMuls with a constant right side (pre-packed, like a weight): best kernel time per shape.</summary>
    private static void RunMatMulPeak(PhaseContext c)
    {
        foreach (var shape in PeakShapes)
        {
            int m = shape[0], k = shape[1], n = shape[2];
            var g = new OnnxGraph("matmul-peak", null);
            var a = g.Input("a", DataType.Float, m, k);
            var b = g.Constant(RandomValues(k * n, 2), k, n);
            g.Output(g.MatMul(a, b), "y", DataType.Float, m, n);
            var prefix = c.ProfilePrefix($"matmul-{m}x{k}x{n}");
            var input = new FloatTensor(RandomValues(m * k, 1), [m, k]);
            using (var model = OnnxModel.Create(g, c.Settings(prefix)))
            {
                for (int run = 0; run < PeakRuns + 1; run++)
                    model.Run([ModelInput.Float("a", input)], ["y"]);
            }
            var runs = OrtProfile.Read(OrtProfile.Find(prefix)).Skip(1).Select(WorkSummary.Of).ToList();
            c.Add(new Measurement($"{MatMulPrefix} {m}×{k}·{k}×{n} (kernel, best of {PeakRuns})", runs.Select(r => r.KernelSeconds).ToList(), c.Memory.ProcessPeak)
            {
                Work = runs.MinBy(r => r.KernelSeconds),
            });
        }
    }

    /// <summary>Names of the peak measurements start with this.</summary>
    public const string MatMulPrefix = "MatMul";

    /// <summary>
    /// Evicts the checkpoint's files from the page cache, then opens the whole engine. "Cold" means
    /// not in this machine's page cache; the virtual disk's host may still cache them. With the session cache
    /// (the default) the engine opens from the sessions that "open-caching" saved, and they are evicted too.
    /// </summary>
    private static void RunOpenCold(PhaseContext c)
    {
        var files = Directory.EnumerateFiles(c.Request.Checkpoint, "*", SearchOption.AllDirectories).ToList();
        c.Result.Values["checkpointBytes"] = files.Sum(f => new FileInfo(f).Length);
        // An Int8 engine reads the UNet from its converted weights: they are evicted too.
        if (Directory.Exists(c.Request.ConvertedWeightsRoot) && c.Request.Precision != WeightPrecision.Float32)
            files.AddRange(Directory.EnumerateFiles(c.Request.ConvertedWeightsRoot, "*", SearchOption.AllDirectories));
        if (Directory.Exists(c.Request.SessionCacheRoot) && c.Request.SessionCache)
            files.AddRange(Directory.EnumerateFiles(c.Request.SessionCacheRoot, "*", SearchOption.AllDirectories));
        c.Result.Values["pageCacheBytesBefore"] = PageCache.ResidentBytes(files);
        PageCache.Evict(files);
        c.Result.Values["pageCacheBytesAfterEviction"] = PageCache.ResidentBytes(files);
        var name = c.Request.SessionCache ? "engine open, cold, from the session cache" : "engine open, cold, without the session cache";
        using var engine = OpenEngine(c, name, files, sessionCache: c.Request.SessionCache);
        CountSessions(c, name, engine.SessionCache);
    }

    /// <summary>Opens the whole engine from a warm page cache, with or without the sessions "open-caching" saved, then loads the encoders.</summary>
    private static void RunOpenWarm(PhaseContext c, bool sessionCache, string name)
    {
        var files = Directory.EnumerateFiles(c.Request.Checkpoint, "*", SearchOption.AllDirectories).ToList();
        if (sessionCache && Directory.Exists(c.Request.SessionCacheRoot))
            files.AddRange(Directory.EnumerateFiles(c.Request.SessionCacheRoot, "*", SearchOption.AllDirectories));
        c.Result.Values["pageCacheBytesBefore"] = PageCache.ResidentBytes(files);
        using (var engine = OpenEngine(c, name, files, sessionCache: sessionCache)) CountSessions(c, name, engine.SessionCache);
        LoadEncoders(c, name.Replace("engine open", "encoders load", StringComparison.Ordinal), sessionCache);
    }

    /// <summary>
    /// Empties the benchmark's session cache, then opens the whole engine and loads the encoders: every network is
    /// optimised and saved, so that the phases after it open from the saved sessions.
    /// </summary>
    private static void RunOpenCaching(PhaseContext c)
    {
        var root = c.Request.SessionCacheRoot;
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        var files = Directory.EnumerateFiles(c.Request.Checkpoint, "*", SearchOption.AllDirectories).ToList();
        c.Result.Values["pageCacheBytesBefore"] = PageCache.ResidentBytes(files);
        const string name = "engine open, warm, optimising and saving the sessions";
        using (var engine = OpenEngine(c, name, files, sessionCache: true)) CountSessions(c, name, engine.SessionCache);
        LoadEncoders(c, "encoders load, optimising and saving the sessions", sessionCache: true);
        c.Result.Values["sessionCacheBytes"] = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        c.Save();
    }

    /// <summary>Both text encoders and the image encoder, as a scene with a new prompt and a new reference loads them.</summary>
    private static void LoadEncoders(PhaseContext c, string name, bool sessionCache)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        var options = EngineOptionsFor(c.Request);
        var adapter = IpAdapterFiles.Open(options.IpAdapterPath!, Path.Combine(c.Request.Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.ImageEncoderRelativePath));
        var settings = c.Settings(null) with { SessionCache = sessionCache ? new SessionCache(c.Request.SessionCacheRoot) : null };
        var seconds = Time(() =>
        {
            ClipTextEncoder.Load(checkpoint.TextEncoder, settings).Dispose();
            ClipTextEncoder.Load(checkpoint.TextEncoder2, settings).Dispose();
            ClipVisionEncoder.Load(adapter, settings).Dispose();
        });
        c.Add(new Measurement(name, [seconds], c.Memory.ProcessPeak) { Note = "both text encoders and the image encoder, one after the other" });
        CountSessions(c, name, settings.SessionCache);
    }

    private static void CountSessions(PhaseContext c, string name, SessionCache? cache)
    {
        if (cache is null) return;
        c.Result.Values[$"{name}: sessions loaded"] = cache.Loaded;
        c.Result.Values[$"{name}: sessions saved"] = cache.Saved;
        foreach (var warning in cache.TakeWarnings()) Console.WriteLine($"  warning: {warning}");
        c.Save();
    }

    /// <summary>
    /// Opens the engine, timing each network it loads. <paramref name="loads"/> keeps hearing the engine's
    /// "Loading …" messages after the open: networks loaded on demand (the encoders) are named there.
    /// </summary>
    private static SceneEngine OpenEngine(PhaseContext c, string name, IReadOnlyList<string> files, List<string>? loads = null, bool? sessionCache = null,
        string? tinyDecoder = null)
    {
        var marks = new List<(string What, TimeSpan At)>();
        var clock = Stopwatch.StartNew();
        bool opened = false;
        var options = EngineOptionsFor(c.Request) with { DisableSessionCache = !(sessionCache ?? c.Request.SessionCache), TinyDecoderPath = tinyDecoder };
        var engine = SceneEngine.Open(options, new ImmediateProgress<string>(m =>
        {
            if (!opened) marks.Add((m, clock.Elapsed));
            else loads?.Add(m.Replace("Loading ", "", StringComparison.Ordinal));
        }));
        opened = true;
        var total = clock.Elapsed;
        c.Result.Memory.Add(c.Memory.Sample($"after {name}"));
        c.Add(new Measurement(name, [total.TotalSeconds], c.Memory.ProcessPeak));
        // "Loading X" arrives as X starts; X ends where the next starts (or the open returns).
        for (int i = 0; i < marks.Count; i++)
        {
            var end = i + 1 < marks.Count ? marks[i + 1].At : total;
            c.Result.Values[$"{name}: {marks[i].What}"] = (end - marks[i].At).TotalSeconds;
        }
        c.Result.Values[$"{name}: page cache bytes after"] = PageCache.ResidentBytes(files);
        c.Save();
        return engine;
    }

    private static EngineOptions EngineOptionsFor(PhaseRequest request) => new()
    {
        CheckpointPath = request.Checkpoint,
        IpAdapterPath = Path.Combine(request.Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.AdapterRelativePath),
        Threads = request.Threads,
        LowMemory = request.LowMemory,
        Precision = request.Precision,
        ConvertedWeightsPath = request.ConvertedWeightsRoot,
        SessionCachePath = request.SessionCacheRoot,
        DisableSessionCache = !request.SessionCache,
    };

    /// <summary>
    /// Loads every network that has a precision once in the requested one (the UNet, the IP-Adapter's keys, the text
    /// and image encoders), which converts the weights not cached yet, so that no later phase times a conversion.
    /// </summary>
    private static void RunConvert(PhaseContext c)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        var options = EngineOptionsFor(c.Request);
        var adapter = IpAdapterFiles.Open(options.IpAdapterPath!, Path.Combine(c.Request.Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.ImageEncoderRelativePath));
        // Only the conversion is timed here: "open-caching" saves the sessions.
        var settings = c.Settings(null) with { SessionCache = null };
        var root = c.Request.ConvertedWeightsRoot;
        IEnumerable<FileInfo> Files() => Directory.Exists(root)
            ? new DirectoryInfo(root).EnumerateFiles("*.safetensors", SearchOption.AllDirectories) : [];

        void Load(string what, Action load)
        {
            var started = DateTime.UtcNow;
            var seconds = Time(load);
            long written = Files().Where(f => f.LastWriteTimeUtc >= started).Sum(f => f.Length);
            c.Add(new Measurement($"{what} load, {c.Request.Precision}" + (written > 0 ? ", converting its weights" : " (weights already converted)"),
                [seconds], c.Memory.ProcessPeak) { Note = written > 0 ? $"{Benchmark.Gb(written)} GB written under {root}" : null });
        }

        Load("UNet", () => Unet.Load(checkpoint.Unet, adapter, settings).Dispose());
        Load("IP-Adapter keys", () => IpAdapterKeys.Load(adapter.AdapterPath, checkpoint.ReadUnetConfig(), settings).Dispose());
        Load("text encoders", () =>
        {
            ClipTextEncoder.Load(checkpoint.TextEncoder, settings).Dispose();
            ClipTextEncoder.Load(checkpoint.TextEncoder2, settings).Dispose();
        });
        Load("image encoder", () => ClipVisionEncoder.Load(adapter, settings).Dispose());
        c.Result.Values["convertedWeightBytes"] = Files().Sum(f => f.Length);
    }

    /// <summary>Both CLIP text encoders on one prompt, as a scene encodes it (tokenizing included).</summary>
    private static void RunText(PhaseContext c)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        string prefix1 = c.ProfilePrefix("text_encoder"), prefix2 = c.ProfilePrefix("text_encoder_2");
        ClipTokenizer tokenizer = null!, tokenizer2 = null!;
        ClipTextEncoder encoder = null!, encoder2 = null!;
        var load = Time(() =>
        {
            tokenizer = ClipTokenizer.Load(checkpoint.Tokenizer);
            tokenizer2 = ClipTokenizer.Load(checkpoint.Tokenizer2);
            encoder = ClipTextEncoder.Load(checkpoint.TextEncoder, c.Settings(prefix1));
            encoder2 = ClipTextEncoder.Load(checkpoint.TextEncoder2, c.Settings(prefix2));
        });
        c.Add(new Measurement("text encoders load", [load], c.Memory.ProcessPeak));
        c.Result.Memory.Add(c.Memory.Sample("after load"));
        c.Memory.ResetPeak();
        var times = new List<double>();
        for (int run = 0; run < 2; run++)
            times.Add(Time(() =>
            {
                encoder.Run([tokenizer.Encode(Prompt).IdsAsInt64()]);
                encoder2.Run([tokenizer2.Encode(Prompt).IdsAsInt64()]);
            }));
        var peak = c.Memory.Sample("after encoding").Peak;
        encoder.Dispose();
        encoder2.Dispose();
        var work = WorkSummary.Combine(
            OrtProfile.Read(OrtProfile.Find(prefix1)).Select(WorkSummary.Of).Last(),
            OrtProfile.Read(OrtProfile.Find(prefix2)).Select(WorkSummary.Of).Last());
        c.Add(new Measurement("text encoding (both encoders, 1 prompt)", times, peak) { Work = work, Note = "first and second run" });
    }

    /// <summary>CLIP ViT-H on one 224² image and the adapter's projection to 4 tokens.</summary>
    private static void RunReference(PhaseContext c)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        var options = EngineOptionsFor(c.Request);
        var files = IpAdapterFiles.Open(options.IpAdapterPath!, Path.Combine(c.Request.Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.ImageEncoderRelativePath));
        string prefix1 = c.ProfilePrefix("image_encoder"), prefix2 = c.ProfilePrefix("image_projection");
        ClipVisionEncoder encoder = null!;
        ImageProjection projection = null!;
        var load = Time(() =>
        {
            encoder = ClipVisionEncoder.Load(files, c.Settings(prefix1));
            projection = ImageProjection.Load(files.AdapterPath,
                ImageProjectionConfig.For(files.ReadImageEncoderConfig(), checkpoint.ReadUnetConfig()), c.Settings(prefix2));
        });
        c.Add(new Measurement("image encoder + projection load", [load], c.Memory.ProcessPeak));
        c.Result.Memory.Add(c.Memory.Sample("after load"));
        c.Memory.ResetPeak();
        var image = SyntheticImage(512, 512);
        var times = new List<double>();
        for (int run = 0; run < 2; run++)
            times.Add(Time(() => projection.Run(encoder.Run(ClipImagePreprocessor.Preprocess(image)))));
        var peak = c.Memory.Sample("after encoding").Peak;
        encoder.Dispose();
        projection.Dispose();
        var work = WorkSummary.Combine(
            OrtProfile.Read(OrtProfile.Find(prefix1)).Select(WorkSummary.Of).Last(),
            OrtProfile.Read(OrtProfile.Find(prefix2)).Select(WorkSummary.Of).Last());
        c.Add(new Measurement("reference encoding (1 image)", times, peak) { Work = work, Note = "first and second run" });
    }

    /// <summary>
    /// IP-Adapter Plus against the base adapter. Per new reference: the image encoder with the base projection (4 tokens)
    /// against the encoder's hidden states through Plus's resampler (16 tokens), the resampler alone, and the
    /// unconditional branch Plus makes once per engine; the adapter's keys and values of each (batch 2); and a guided
    /// UNet step (batch 2) per size with each, where every attn2's adapter branch attends over 16 tokens instead of 4.
    /// A checkpoint written before Plus existed gets its Plus adapter first.
    /// </summary>
    private static void RunIpAdapterPlus(PhaseContext c)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        var encoderFolder = Path.Combine(c.Request.Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.ImageEncoderRelativePath);
        var baseFiles = IpAdapterFiles.Open(EngineOptionsFor(c.Request).IpAdapterPath!, encoderFolder);
        var plusPath = Path.Combine(c.Request.Checkpoint, RandomCheckpoint.IpAdapterFolder, "sdxl_models", RandomCheckpoint.PlusAdapterFileName);
        if (!File.Exists(plusPath))
        {
            var shape = checkpoint.ReadUnetConfig().CrossAttentionDim == CheckpointShape.Tiny.Unet.CrossAttentionDim ? CheckpointShape.Tiny : CheckpointShape.Full;
            Console.WriteLine($"  writing the {shape.Name} IP-Adapter Plus beside the checkpoint's adapter (once)");
            RandomCheckpoint.WritePlusAdapter(c.Request.Checkpoint, shape, seed: 1);
        }
        var plusFiles = IpAdapterFiles.Open(plusPath, encoderFolder);
        var unetConfig = checkpoint.ReadUnetConfig();
        var encoderConfig = baseFiles.ReadImageEncoderConfig();
        var settings = c.Settings(null);

        var pixels = ClipImagePreprocessor.Preprocess(SyntheticImage(512, 512));
        var zeros = FloatTensorOps.Zeros(1, encoderConfig.NumChannels, encoderConfig.ImageSize, encoderConfig.ImageSize);
        FloatTensor baseTokens = null!, baseUnconditional = null!, plusTokens = null!, plusUnconditional = null!;
        using (var encoder = ClipVisionEncoder.Load(baseFiles, settings))
        using (var projection = ImageProjection.Load(baseFiles.AdapterPath, ImageProjectionConfig.For(encoderConfig, unetConfig), settings))
        using (var resampler = IpAdapterPlusImageProjection.Load(plusFiles.AdapterPath, encoderConfig, unetConfig, settings))
        {
            c.Result.Memory.Add(c.Memory.Sample("after the image encoder, projection and resampler load"));
            // A first run of each network, so that the figures below are steady ones.
            projection.Run(encoder.Run(pixels));
            var states = encoder.Encode(pixels).PenultimateHiddenStates;
            resampler.Run(states);
            c.Memory.ResetPeak();
            var baseTimes = Repeat(3, () => baseTokens = projection.Run(encoder.Run(pixels)));
            var plusTimes = Repeat(3, () => plusTokens = resampler.Run(encoder.Encode(pixels).PenultimateHiddenStates));
            var resamplerTimes = Repeat(3, () => resampler.Run(states));
            var unconditional = Repeat(1, () => plusUnconditional = resampler.Run(encoder.Encode(zeros).PenultimateHiddenStates));
            baseUnconditional = projection.UnconditionalTokens();
            long peak = c.Memory.Sample("after the references").Peak;
            c.Add(new Measurement("ipa-plus: new reference, base (image encoder → image_embeds → projection, 4 tokens)", baseTimes, peak) { Note = "3 runs" });
            c.Add(new Measurement("ipa-plus: new reference, Plus (image encoder → hidden states → resampler, 16 tokens)", plusTimes, peak) { Note = "3 runs" });
            c.Add(new Measurement("ipa-plus: the resampler alone", resamplerTimes, peak) { Note = "3 runs" });
            c.Add(new Measurement("ipa-plus: Plus's unconditional tokens (image encoder on zeros → resampler; once per engine)", unconditional, peak));
        }
        NativeHeap.Trim();

        IpAdapterKeyValues KeyValues(IpAdapterFiles files, FloatTensor unconditional, FloatTensor tokens, string what)
        {
            IpAdapterKeyValues keyValues = null!;
            c.Memory.ResetPeak();
            var seconds = Time(() =>
            {
                using var keys = IpAdapterKeys.Load(files.AdapterPath, unetConfig, settings);
                keyValues = keys.Run(FloatTensorOps.ConcatBatch(unconditional, tokens));
            });
            c.Add(new Measurement($"ipa-plus: {what} keys and values (load + run, batch 2, once per reference)", [seconds], c.Memory.Sample($"after {what} keys").Peak));
            return keyValues;
        }
        var baseKeyValues = KeyValues(baseFiles, baseUnconditional, baseTokens, "base");
        var plusKeyValues = KeyValues(plusFiles, plusUnconditional, plusTokens, "Plus");
        NativeHeap.Trim();

        using var unet = Unet.Load(checkpoint.Unet, baseFiles, settings);
        var config = unet.Config;
        c.Result.Memory.Add(c.Memory.Sample("after UNet load"));
        UnetConditioning Conditioning(IpAdapterKeyValues keyValues) => new(
            new FloatTensor(RandomValues(2 * 77 * config.CrossAttentionDim, 3), [2, 77, config.CrossAttentionDim]),
            new FloatTensor(RandomValues(2 * unet.PooledTextDim, 4), [2, unet.PooledTextDim]),
            new FloatTensor([1024, 1024, 0, 0, 1024, 1024, 1024, 1024, 0, 0, 1024, 1024], [2, Unet.TimeIdCount]))
        {
            IpKeyValues = keyValues,
            IpScale = 0.6f,
        };
        var withBase = Conditioning(baseKeyValues);
        var withPlus = Conditioning(plusKeyValues);
        foreach (var size in c.Request.Sizes)
        {
            int side = size / 8;
            var sample = new FloatTensor(RandomValues(2 * 4 * side * side, size), [2, 4, side, side]);
            // A first step at each size settles the session's allocations for it; then base and Plus, twice each, interleaved.
            unet.Run(sample, 999f, withBase);
            c.Memory.ResetPeak();
            var baseSteps = new List<double>();
            var plusSteps = new List<double>();
            for (int run = 0; run < 2; run++)
            {
                baseSteps.Add(Time(() => unet.Run(sample, 999f, withBase)));
                plusSteps.Add(Time(() => unet.Run(sample, 999f, withPlus)));
            }
            long peak = c.Memory.Sample($"after UNet steps {size}²").Peak;
            Console.WriteLine($"  UNet step {size}², guided: base (4 ip tokens) {baseSteps.Min():0.000} s, Plus (16) {plusSteps.Min():0.000} s");
            c.Add(new Measurement($"ipa-plus: UNet step {size}², guided, base adapter (4 ip tokens)", baseSteps, peak) { Note = "best of 2" });
            c.Add(new Measurement($"ipa-plus: UNet step {size}², guided, Plus (16 ip tokens)", plusSteps, peak)
            {
                Note = $"best of 2; {plusSteps.Min() - baseSteps.Min():+0.000;-0.000} s a step against base",
            });
        }
    }

    private static List<double> Repeat(int runs, Action action) => Enumerable.Range(0, runs).Select(_ => Time(action)).ToList();

    private static void RunVae(PhaseContext c)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        var prefix = c.ProfilePrefix("vae");
        VaeDecoder vae = null!;
        var load = Time(() => vae = VaeDecoder.Load(checkpoint.Vae, c.Settings(prefix)));
        c.Add(new Measurement("VAE decoder load", [load], c.Memory.ProcessPeak));
        c.Result.Memory.Add(c.Memory.Sample("after load"));
        var peaks = new List<long>();
        var times = new List<double>();
        foreach (var size in c.Request.Sizes)
        {
            c.Memory.ResetPeak();
            var latents = new FloatTensor(RandomValues(4 * (size / 8) * (size / 8), size), [1, 4, size / 8, size / 8]);
            times.Add(Time(() => vae.Run(latents)));
            peaks.Add(c.Memory.Sample($"after decode {size}²").Peak);
        }
        vae.Dispose();
        var runs = OrtProfile.Read(OrtProfile.Find(prefix));
        for (int i = 0; i < c.Request.Sizes.Length; i++)
            c.Add(new Measurement($"VAE decode {c.Request.Sizes[i]}²", [times[i]], peaks[i]) { Work = WorkSummary.Of(runs[i]) });

        using var tiny = TinyAutoencoderDecoder.Load(TinyDecoderFolder(c), c.Settings(null));
        foreach (var size in c.Request.Sizes)
        {
            c.Memory.ResetPeak();
            var latents = new FloatTensor(RandomValues(4 * (size / 8) * (size / 8), size), [1, 4, size / 8, size / 8]);
            var seconds = Time(() => tiny.Run(latents));
            c.Add(new Measurement($"tiny decoder (TAESDXL) decode {size}²", [seconds], c.Memory.Sample($"after tiny decode {size}²").Peak));
        }
    }

    /// <summary>
    /// One guided UNet step (batch 2) with the IP-Adapter branch on, per size; the smallest size runs
    /// twice (first run and steady state), larger ones once, as the peer script does.
    /// </summary>
    private static void RunUnet(PhaseContext c)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        var options = EngineOptionsFor(c.Request);
        var adapter = IpAdapterFiles.Open(options.IpAdapterPath!, Path.Combine(c.Request.Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.ImageEncoderRelativePath));
        var prefix = c.ProfilePrefix("unet");
        Unet unet = null!;
        var load = Time(() => unet = Unet.Load(checkpoint.Unet, adapter, c.Settings(prefix)));
        c.Add(new Measurement("UNet load", [load], c.Memory.ProcessPeak));
        c.Result.Memory.Add(c.Memory.Sample("after UNet load"));
        c.Result.Values["unetWeightBytes"] = new FileInfo(checkpoint.Unet.WeightsPath).Length;

        var config = unet.Config;
        // The adapter's keys and values, as the engine makes them once per reference, beside the loaded UNet.
        c.Memory.ResetPeak();
        IpAdapterKeyValues keyValues = null!;
        var keys = Time(() =>
        {
            using var adapterKeys = IpAdapterKeys.Load(adapter.AdapterPath, config, c.Settings(null));
            keyValues = adapterKeys.Run(new FloatTensor(RandomValues(2 * ImageProjectionConfig.BaseAdapterTokens * config.CrossAttentionDim, 5),
                [2, ImageProjectionConfig.BaseAdapterTokens, config.CrossAttentionDim]));
        });
        c.Add(new Measurement("IP-Adapter keys and values (load + run, batch 2)", [keys], c.Memory.Sample("after IP-Adapter keys").Peak));
        // Released as the engine releases it, so the steps below start from the UNet alone.
        NativeHeap.Trim();
        c.Result.Memory.Add(c.Memory.Sample("after IP-Adapter keys released"));
        var conditioning = new UnetConditioning(
            new FloatTensor(RandomValues(2 * 77 * config.CrossAttentionDim, 3), [2, 77, config.CrossAttentionDim]),
            new FloatTensor(RandomValues(2 * unet.PooledTextDim, 4), [2, unet.PooledTextDim]),
            new FloatTensor([1024, 1024, 0, 0, 1024, 1024, 1024, 1024, 0, 0, 1024, 1024], [2, Unet.TimeIdCount]))
        {
            IpKeyValues = keyValues,
            IpScale = 0.6f,
        };
        // The conditional half alone: a step after a guidance cutoff, or of an unguided (few-step) scene.
        var conditional = new UnetConditioning(
            FloatTensorOps.BatchItem(conditioning.EncoderHiddenStates, 1),
            FloatTensorOps.BatchItem(conditioning.TextEmbeds, 1),
            FloatTensorOps.BatchItem(conditioning.TimeIds, 1))
        {
            IpKeyValues = new IpAdapterKeyValues(keyValues.Layers.Select(l => new IpAdapterLayerKeyValue(l.Number,
                FloatTensorOps.BatchItem(l.Key, 1), FloatTensorOps.BatchItem(l.Value, 1))).ToList()),
            IpScale = 0.6f,
        };
        var plan = new List<(int Size, List<double> Times, long Peak)>();
        var others = new List<Measurement>();
        foreach (var size in c.Request.Sizes)
        {
            int side = size / 8;
            var sample = new FloatTensor(RandomValues(2 * 4 * side * side, size), [2, 4, side, side]);
            c.Memory.ResetPeak();
            var times = new List<double>();
            for (int run = 0; run < (size == c.Request.Sizes.Min() ? 2 : 1); run++)
            {
                times.Add(Time(() => unet.Run(sample, 999f, conditioning)));
                Console.WriteLine($"  UNet step {size}²: {times[^1]:0.00} s");
            }
            plan.Add((size, times, c.Memory.Sample($"after UNet {size}²").Peak));

            // What the faster scenes run instead: an unguided step, and DeepCache's whole step (keeping its feature)
            // and shallow step, guided and not.
            var single = FloatTensorOps.BatchItem(sample, 1);
            FloatTensor feature = null!;
            var unguided = Time(() => unet.Run(single, 999f, conditional));
            var keeping = Time(() => feature = unet.RunKeepingFeature(sample, 999f, conditioning).Feature);
            var shallow = Time(() => unet.RunFromFeature(sample, 999f, conditioning, feature));
            var singleFeature = FloatTensorOps.BatchItem(feature, 1);
            var shallowSingle = Time(() => unet.RunFromFeature(single, 999f, conditional, singleFeature));
            long peak = c.Memory.Sample($"after UNet variants {size}²").Peak;
            Console.WriteLine($"  UNet {size}²: unguided {unguided:0.00} s, keeping the feature {keeping:0.00} s, shallow {shallow:0.00} s guided / {shallowSingle:0.00} s unguided");
            others.Add(new Measurement($"UNet step {size}², unguided (batch 1)", [unguided], peak));
            others.Add(new Measurement($"UNet step {size}² keeping DeepCache's feature (batch 2)", [keeping], peak));
            others.Add(new Measurement($"DeepCache shallow step {size}² (batch 2)", [shallow], peak));
            others.Add(new Measurement($"DeepCache shallow step {size}², unguided (batch 1)", [shallowSingle], peak));
        }
        unet.Dispose();
        var runs = OrtProfile.Read(OrtProfile.Find(prefix));
        int index = 0;
        foreach (var (size, times, peak) in plan)
        {
            // The last run of a size is its steady state; its profile is the one kept. The variants' runs follow it.
            index += times.Count;
            c.Add(new Measurement($"UNet step {size}² (batch 2)", times, peak)
            {
                Work = WorkSummary.Of(runs[index - 1]),
                Note = times.Count > 1 ? "first and second run" : "one run",
            });
            index += 2;
        }
        foreach (var measurement in others) c.Add(measurement);
    }

    /// <summary>
    /// What several references cost per step: one guided UNet step (batch 2) per size with one reference (4 tokens, the
    /// scene of one character), two references with region masks (4 tokens each), two Plus-sized references with masks (16
    /// tokens each) and one reference of three pictures concatenated (12 tokens); and the adapter's keys and values of one
    /// more reference (4 and 16 tokens), made once per reference.
    /// </summary>
    private static void RunIpaControl(PhaseContext c)
    {
        var checkpoint = DiffusersCheckpoint.Open(c.Request.Checkpoint);
        var options = EngineOptionsFor(c.Request);
        var adapter = IpAdapterFiles.Open(options.IpAdapterPath!, Path.Combine(c.Request.Checkpoint, RandomCheckpoint.IpAdapterFolder, IpAdapterFiles.ImageEncoderRelativePath));
        Unet unet = null!;
        var load = Time(() => unet = Unet.Load(checkpoint.Unet, adapter, c.Settings(null)));
        c.Add(new Measurement("UNet load", [load], c.Memory.ProcessPeak));
        var config = unet.Config;
        int layers = IpAdapterBlockScales.All.Expand(config).Length;
        int cross = config.CrossAttentionDim;

        using var adapterKeys = IpAdapterKeys.Load(adapter.AdapterPath, config, c.Settings(null));
        IpAdapterKeyValues Keys(int tokens, int seed) => adapterKeys.Run(new FloatTensor(RandomValues(2 * tokens * cross, seed), [2, tokens, cross]));
        foreach (var tokens in new[] { ImageProjectionConfig.BaseAdapterTokens, 16 })
        {
            c.Memory.ResetPeak();
            var seconds = Time(() => adapterKeys.Run(new FloatTensor(RandomValues(tokens * cross, 7), [1, tokens, cross])));
            c.Add(new Measurement($"IP-Adapter keys and values of one more reference ({tokens} tokens)", [seconds], c.Memory.Sample($"after keys {tokens}").Peak));
        }
        NativeHeap.Trim();

        var text = new FloatTensor(RandomValues(2 * 77 * cross, 3), [2, 77, cross]);
        var pooled = new FloatTensor(RandomValues(2 * unet.PooledTextDim, 4), [2, unet.PooledTextDim]);
        foreach (var size in c.Request.Sizes)
        {
            int side = size / 8;
            var sample = new FloatTensor(RandomValues(2 * 4 * side * side, size), [2, 4, side, side]);
            var timeIds = new FloatTensor([size, size, 0, 0, size, size, size, size, 0, 0, size, size], [2, Unet.TimeIdCount]);
            // Left and right halves, as -ReferenceMask Left, Right gives them, at each level's resolution.
            var halves = new[] { ReferenceMask.Rectangle(size, size, 0, 0, size / 2, size), ReferenceMask.Rectangle(size, size, size / 2, 0, size - size / 2, size) };
            var masks = unet.AttentionLevels.ToDictionary(level => level, level =>
            {
                int queries = Unet.QueriesAt(level, side, side);
                return new FloatTensor(halves.SelectMany(h => h.Downsample(queries)).ToArray(), [2, queries]);
            });
            UnetConditioning With(int[] tokenCounts, bool masked) => new(text, pooled, timeIds)
            {
                IpKeyValues = IpAdapterKeyValues.ConcatTokens(tokenCounts.Select((t, i) => Keys(t, 11 + i))),
                IpTokenCounts = tokenCounts,
                IpScales = Enumerable.Repeat(0.6f, layers * tokenCounts.Length).ToArray(),
                IpMasks = masked ? masks : null,
            };
            var variants = new (string Name, UnetConditioning Conditioning)[]
            {
                ("one reference, 4 tokens", With([4], masked: false)),
                ("two references with masks, 4 tokens each", With([4, 4], masked: true)),
                ("two Plus references with masks, 16 tokens each", With([16, 16], masked: true)),
                ("one reference of three pictures concatenated, 12 tokens", With([12], masked: false)),
            };
            // The first run of a size pays for ONNX Runtime's allocations: not measured.
            unet.Run(sample, 999f, variants[0].Conditioning);
            foreach (var (name, conditioning) in variants)
            {
                c.Memory.ResetPeak();
                var times = new List<double> { Time(() => unet.Run(sample, 999f, conditioning)), Time(() => unet.Run(sample, 999f, conditioning)) };
                Console.WriteLine($"  UNet step {size}², {name}: {times.Min():0.000} s");
                c.Add(new Measurement($"UNet step {size}² (batch 2), {name}", times, c.Memory.Sample($"after {name} {size}²").Peak) { Note = "two runs" });
            }
        }
        unet.Dispose();
    }

    /// <summary>
    /// The whole engine, as a user runs it: warm open, a reference, then a guided scene with it. Before
    /// the VAE decode the scene is stopped when the decode cannot fit (what the VAE phase saw it add
    /// exceeds MemAvailable), rather than letting the kernel's OOM killer end it, which thrashes a shared
    /// machine; the steps are measured either way.
    /// </summary>
    /// <summary>A tiny decoder of TAESDXL's sizes with random weights, written beside the benchmark's files once.</summary>
    private static string TinyDecoderFolder(PhaseContext c)
    {
        var folder = Path.Combine(Path.GetDirectoryName(c.Request.WorkFolder)!, "taesdxl-random");
        if (!File.Exists(Path.Combine(folder, "config.json"))) RandomCheckpoint.WriteTinyDecoder(folder, new TinyAutoencoderConfig(), seed: 1);
        return folder;
    }

    /// <summary>
    /// Scenes as -Quality Fast makes them (4 unguided steps at trailing timesteps, the reference on), decoded by the
    /// tiny decoder, at every size, each made twice (the first also loads what the engine loads on demand). The
    /// benchmark's UNet stands in for SDXL-Lightning's: the same architecture, so the same work.
    /// </summary>
    private static void RunFastScene(PhaseContext c)
    {
        var files = Directory.EnumerateFiles(c.Request.Checkpoint, "*", SearchOption.AllDirectories).ToList();
        var loads = new List<string>();
        using var engine = OpenEngine(c, "engine open, warm, with the tiny decoder", files, loads, tinyDecoder: TinyDecoderFolder(c));
        var reference = ImportReference(c, engine, loads);
        foreach (var size in c.Request.Sizes)
        {
            var request = new SceneRequest { Prompt = Prompt, Seed = 1, Width = size, Height = size, Reference = reference, Decoder = SceneDecoder.Tiny }
                .ForFewStepUnet();
            c.Memory.ResetPeak();
            var times = new List<double>();
            for (int run = 0; run < 2; run++)
            {
                loads.Clear();
                times.Add(Time(() => engine.Generate(request)));
                Console.WriteLine($"  fast scene {size}²: {times[^1]:0.00} s{Also(LoadedOnDemand(loads))}");
            }
            c.Add(new Measurement($"fast scene {size}², 4 unguided steps, tiny decoder", times, c.Memory.Sample($"after fast scenes {size}²").Peak)
            {
                Note = "first and second scene",
            });
        }
    }

    /// <summary>A synthetic character picture imported as a user would, timed with what it loaded on demand.</summary>
    private static CharacterReference ImportReference(PhaseContext c, SceneEngine engine, List<string> loads)
    {
        var referencePath = Path.Combine(c.Request.WorkFolder, "reference.png");
        PngFile.Save(referencePath, SyntheticImage(768, 768), overwrite: true);
        c.Memory.ResetPeak();
        CharacterReference reference = null!;
        var encode = Time(() => reference = engine.EncodeReference([referencePath], "bench"));
        c.Add(new Measurement("reference import (decode + encode)", [encode], c.Memory.Sample("after reference").Peak) { Note = LoadedOnDemand(loads) });
        return reference;
    }

    private static void RunScene(PhaseContext c)
    {
        var files = Directory.EnumerateFiles(c.Request.Checkpoint, "*", SearchOption.AllDirectories).ToList();
        c.Result.Values["pageCacheBytesBefore"] = PageCache.ResidentBytes(files);
        var loads = new List<string>();
        using var engine = OpenEngine(c, "engine open, warm", files, loads);
        var reference = ImportReference(c, engine, loads);

        int size = c.Request.Sizes.Max();
        var name = $"scene {size}², {c.Request.Steps} steps, guided, with reference";
        var steps = new List<double>();
        var last = TimeSpan.Zero;
        using var stop = new CancellationTokenSource();
        var progress = new ImmediateProgress<SceneProgress>(p =>
        {
            steps.Add((p.Elapsed - last).TotalSeconds);
            last = p.Elapsed;
            Console.WriteLine($"  scene step {p.Step}/{p.TotalSteps}: {steps[^1]:0.00} s");
            c.Result.Memory.Add(c.Memory.Sample($"after scene step {p.Step}"));
            c.Result.Values["sceneStepsSeconds"] = steps.Sum();
            c.Save();
            long available = Machine.AvailableMemoryBytes();
            if (p.Step == p.TotalSteps && c.Request.DecodeBytes > available)
            {
                c.Result.Values["sceneDecodeNeedsBytes"] = c.Request.DecodeBytes;
                c.Result.Values["sceneDecodeAvailableBytes"] = available;
                stop.Cancel();
            }
        });
        c.Memory.ResetPeak();
        var clock = Stopwatch.StartNew();
        try
        {
            engine.Generate(new SceneRequest
            {
                Prompt = Prompt,
                Seed = 1,
                Steps = c.Request.Steps,
                Width = size,
                Height = size,
                Reference = reference,
            }, progress, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            c.Add(new Measurement($"{name}: UNet steps only", [clock.Elapsed.TotalSeconds], c.Memory.ProcessPeak)
            {
                Note = $"stopped before the VAE decode: it adds {Benchmark.Gb(c.Request.DecodeBytes)} GB, "
                    + $"{Benchmark.Gb(c.Result.Values["sceneDecodeAvailableBytes"])} GB was available; steps {StepList(steps)} s{Also(LoadedOnDemand(loads))}",
            });
            return;
        }
        var seconds = clock.Elapsed.TotalSeconds;
        c.Result.Values["sceneOutsideStepsSeconds"] = seconds - steps.Sum();
        c.Add(new Measurement(name, [seconds], c.Memory.ProcessPeak) { Note = $"steps {StepList(steps)} s{Also(LoadedOnDemand(loads))}" });
    }

    /// <summary>Names the networks loaded (and timed) within a measurement, then forgets them.</summary>
    private static string? LoadedOnDemand(List<string> loads)
    {
        if (loads.Count == 0) return null;
        var text = "includes loading " + string.Join(", ", loads);
        loads.Clear();
        return text;
    }

    private static string Also(string? note) => note is null ? "" : "; " + note;

    private static string StepList(IEnumerable<double> steps)
        => string.Join(", ", steps.Select(s => s.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)));

    private static double Time(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>Deterministic standard-normal-ish values: speed does not depend on them, only finiteness does.</summary>
    private static float[] RandomValues(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return values;
    }

    private static RgbImage SyntheticImage(int width, int height)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                rgb[i] = (byte)(x * 255 / width);
                rgb[i + 1] = (byte)(y * 255 / height);
                rgb[i + 2] = (byte)((x ^ y) & 0xFF);
            }
        return new RgbImage(width, height, rgb);
    }

    private sealed class PhaseContext(PhaseRequest request, ProcessMemory memory, PhaseResult result)
    {
        public PhaseRequest Request { get; } = request;
        public ProcessMemory Memory { get; } = memory;
        public PhaseResult Result { get; } = result;

        public string ProfilePrefix(string component)
        {
            var folder = Path.Combine(Request.WorkFolder, "profiles");
            Directory.CreateDirectory(folder);
            return Path.Combine(folder, $"{Request.Phase}-{component}");
        }

        public SessionSettings Settings(string? profilePrefix) => new()
        {
            Threads = Request.Threads,
            ProfilePathPrefix = profilePrefix,
            Precision = Request.Precision,
            ConvertedWeightsRoot = Request.ConvertedWeightsRoot,
            SessionCache = Request.SessionCache ? new SessionCache(Request.SessionCacheRoot) : null,
        };

        public void Add(Measurement measurement)
        {
            Result.Measurements.Add(measurement);
            Console.WriteLine($"  {measurement.Name}: {string.Join(" / ", measurement.Seconds.Select(s => $"{s:0.00} s"))}");
            Save();
        }

        /// <summary>Writes what is measured so far, with the peak so far.</summary>
        public void Save()
        {
            Result.ProcessPeakBytes = Memory.ProcessPeak;
            Benchmark.WriteResult(Result, Request.ResultPath);
        }
    }

    /// <summary>Reports on the caller's thread: <see cref="Progress{T}"/> would post to the thread pool and lose the timing.</summary>
    private sealed class ImmediateProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
