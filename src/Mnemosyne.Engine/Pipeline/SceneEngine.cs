using System.Diagnostics;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Text;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// The open engine: SDXL's networks, the IP-Adapter and the caches of prompt and reference
/// encodings. Thread-safe: scenes are made one at a time.
/// </summary>
public sealed class SceneEngine : IDisposable
{
    /// <summary>A reference's keys and values are 2.7 MB at SDXL sizes (70 layers × 2 × 4 tokens × C).</summary>
    private const int ReferenceCacheSize = 16;

    private readonly object gate = new();
    private readonly bool forceZerosForEmptyPrompt;
    private readonly SchedulerConfig schedulerConfig;
    private readonly SdxlModelFiles model;
    private readonly OnDemandNetwork<ClipTextEncoder> textEncoder, textEncoder2;
    private readonly OnDemandNetwork<Unet> unet;
    private readonly UnetConfig unetConfig;
    private readonly VaeDecoder vae;
    private readonly TiledVaeDecoder tiledVae;
    private readonly OnDemandNetwork<VaeEncoder> vaeEncoder;
    private readonly TinyAutoencoderDecoder? tinyDecoder;
    private readonly OnDemandNetwork<ClipVisionEncoder>? imageEncoder;
    private readonly ReferenceProjection? projection;
    private readonly IpAdapterKeys? adapterKeys;
    private PromptEncoder promptEncoder;
    private readonly Dictionary<CharacterReference, IpAdapterKeyValues> referenceKeyValues = new(ReferenceEqualityComparer.Instance);
    private IpAdapterKeyValues? unconditionalKeyValues;
    private readonly IpAdapterFiles? adapterFiles;
    private readonly SessionSettings settings;
    /// <summary>The networks with LoRA branches, which serve scenes with LoRAs; null until the first.</summary>
    private LoraNetworks? loras;
    private readonly Lazy<string?> modelHash;
    private bool disposed;

    private SceneEngine(EngineOptions options, SdxlModelFiles model, SchedulerConfig schedulerConfig,
        ClipTokenizer tokenizer, ClipTokenizer tokenizer2, OnDemandNetwork<ClipTextEncoder> textEncoder, OnDemandNetwork<ClipTextEncoder> textEncoder2,
        OnDemandNetwork<Unet> unet, VaeDecoder vae, OnDemandNetwork<VaeEncoder> vaeEncoder, TinyAutoencoderDecoder? tinyDecoder, OnDemandNetwork<ClipVisionEncoder>? imageEncoder,
        ReferenceProjection? projection, IpAdapterKeys? adapterKeys, string? encoderIdentity, SessionCache? sessionCache,
        IpAdapterFiles? adapterFiles, SessionSettings settings)
    {
        Options = options;
        this.model = model;
        ModelName = model.Name;
        // Hashed at the first scene, not at open: gigabytes read once per engine, for the text of the pictures it saves.
        modelHash = new Lazy<string?>(() => ModelFileHash.Of(model.Unet.Path));
        forceZerosForEmptyPrompt = model.ForceZerosForEmptyPrompt;
        this.schedulerConfig = schedulerConfig;
        promptEncoder = new PromptEncoder(tokenizer, tokenizer2, textEncoder, textEncoder2);
        this.textEncoder = textEncoder;
        this.textEncoder2 = textEncoder2;
        this.unet = unet;
        unetConfig = model.Configs.Unet;
        this.vae = vae;
        tiledVae = new TiledVaeDecoder(vae);
        this.vaeEncoder = vaeEncoder;
        this.tinyDecoder = tinyDecoder;
        this.imageEncoder = imageEncoder;
        this.projection = projection;
        this.adapterKeys = adapterKeys;
        ImageEncoderIdentity = encoderIdentity;
        SessionCache = sessionCache;
        this.adapterFiles = adapterFiles;
        this.settings = settings;
    }

    public EngineOptions Options { get; }

    /// <summary>
    /// A short name for the checkpoint (<see cref="EngineOptions.ModelName"/>, else its folder or file name; then "+" and the replacement UNet file's
    /// name when there is one), stored with every scene.
    /// </summary>
    public string ModelName { get; }

    /// <summary>
    /// A1111's short hash of the file the UNet's weights come from: a single-file checkpoint (as A1111 hashes it), a
    /// diffusers folder's unet weights file, or the replacement UNet file; null when it cannot be read. Computed once, at first use.
    /// </summary>
    public string? ModelHash => modelHash.Value;

