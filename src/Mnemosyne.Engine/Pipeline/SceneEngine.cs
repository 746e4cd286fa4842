using System.Diagnostics;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Imaging;
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
    private const int PromptCacheSize = 64;

    /// <summary>A reference's keys and values are 2.7 MB at SDXL sizes (70 layers × 2 × 4 tokens × C).</summary>
    private const int ReferenceCacheSize = 16;

    private readonly object gate = new();
    private readonly bool forceZerosForEmptyPrompt;
    private readonly SchedulerConfig schedulerConfig;
    private readonly ClipTokenizer tokenizer, tokenizer2;
    private readonly SdxlModelFiles model;
    private readonly OnDemandNetwork<ClipTextEncoder> textEncoder, textEncoder2;
    private readonly OnDemandNetwork<Unet> unet;
    private readonly UnetConfig unetConfig;
    private readonly VaeDecoder vae;
    private readonly TiledVaeDecoder tiledVae;
    private readonly OnDemandNetwork<VaeEncoder> vaeEncoder;
    private readonly TinyAutoencoderDecoder? tinyDecoder;
    private readonly OnDemandNetwork<ClipVisionEncoder>? imageEncoder;
    private readonly ImageProjection? projection;
    private readonly IpAdapterKeys? adapterKeys;
    private readonly Dictionary<string, (PromptEmbedding Embedding, int Dropped)> prompts = new(StringComparer.Ordinal);
    private readonly LinkedList<string> promptOrder = new();
    private readonly Dictionary<CharacterReference, IpAdapterKeyValues> referenceKeyValues = new(ReferenceEqualityComparer.Instance);
    private IpAdapterKeyValues? unconditionalKeyValues;
    private bool disposed;

    private SceneEngine(EngineOptions options, SdxlModelFiles model, SchedulerConfig schedulerConfig,
        ClipTokenizer tokenizer, ClipTokenizer tokenizer2, OnDemandNetwork<ClipTextEncoder> textEncoder, OnDemandNetwork<ClipTextEncoder> textEncoder2,
        OnDemandNetwork<Unet> unet, VaeDecoder vae, OnDemandNetwork<VaeEncoder> vaeEncoder, TinyAutoencoderDecoder? tinyDecoder, OnDemandNetwork<ClipVisionEncoder>? imageEncoder,
        ImageProjection? projection, IpAdapterKeys? adapterKeys, string? encoderIdentity, SessionCache? sessionCache)
    {
        Options = options;
        this.model = model;
        ModelName = model.Name;
        forceZerosForEmptyPrompt = model.ForceZerosForEmptyPrompt;
        this.schedulerConfig = schedulerConfig;
        this.tokenizer = tokenizer;
        this.tokenizer2 = tokenizer2;
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
    }

    public EngineOptions Options { get; }

    /// <summary>
    /// A short name for the checkpoint (<see cref="EngineOptions.ModelName"/>, else its folder or file name; then "+" and the replacement UNet file's
    /// name when there is one), stored with every scene.
    /// </summary>
    public string ModelName { get; }

    public bool SupportsReferences => imageEncoder is not null;

    /// <summary>Whether the engine has a tiny decoder (<see cref="EngineOptions.TinyDecoderPath"/>), for <see cref="SceneDecoder.Tiny"/> and live previews.</summary>
    public bool SupportsTinyDecoder => tinyDecoder is not null;

    /// <summary>
    /// Where the networks' optimised sessions are kept (<see cref="EngineOptions.SessionCachePath"/>), with what it has
    /// loaded and saved and what went wrong; null when <see cref="EngineOptions.DisableSessionCache"/>.
    /// </summary>
    public SessionCache? SessionCache { get; }

    /// <summary>Which image encoder references are made with; null without an IP-Adapter.</summary>
    public string? ImageEncoderIdentity { get; }

    /// <summary>How many values the embedding of a reference made with this engine holds; null without an IP-Adapter.</summary>
    public int? ReferenceEmbeddingLength => projection?.Config.ImageEmbedDim;

    /// <summary>
    /// Opens the checkpoint (a diffusers folder or a single file, see <see cref="EngineOptions"/>): the
    /// UNet and the VAE's decoder are loaded now; the encoders are checked now (every tensor and shape) and
    /// loaded when a new prompt or reference needs them; the VAE's encoder is loaded when a scene starts from a picture. <paramref name="log"/> hears what is loading.
    /// </summary>
    public static SceneEngine Open(EngineOptions options, IProgress<string>? log = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var adapterFiles = options.IpAdapterPath is null ? null : IpAdapterFiles.Open(options.IpAdapterPath, options.ImageEncoderPath);
        var model = SdxlModelFiles.Open(options);
        var sessionCache = options.DisableSessionCache ? null : new SessionCache(options.SessionCachePath);
        var settings = new SessionSettings
        {
            Threads = options.Threads, Precision = options.Precision, ConvertedWeightsRoot = options.ConvertedWeightsPath, SessionCache = sessionCache,
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
            ImageProjection? projection = null;
            IpAdapterKeys? adapterKeys = null;
            string? identity = null;
            if (adapterFiles is not null)
            {
                var encoderConfig = adapterFiles.ReadImageEncoderConfig();
                using (var encoderWeights = SafetensorsFile.Open(adapterFiles.ImageEncoderWeightsPath))
                    ClipVisionEncoder.BuildGraph(encoderConfig, encoderWeights, null);
                imageEncoder = OnDemand(opened, log, "image encoder", () => ClipVisionEncoder.Load(adapterFiles, settings), options.KeepEncodersLoaded);
                projection = Track("image projection", () => ImageProjection.Load(adapterFiles.AdapterPath, ImageProjectionConfig.For(encoderConfig, configs.Unet), settings));
                // Holds no weights: each run loads them, a group of layers at a time.
                adapterKeys = Track("IP-Adapter keys", () => IpAdapterKeys.Load(adapterFiles.AdapterPath, configs.Unet, settings));
                identity = $"clip-vision-{encoderConfig.HiddenSize}x{encoderConfig.NumHiddenLayers}-proj{encoderConfig.ProjectionDim}-{new FileInfo(adapterFiles.ImageEncoderWeightsPath).Length}";
            }
            return new SceneEngine(options, model, schedulerConfig, tokenizer, tokenizer2, textEncoder, textEncoder2,
                unet, vae, vaeEncoder, tinyDecoder, imageEncoder, projection, adapterKeys, identity, sessionCache);
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

    /// <summary>Encodes one or more images of one character; their embeddings are averaged.</summary>
    public CharacterReference EncodeReference(IReadOnlyList<string> imagePaths, string? name = null, CancellationToken cancellation = default)
    {
        if (imagePaths.Count == 0) throw new ArgumentException("At least one reference image is needed.", nameof(imagePaths));
        RequireImageEncoder();
        return EncodeReference(imagePaths.Select(p => new ReferencePicture(Path.GetFullPath(p), SafeImageDecoder.Default.Decode(p))).ToList(), name, cancellation);
    }

    /// <summary>
    /// Encodes pictures of one character that the caller has decoded (so that it can report and leave out
    /// a damaged one before encoding the others); their embeddings are averaged.
    /// </summary>
    public CharacterReference EncodeReference(IReadOnlyList<ReferencePicture> pictures, string? name = null, CancellationToken cancellation = default)
    {
        if (pictures.Count == 0) throw new ArgumentException("At least one reference image is needed.", nameof(pictures));
        var encoder = RequireImageEncoder();
        var embeddings = new List<FloatTensor>();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            encoder.Use(network =>
            {
                foreach (var picture in pictures)
                    embeddings.Add(network.Run(ClipImagePreprocessor.Preprocess(picture.Image), cancellation));
                return embeddings;
            });
        }
        return new CharacterReference
        {
            Name = name ?? Path.GetFileNameWithoutExtension(pictures[0].Path),
            Sources = pictures.Select(p => new ReferenceSource(p.Path, CharacterReference.Sha256Of(p.Path))).ToList(),
            Embedding = FloatTensorOps.Mean(embeddings).Data,
            Encoder = ImageEncoderIdentity!,
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
    public Scene Generate(SceneRequest request, IProgress<SceneProgress>? progress = null, CancellationToken cancellation = default,
        PreviewSettings? preview = null)
    {
        request.Validate();
        preview?.Validate();
        if (request.Reference is { } reference) CheckReference(reference);
        if (request.Decoder == SceneDecoder.Tiny) RequireTinyDecoder("make a scene with Decoder Tiny");
        if (preview is not null) RequireTinyDecoder("draw live previews");
        var clock = Stopwatch.StartNew();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var warnings = new List<string>();
            bool encodeNegative = request.GuidanceScale > 1 && (request.NegativePrompt is not null || !forceZerosForEmptyPrompt);
            var negativeText = request.NegativePrompt ?? "";
            EncodePrompts(encodeNegative ? [request.Prompt, negativeText] : [request.Prompt], cancellation);
            var positive = CachedPrompt(request.Prompt, "prompt", warnings);
            var negative = encodeNegative ? CachedPrompt(negativeText, "negative prompt", warnings) : null;

            IpAdapterKeyValues? ipKeyValues = null;
            if (request.Reference is { } r && request.ReferenceWeight > 0) ipKeyValues = ReferenceKeyValues(r, cancellation);

            var conditioning = new SdxlPipeline.Conditioning(positive, negative, ipKeyValues, unconditionalKeyValues);
            var observer = preview is null ? null : new LivePreview(tinyDecoder!, preview, warnings);
            var start = PictureStart.For(request, pixels => EncodePicture(pixels, cancellation));
            var latents = unet.Use(network => SdxlPipeline.Denoise(request, conditioning, network, schedulerConfig, progress, cancellation, observer, start));
            ILatentDecoder decoder = request.Decoder switch
            {
                SceneDecoder.Tiny => tinyDecoder!,
                SceneDecoder.Tiled => tiledVae,
                _ => vae,
            };
            // The tiny decoder's activations are a small part of the VAE's: it always decodes beside the UNet. Tiles need one tile's.
            int decodedSide = request.Decoder == SceneDecoder.Tiled ? tiledVae.TileSampleSize : int.MaxValue;
            if (decoder != tinyDecoder && (Options.LowMemory || !DecodeFitsBesideUnet(Math.Min(request.Width, decodedSide), Math.Min(request.Height, decodedSide))))
                unet.Release();
            var image = SdxlPipeline.Decode(decoder, latents, cancellation);
            // The encoders load on demand, so their cache's warnings arrive with the scene that loaded them.
            if (SessionCache is not null) warnings.AddRange(SessionCache.TakeWarnings());
            warnings.AddRange(ConvertedWeightCache.TakeWarnings());
            return new Scene
            {
                Image = image,
                Prompt = request.Prompt,
                NegativePrompt = request.NegativePrompt,
                Seed = request.Seed,
                Steps = request.Steps,
                Scheduler = request.Scheduler,
                Spacing = request.Spacing,
                GuidanceScale = request.GuidanceScale,
                GuidanceCutoff = request.GuidanceCutoff,
                Width = request.Width,
                Height = request.Height,
                ReferenceName = request.Reference?.Name,
                ReferenceWeight = request.Reference is null ? 0 : request.ReferenceWeight,
                Model = ModelName,
                Precision = Options.Precision,
                InitialNoisePath = request.InitialNoisePath,
                InitImagePath = request.InitImage is null ? null : request.InitImagePath,
                MaskPath = request.Mask is null ? null : request.MaskPath,
                Strength = request.InitImage is null ? null : request.Strength,
                DeepCacheInterval = request.DeepCacheInterval,
                Decoder = request.Decoder,
                Elapsed = clock.Elapsed,
                FinalLatents = latents,
                Warnings = warnings,
            };
        }
    }

    /// <summary>
    /// The VAE encoder's latent distribution of a starting picture. Its activations are the decoder's size, so the
    /// UNet makes room for it on the same terms as for a decode.
    /// </summary>
    private LatentDistribution EncodePicture(FloatTensor pixels, CancellationToken cancellation)
    {
        if (Options.LowMemory || !DecodeFitsBesideUnet(pixels.Shape[3], pixels.Shape[2])) unet.Release();
        return vaeEncoder.Use(network => network.Run(pixels, cancellation));
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
    }

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
        var tokens = projection!.Run(new FloatTensor(reference.Embedding, [1, reference.Embedding.Length]), cancellation);
        IpAdapterKeyValues keyValues;
        if (unconditionalKeyValues is null)
        {
            // One run for both: each run reads the adapter's weights again.
            var both = adapterKeys!.Run(FloatTensorOps.ConcatBatch(projection.UnconditionalTokens(cancellation), tokens), cancellation);
            unconditionalKeyValues = both.BatchItem(0);
            keyValues = both.BatchItem(1);
        }
        else keyValues = adapterKeys!.Run(tokens, cancellation);
        if (referenceKeyValues.Count >= ReferenceCacheSize) referenceKeyValues.Clear();
        referenceKeyValues[reference] = keyValues;
        return keyValues;
    }

    /// <summary>
    /// Encodes the texts not cached yet: both encoders' penultimate states concatenated, and encoder 2's
    /// pooled text. The encoders are loaded once for all of them.
    /// </summary>
    private void EncodePrompts(IReadOnlyList<string> texts, CancellationToken cancellation)
    {
        var missing = texts.Distinct(StringComparer.Ordinal).Where(t => !prompts.ContainsKey(t)).ToList();
        if (missing.Count == 0) return;
        var ids = missing.Select(t => (First: tokenizer.Encode(t), Second: tokenizer2.Encode(t))).ToList();
        var hidden1 = textEncoder.Use(network => ids.Select(i => network.Run([i.First.IdsAsInt64()], cancellation).PenultimateHiddenStates).ToList());
        var output2 = textEncoder2.Use(network => ids.Select(i => network.Run([i.Second.IdsAsInt64()], cancellation)).ToList());
        for (int i = 0; i < missing.Count; i++)
        {
            var embedding = new PromptEmbedding(ConcatFeatures(hidden1[i], output2[i].PenultimateHiddenStates), output2[i].TextEmbeds!);
            prompts[missing[i]] = (embedding, Math.Max(ids[i].First.DroppedTokenCount, ids[i].Second.DroppedTokenCount));
            promptOrder.AddLast(missing[i]);
            if (promptOrder.Count > PromptCacheSize)
            {
                prompts.Remove(promptOrder.First!.Value);
                promptOrder.RemoveFirst();
            }
        }
    }

    private PromptEmbedding CachedPrompt(string text, string what, List<string> warnings)
    {
        var cached = prompts[text];
        if (cached.Dropped > 0)
            warnings.Add($"The {what} is longer than CLIP's 77 tokens: its last {cached.Dropped} tokens were dropped.");
        return cached.Embedding;
    }

    /// <summary>[1, L, a] ‖ [1, L, b] → [1, L, a + b].</summary>
    private static FloatTensor ConcatFeatures(FloatTensor a, FloatTensor b)
    {
        int rows = a.Shape[1], wa = a.Shape[2], wb = b.Shape[2];
        var data = new float[rows * (wa + wb)];
        for (int r = 0; r < rows; r++)
        {
            Array.Copy(a.Data, r * wa, data, r * (wa + wb), wa);
            Array.Copy(b.Data, r * wb, data, r * (wa + wb) + wa, wb);
        }
        return new FloatTensor(data, [1, rows, wa + wb]);
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