    public bool SupportsReferences => imageEncoder is not null;

    /// <summary>Whether the engine has a tiny decoder (<see cref="EngineOptions.TinyDecoderPath"/>), for <see cref="SceneDecoder.Tiny"/> and live previews.</summary>
    public bool SupportsTinyDecoder => tinyDecoder is not null;

    /// <summary>
    /// Where the networks' optimised sessions are kept (<see cref="EngineOptions.SessionCachePath"/>), with what it has
    /// loaded and saved and what went wrong; null when <see cref="EngineOptions.DisableSessionCache"/>.
    /// </summary>
    public SessionCache? SessionCache { get; }

    /// <summary>The files the engine reads its networks from, for <see cref="ModelFingerprint"/>.</summary>
    internal SdxlModelFiles ModelFiles => model;

    /// <summary>Which image encoder references are made with; null without an IP-Adapter.</summary>
    public string? ImageEncoderIdentity { get; }

    /// <summary>How many values the embedding of a reference made with this engine holds; null without an IP-Adapter.</summary>
    public int? ReferenceEmbeddingLength => projection?.EmbeddingLength;

    /// <summary>The kind of the engine's IP-Adapter (base, or Plus/Plus-Face); null without one. References of another kind are refused.</summary>
    public IpAdapterKind? AdapterKind => projection?.Kind;

    /// <summary>
    /// Opens the checkpoint (a diffusers folder or a single file, see <see cref="EngineOptions"/>): the
    /// UNet and the VAE's decoder are loaded now; the encoders are checked now (every tensor and shape) and
    /// loaded when a new prompt or reference needs them; the VAE's encoder is loaded when a scene starts from a picture. <paramref name="log"/> hears what is loading.
    /// </summary>
    public static SceneEngine Open(EngineOptions options, IProgress<string>? log = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Before any file is read: a machine without the provider is told so at once, not after a long load.
        if (options.ExecutionProvider == ExecutionProvider.Cuda) CudaProvider.EnsureAvailable();
        var adapterFiles = options.IpAdapterPath is null ? null : IpAdapterFiles.Open(options.IpAdapterPath, options.ImageEncoderPath);
        var model = SdxlModelFiles.Open(options);
        var sessionCache = options.DisableSessionCache || options.ExecutionProvider != ExecutionProvider.Cpu ? null : new SessionCache(options.SessionCachePath);
        var settings = new SessionSettings
        {
            Threads = options.Threads, Precision = options.Precision, ConvertedWeightsRoot = options.ConvertedWeightsPath, SessionCache = sessionCache,
            ExecutionProvider = options.ExecutionProvider,
        };
        var schedulerConfig = ReadCheckpointFile(model.SchedulerConfigPath, path =>
        {
            var config = SchedulerConfig.Load(path);
            // A config that makes no training schedule (num_train_timesteps 0, bad betas) is refused here, not at every scene.
            TrainingSchedule.From(config, pinTerminalAlphaCumprod: false);
            return config;
        });
        var tokenizer = ReadCheckpointFile(model.Tokenizer, ClipTokenizer.Load);
        var tokenizer2 = ReadCheckpointFile(model.Tokenizer2, ClipTokenizer.Load);

        var opened = new List<IDisposable> { model };
        T Track<T>(string what, Func<T> load) where T : IDisposable
        {
            cancellation.ThrowIfCancellationRequested();
            log?.Report($"Loading {what}");
            var item = load();
            opened.Add(item);
            return item;
        }
        try
        {
            var configs = model.Configs;
            // Building a graph reads only the weights' headers: a wrong encoder is refused here, not at the first scene.
            ClipTextEncoder.BuildGraph(configs.TextEncoder, model.TextEncoder, null);
            ClipTextEncoder.BuildGraph(configs.TextEncoder2, model.TextEncoder2, null);
            // A few MB, loaded before the UNet so that a wrong file is refused before the long load.
            var tinyDecoder = options.TinyDecoderPath is null ? null : Track("tiny decoder", () => TinyAutoencoderDecoder.Load(options.TinyDecoderPath, settings));
            if (tinyDecoder is not null && tinyDecoder.LatentChannels != configs.Unet.OutChannels)
                throw new CheckpointException(
                    $"{tinyDecoder.Folder}: this tiny decoder decodes {tinyDecoder.LatentChannels}-channel latents, but the UNet makes {configs.Unet.OutChannels}: " +
                    "it belongs to another model family (TAESD3 and TAEF1 take 16). SDXL's is madebyollin/taesdxl.",
                    Path.Combine(tinyDecoder.Folder, TinyAutoencoderDecoder.ConfigFileName));
            var textEncoder = OnDemand(opened, log, "text_encoder", () => ClipTextEncoder.Load(configs.TextEncoder, model.TextEncoder, settings), options.KeepEncodersLoaded);
            var textEncoder2 = OnDemand(opened, log, "text_encoder_2", () => ClipTextEncoder.Load(configs.TextEncoder2, model.TextEncoder2, settings), options.KeepEncodersLoaded);
            // The UNet stays loaded between scenes; only a decode that would not fit beside it releases it.
            var unetWhat = options.Precision == WeightPrecision.Float32 ? "unet"
                : $"unet ({options.Precision}: weights converted once into {ConvertedWeightCache.FolderFor(model.Unet.Path, options.Precision, options.ConvertedWeightsPath)})";
            var unet = Track(unetWhat, () =>
            {
                var network = new OnDemandNetwork<Unet>(() => Unet.Load(configs.Unet, model.Unet, adapterFiles, settings), keepLoaded: true);
                network.Load();
                return network;
            });
            var vae = Track("vae", () => VaeDecoder.Load(configs.Vae, model.Vae, settings));
            // Only scenes made from a picture need the encoder: it is read from the VAE's weights when one does.
            var vaeEncoder = OnDemand(opened, log, "vae encoder", () => VaeEncoder.Load(configs.Vae, model.Vae, settings), options.KeepEncodersLoaded);
            OnDemandNetwork<ClipVisionEncoder>? imageEncoder = null;
            ReferenceProjection? projection = null;
            IpAdapterKeys? adapterKeys = null;
            string? identity = null;
            if (adapterFiles is not null)
            {
                var encoderConfig = adapterFiles.ReadImageEncoderConfig();
                using (var encoderWeights = SafetensorsFile.Open(adapterFiles.ImageEncoderWeightsPath))
                    ClipVisionEncoder.BuildGraph(encoderConfig, encoderWeights, null);
                imageEncoder = OnDemand(opened, log, "image encoder", () => ClipVisionEncoder.Load(adapterFiles, settings), options.KeepEncodersLoaded);
                projection = Track("image projection", () => ReferenceProjection.Load(adapterFiles, encoderConfig, configs.Unet, settings));
                // Holds no weights: each run loads them, a group of layers at a time.
                adapterKeys = Track("IP-Adapter keys", () => IpAdapterKeys.Load(adapterFiles.AdapterPath, configs.Unet, settings));
                identity = $"clip-vision-{encoderConfig.HiddenSize}x{encoderConfig.NumHiddenLayers}-proj{encoderConfig.ProjectionDim}-{new FileInfo(adapterFiles.ImageEncoderWeightsPath).Length}";
            }
            return new SceneEngine(options, model, schedulerConfig, tokenizer, tokenizer2, textEncoder, textEncoder2,
                unet, vae, vaeEncoder, tinyDecoder, imageEncoder, projection, adapterKeys, identity, sessionCache, adapterFiles, settings);
        }
        catch
        {
            foreach (var item in opened) item.Dispose();
            throw;
        }
    }

    /// <summary>A malformed tokenizer or scheduler file is a defect of the checkpoint, reported with the path to fix.</summary>
    private static T ReadCheckpointFile<T>(string path, Func<string, T> read)
    {
        try
        {
            return read(path);
        }
        catch (InvalidDataException e)
        {
            var advice = e.Message.Contains("restore", StringComparison.OrdinalIgnoreCase) ? "" : " Restore it from the model's download.";
            throw new CheckpointException(e.Message + advice, path, null, e);
        }
    }

    private static OnDemandNetwork<T> OnDemand<T>(List<IDisposable> opened, IProgress<string>? log, string what, Func<T> load, bool keepLoaded)
        where T : class, IDisposable
    {
        var network = new OnDemandNetwork<T>(() =>
        {
            log?.Report($"Loading {what}");
            return load();
        }, keepLoaded);
        opened.Add(network);
        return network;
    }

    /// <summary>Encodes one or more images of one character; their embeddings are averaged, or kept side by side with <see cref="ReferenceCombination.Concatenate"/>.</summary>
    public CharacterReference EncodeReference(IReadOnlyList<string> imagePaths, string? name = null, CancellationToken cancellation = default,
        ReferenceCombination combine = ReferenceCombination.Average)
    {
        if (imagePaths.Count == 0) throw new ArgumentException("At least one reference image is needed.", nameof(imagePaths));
        RequireImageEncoder();
        return EncodeReference(imagePaths.Select(p => new ReferencePicture(Path.GetFullPath(p), SafeImageDecoder.Default.Decode(p))).ToList(), name, cancellation, combine: combine);
    }

    /// <summary>
    /// Encodes pictures of one character that the caller has decoded (so that it can report and leave out
    /// a damaged one before encoding the others); their embeddings are averaged (the embedding is always their mean).
    /// </summary>
    /// <param name="phases">Hears each picture's encoding begin and end (<see cref="ScenePhase.ReferenceEncoding"/>).</param>
    /// <param name="combine">With <see cref="ReferenceCombination.Concatenate"/> and several pictures, each picture's embedding is kept
    /// (<see cref="CharacterReference.PictureEmbeddings"/>) and scenes lay their tokens side by side.</param>
    public CharacterReference EncodeReference(IReadOnlyList<ReferencePicture> pictures, string? name = null, CancellationToken cancellation = default,
        IProgress<ScenePhaseReport>? phases = null, ReferenceCombination combine = ReferenceCombination.Average)
    {
        if (!Enum.IsDefined(combine)) throw new ArgumentOutOfRangeException(nameof(combine), combine, "Combine is Average or Concatenate.");
        if (pictures.Count == 0) throw new ArgumentException("At least one reference image is needed.", nameof(pictures));
        var encoder = RequireImageEncoder();
        // A Plus reference keeps 257 × 1280 hidden states; one set per picture would outgrow a saved reference.
        if (combine == ReferenceCombination.Concatenate && pictures.Count > 1 && AdapterKind == IpAdapterKind.Plus)
            throw new ArgumentException(
                "Concatenate combines pictures for the base IP-Adapter; this engine's IP-Adapter Plus averages its pictures' hidden states. Leave out -Combine, or import the pictures with a base-adapter engine.",
                nameof(combine));
        var embeddings = new List<FloatTensor>();
        var hiddenStates = new List<FloatTensor>();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            encoder.Use(network =>
            {
                for (int i = 0; i < pictures.Count; i++)
                {
                    var picture = new ScenePhaseReport(ScenePhase.ReferenceEncoding, pictures[i].Path) { Item = i + 1, ItemCount = pictures.Count };
                    var clock = Stopwatch.StartNew();
                    phases?.Report(picture);
                    var encoded = network.Encode(ClipImagePreprocessor.Preprocess(pictures[i].Image), cancellation);
                    NonFiniteOutput.Check(encoded.ImageEmbeds.Data, "The image encoder", network.WeightsPath, $"the embedding of {pictures[i].Path}");
                    embeddings.Add(encoded.ImageEmbeds);
                    if (projection!.KeptHiddenStates(encoded) is { } states)
                    {
                        NonFiniteOutput.Check(states.Data, "The image encoder", network.WeightsPath, $"the hidden states of {pictures[i].Path}");
                        hiddenStates.Add(states);
                    }
                    phases?.Report(picture with { Finished = true, Elapsed = clock.Elapsed });
                }
                return embeddings;
            });
        }
        return new CharacterReference
        {
            Name = name ?? Path.GetFileNameWithoutExtension(pictures[0].Path),
            Sources = pictures.Select(p => new ReferenceSource(p.Path, CharacterReference.Sha256Of(p.Path))).ToList(),
            Embedding = FloatTensorOps.Mean(embeddings).Data,
            PictureEmbeddings = combine == ReferenceCombination.Concatenate && embeddings.Count > 1 ? embeddings.Select(e => e.Data).ToArray() : null,
            Encoder = ImageEncoderIdentity!,
            AdapterKind = projection!.Kind,
            HiddenStates = hiddenStates.Count == 0 ? null : FloatTensorOps.Mean(hiddenStates),
        };
    }

    /// <summary>The CLIP image embedding of a picture, for identity-consistency measures.</summary>
    public float[] EmbedImage(RgbImage image, CancellationToken cancellation = default)
    {
        var encoder = RequireImageEncoder();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            return encoder.Use(network => network.Run(ClipImagePreprocessor.Preprocess(image), cancellation).Data);
        }
    }

    /// <param name="preview">Where to write a live preview of the scene as it forms; needs the tiny decoder.</param>
    /// <param name="phases">Hears each phase (text encoding, the reference, denoising, decoding) begin and end, with cache hits and times.</param>
    public Scene Generate(SceneRequest request, IProgress<SceneProgress>? progress = null, CancellationToken cancellation = default,
        PreviewSettings? preview = null, IProgress<ScenePhaseReport>? phases = null)
    {
        request.Validate();
        preview?.Validate();
        foreach (var use in request.ReferencesUsed) CheckReference(use.Reference);
        if (request.ReferencesUsed.Count > 0) request.ReferenceBlocks.Expand(unetConfig);
        if (request.Decoder == SceneDecoder.Tiny) RequireTinyDecoder("make a scene with Decoder Tiny");
        if (preview is not null) RequireTinyDecoder("draw live previews");
        var clock = Stopwatch.StartNew();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            UseLoras(request.Loras);
            var activeUnet = ActiveUnet;
            var warnings = new List<string>();
            bool encodeNegative = request.GuidanceScale > 1 && (request.NegativePrompt is not null || !forceZerosForEmptyPrompt);
            string[] texts = encodeNegative ? [request.Prompt, request.NegativePrompt ?? ""] : [request.Prompt];
            var (positive, negative) = Phase(phases, ScenePhase.TextEncoding, request.Prompt, promptEncoder.Holds(texts, request.PromptStyle),
                () => EncodePrompts(request, encodeNegative, warnings, cancellation));
            CheckEncoded(positive, "prompt");
            if (negative is not null) CheckEncoded(negative, "negative prompt");

            // A reference of weight 0 adds nothing: it is left out.
            var references = request.ReferencesUsed.Where(u => u.Weight > 0)
                .Select(u => new SdxlPipeline.ReferenceKeyValues(u,
                    Phase(phases, ScenePhase.ReferenceEncoding, u.Reference.Name, referenceKeyValues.ContainsKey(u.Reference), () => ReferenceKeyValues(u.Reference, cancellation)),
                    u.Reference.PictureEmbeddings?.Length ?? 1))
                .ToList();

            var conditioning = new SdxlPipeline.Conditioning(positive, negative, references, unconditionalKeyValues);
            var observer = preview is null ? null : new LivePreview(tinyDecoder!, preview, warnings);
            var start = PictureStart.For(request, pixels => EncodePicture(pixels, request.Decoder == SceneDecoder.Tiled, cancellation));
            var latents = Phase(phases, ScenePhase.Denoising, request.Prompt, cached: false,
                () => activeUnet.Use(network => SdxlPipeline.Denoise(request, conditioning, network, schedulerConfig, progress, cancellation, observer, start)));
            ILatentDecoder decoder = request.Decoder switch
            {
                SceneDecoder.Tiny => tinyDecoder!,
                SceneDecoder.Tiled => tiledVae,
                _ => vae,
            };
            // The tiny decoder's activations are a small part of the VAE's: it always decodes beside the UNet. Tiles need one tile's.
            int decodedSide = request.Decoder == SceneDecoder.Tiled ? tiledVae.TileSampleSize : int.MaxValue;
            if (decoder != tinyDecoder && (Options.LowMemory || !DecodeFitsBesideUnet(Math.Min(request.Width, decodedSide), Math.Min(request.Height, decodedSide))))
                activeUnet.Release();
            var image = Phase(phases, ScenePhase.Decoding, request.Decoder switch { SceneDecoder.Tiny => "tiny decoder", SceneDecoder.Tiled => "VAE in tiles", _ => "VAE" }, cached: false,
                () => SdxlPipeline.Decode(decoder, latents, cancellation));
            // The encoders load on demand, so their cache's warnings arrive with the scene that loaded them.
            if (SessionCache is not null) warnings.AddRange(SessionCache.TakeWarnings());
            warnings.AddRange(ConvertedWeightCache.TakeWarnings());
            return new Scene
            {
                Image = image,
                Prompt = request.Prompt,
                NegativePrompt = request.NegativePrompt,
                PromptStyle = request.PromptStyle,
                Seed = request.Seed,
                Steps = request.Steps,
                Scheduler = request.Scheduler,
                Spacing = request.Spacing,
                GuidanceScale = request.GuidanceScale,
                GuidanceCutoff = request.GuidanceCutoff,
                Width = request.Width,
                Height = request.Height,
                ReferenceName = request.ReferencesUsed.Count == 0 ? null : string.Join(", ", request.ReferencesUsed.Select(r => r.Reference.Name)),
                ReferenceWeight = request.ReferencesUsed.Count == 0 ? 0 : request.ReferencesUsed[0].Weight,
                ReferenceControls = ReferenceControls(request),
                Model = ModelName,
                Loras = loras?.Applied ?? [],
                ModelHash = ModelHash,
                Precision = Options.Precision,
                InitialNoisePath = request.InitialNoisePath,
                InitImagePath = request.InitImage is null ? null : request.InitImagePath,
                MaskPath = request.Mask is null ? null : request.MaskPath,
                Strength = request.InitImage is null && request.InitLatents is null ? null : request.Strength,
                DeepCacheInterval = request.DeepCacheInterval,
                Decoder = request.Decoder,
                Elapsed = clock.Elapsed,
                FinalLatents = latents,
                Warnings = warnings,
            };
        }
    }

    /// <summary>Runs one phase of a scene, telling <paramref name="phases"/> when it begins (unless a cache answers it) and ends.</summary>
    private static T Phase<T>(IProgress<ScenePhaseReport>? phases, ScenePhase phase, string subject, bool cached, Func<T> run)
    {
        var report = new ScenePhaseReport(phase, subject) { Cached = cached };
        var clock = Stopwatch.StartNew();
        if (!cached) phases?.Report(report);
        var result = run();
        phases?.Report(report with { Finished = true, Elapsed = clock.Elapsed });
        return result;
    }

    /// <summary>How many UNet sessions the networks with LoRA branches have made; null before a scene with LoRAs. For tests.</summary>
    internal int? LoraUnetLoads => loras?.UnetLoads;

    /// <summary>Whether scenes run the networks with LoRA branches (the last scene had LoRAs) rather than the plain ones.</summary>
    private bool UsesLoraNetworks => loras is { Requests.Count: > 0 };

    private OnDemandNetwork<Unet> ActiveUnet => UsesLoraNetworks ? loras!.Unet : unet;

    /// <summary>
    /// Applies <paramref name="requests"/>: every LoRA is read and checked before anything changes. Scenes with LoRAs run
    /// networks with LoRA branches, made once per engine: another set or weight is new inputs, not a new session. Scenes
    /// without run the plain networks, which the branches (exact zeros, yet a product and a sum per layer) would
    /// only slow down. One UNet is held: moving between the two releases one and loads the other (from the session cache
    /// when the engine has one). Prompts are encoded again when the encoders change.
    /// </summary>
    private void UseLoras(IReadOnlyList<LoraRequest> requests)
    {
        if (loras is null && requests.Count == 0) return;
        bool before = UsesLoraNetworks;
        var next = loras ?? LoraNetworks.Create(model, adapterFiles, settings, Options.KeepEncodersLoaded);
        bool encodersChange;
        try
        {
            encodersChange = next.Use(requests);
        }
        catch
        {
            if (next != loras) next.Dispose();
            throw;
        }
        loras = next;
        if (UsesLoraNetworks != before)
        {
            (before ? next.Unet : unet).Release();
            (before ? next.TextEncoder : textEncoder).Release();
            (before ? next.TextEncoder2 : textEncoder2).Release();
            encodersChange = true;
        }
        // The embeddings kept from before no longer hold.
        if (encodersChange)
            promptEncoder = UsesLoraNetworks ? promptEncoder.WithEncoders(next.TextEncoder, next.TextEncoder2) : promptEncoder.WithEncoders(textEncoder, textEncoder2);
    }

    /// <summary>
    /// The VAE encoder's latent distribution of a starting picture, in tiles when the scene decodes in tiles. Its
    /// activations are the decoder's size (a tile's when tiled), so the UNet makes room for it on the same terms as for a decode.
    /// </summary>
    private LatentDistribution EncodePicture(FloatTensor pixels, bool tiled, CancellationToken cancellation)
    {
        int side = tiled ? vae.Config.SampleSize : int.MaxValue;
        if (Options.LowMemory || !DecodeFitsBesideUnet(Math.Min(pixels.Shape[3], side), Math.Min(pixels.Shape[2], side))) ActiveUnet.Release();
        var latents = vaeEncoder.Use(network => tiled ? new TiledVaeEncoder(network).Run(pixels, cancellation) : network.Run(pixels, cancellation));
        NonFiniteOutput.Check(latents.Mean.Data, "The VAE encoder", model.Vae.Path, "the latents of the starting picture");
        return latents;
    }

    /// <summary>
    /// Whether the VAE's activations fit in what the system has left (measured: about 4.3 GB at
    /// 1024² for SDXL's 128-channel decoder, growing with the pixels and the first block's channels).
    /// When they do not, the UNet is released for the decode and loaded again by the next scene.
    /// </summary>
    private bool DecodeFitsBesideUnet(int width, int height)
    {
        long needed = 40L * vae.Config.BlockOutChannels[0] * width * height;
        return NativeHeap.AvailableBytes() is not { } available || available > needed;
    }

    /// <summary>The references' weights and masks (when several), blocks and steps, as a picture's parameters say them; null when there is nothing to say.</summary>
    private static string? ReferenceControls(SceneRequest request)
    {
        if (request.ReferencesUsed.Count == 0) return null;
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var parts = new List<string>();
        if (request.References is { } several)
        {
            parts.Add("weights " + string.Join(" ", several.Select(r => r.Weight.ToString(inv))));
            if (several.Any(r => r.Mask is not null))
                parts.Add("masks " + string.Join(" ", several.Select(r => r.Mask is { } m ? Path.GetFileName(m.Source) : "none")));
        }
        if (request.ReferenceBlocks.Name != IpAdapterBlockScales.All.Name) parts.Add("blocks " + request.ReferenceBlocks);
        if (request.ReferenceStart > 0 || request.ReferenceEnd < 1)
            parts.Add($"steps {request.ReferenceStart.ToString(inv)}-{request.ReferenceEnd.ToString(inv)}");
        if (request.ReferencesUsed.Any(r => r.Reference.PictureEmbeddings is not null)) parts.Add("pictures concatenated");
        return parts.Count == 0 ? null : string.Join("; ", parts);
    }

    private void CheckReference(CharacterReference reference)
    {
        if (imageEncoder is null)
            throw new InvalidOperationException("This engine was opened without an IP-Adapter, so it cannot use a reference. Open it with -IPAdapterPath.");
        if (reference.Encoder != ImageEncoderIdentity)
            throw new ArgumentException(
                $"Reference '{reference.Name}' was encoded with '{reference.Encoder}', but this engine's image encoder is '{ImageEncoderIdentity}'. Import the reference images again with this engine.",
                nameof(reference));
        if (reference.Embedding.Length != ReferenceEmbeddingLength)
            throw new ArgumentException(
                $"Reference '{reference.Name}' holds {reference.Embedding.Length} values, but this engine's image encoder makes {ReferenceEmbeddingLength}: " +
                "the saved reference is damaged. Import the reference images again with this engine.",
                nameof(reference));
        if (reference.AdapterKind != AdapterKind)
            throw new ArgumentException(
                $"Reference '{reference.Name}' was made for {Describe(reference.AdapterKind)}, but this engine's IP-Adapter is {Describe(projection!.Kind)}: " +
                "Import the reference images again with this engine, or open an engine with the reference's kind of adapter.",
                nameof(reference));
        if (projection!.HiddenStatesShape is { } shape && reference.HiddenStates?.Shape.SequenceEqual(shape) != true)
            throw new ArgumentException(
                $"Reference '{reference.Name}' holds hidden states of shape [{string.Join(", ", reference.HiddenStates?.Shape ?? [])}], but this engine's image encoder makes [{string.Join(", ", shape)}]: " +
                "the saved reference is damaged. Import the reference images again with this engine.",
                nameof(reference));
        if (reference.PictureEmbeddings?.Any(e => e.Length != ReferenceEmbeddingLength) == true)
            throw new ArgumentException(
                $"Reference '{reference.Name}' holds a picture's embedding of another length than this engine's image encoder makes ({ReferenceEmbeddingLength}): " +
                "the saved reference is damaged. Import the reference images again with this engine.",
                nameof(reference));
    }

    private static string Describe(IpAdapterKind kind) => kind == IpAdapterKind.Plus
        ? "IP-Adapter Plus (Plus or Plus-Face: the image encoder's hidden states)" : "the base IP-Adapter (ip-adapter_sdxl_vit-h: the image embedding)";

    private void RequireTinyDecoder(string what)
    {
        if (tinyDecoder is null)
            throw new InvalidOperationException(
                $"This engine was opened without a tiny decoder, so it cannot {what}. Open it with -TinyDecoderPath <madebyollin/taesdxl folder>, " +
                $"or run Install-MnemosyneModel {ModelResolver.TinyDecoderModel} and open it again: it is then taken from the Hugging Face cache.");
    }

    private OnDemandNetwork<ClipVisionEncoder> RequireImageEncoder() => imageEncoder
        ?? throw new InvalidOperationException("This engine was opened without an IP-Adapter and image encoder, so it cannot read reference images. Open it with -IPAdapterPath.");

    /// <summary>
    /// The adapter's keys and values for a reference's tokens and, the first time, for the unconditional branch's:
    /// made once per reference, not in every step, with the projections' weights read for the occasion.
    /// </summary>
    private IpAdapterKeyValues ReferenceKeyValues(CharacterReference reference, CancellationToken cancellation)
    {
        if (referenceKeyValues.TryGetValue(reference, out var cached)) return cached;
        var tokens = projection!.Tokens(reference, cancellation);
        IpAdapterKeyValues keyValues;
        if (unconditionalKeyValues is null && reference.PictureEmbeddings is { Length: > 1 })
        {
            // Concatenated pictures have more tokens than the unconditional branch: a run each.
            unconditionalKeyValues = adapterKeys!.Run(projection.UnconditionalTokens(imageEncoder!, cancellation), cancellation);
            keyValues = adapterKeys.Run(tokens, cancellation);
        }
        else if (unconditionalKeyValues is null)
        {
            // One run for both: each run reads the adapter's weights again.
            var both = adapterKeys!.Run(FloatTensorOps.ConcatBatch(projection.UnconditionalTokens(imageEncoder!, cancellation), tokens), cancellation);
            unconditionalKeyValues = both.BatchItem(0);
            keyValues = both.BatchItem(1);
        }
        else keyValues = adapterKeys!.Run(tokens, cancellation);
        if (referenceKeyValues.Count >= ReferenceCacheSize) referenceKeyValues.Clear();
        referenceKeyValues[reference] = keyValues;
        return keyValues;
    }

    /// <summary>
    /// The prompt's embedding and, when guidance needs it, the negative prompt's, with as many tokens as each other
    /// (A1111's chunks padded with the empty prompt's); a warning for each that was cut short.
    /// </summary>
    private (PromptEmbedding Positive, PromptEmbedding? Negative) EncodePrompts(
        SceneRequest request, bool encodeNegative, List<string> warnings, CancellationToken cancellation)
    {
        var negativeText = request.NegativePrompt ?? "";
        // A1111's chunks of the two may differ in number; the empty prompt's chunk pads the shorter.
        string[] texts = !encodeNegative ? [request.Prompt]
            : request.PromptStyle == PromptStyle.A1111 ? [request.Prompt, negativeText, ""] : [request.Prompt, negativeText];
        var encoded = promptEncoder.Encode(texts, request.PromptStyle, cancellation);
        foreach (var (prompt, what) in encoded.Zip(["prompt", "negative prompt"]))
        {
            if (prompt.DroppedTokens > 0)
                warnings.Add($"The {what} is longer than CLIP's 77 tokens: its last {prompt.DroppedTokens} tokens were dropped. " +
                    "PromptStyle A1111 (the default) reads long prompts whole.");
        }
        return encoded.Count switch
        {
            1 => (encoded[0].Embedding, null),
            2 => (encoded[0].Embedding, encoded[1].Embedding),
            _ => PromptEncoder.PadToSameLength(encoded[0].Embedding, encoded[1].Embedding, encoded[2].Embedding),
        };
    }

    /// <summary>The two encoders' states sit side by side: a non-finite value is blamed on the encoder whose columns hold it.</summary>
    private void CheckEncoded(PromptEmbedding embedding, string what)
    {
        var states = embedding.Embeds;
        if (FloatTensorOps.FirstNonFinite(states.Data) is { } at)
        {
            bool first = at % states.Shape[^1] < model.Configs.TextEncoder.HiddenSize;
            NonFiniteOutput.Check(states.Data, first ? "The first text encoder" : "The second text encoder",
                first ? model.TextEncoder.Path : model.TextEncoder2.Path, $"the {what}'s hidden states");
        }
        NonFiniteOutput.Check(embedding.Pooled.Data, "The second text encoder", model.TextEncoder2.Path, $"the {what}'s pooled embedding");
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            textEncoder.Dispose();
            textEncoder2.Dispose();
            unet.Dispose();
            loras?.Dispose();
            vae.Dispose();
            vaeEncoder.Dispose();
            tinyDecoder?.Dispose();
            imageEncoder?.Dispose();
            projection?.Dispose();
            adapterKeys?.Dispose();
            model.Dispose();
        }
    }
}
