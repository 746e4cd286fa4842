using System.Diagnostics;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
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

    private readonly object gate = new();
    private readonly bool forceZerosForEmptyPrompt;
    private readonly SchedulerConfig schedulerConfig;
    private readonly ClipTokenizer tokenizer, tokenizer2;
    private readonly ClipTextEncoder textEncoder, textEncoder2;
    private readonly Unet unet;
    private readonly VaeDecoder vae;
    private readonly ClipVisionEncoder? imageEncoder;
    private readonly ImageProjection? projection;
    private readonly Dictionary<string, (PromptEmbedding Embedding, int Dropped)> prompts = new(StringComparer.Ordinal);
    private readonly LinkedList<string> promptOrder = new();
    private readonly Dictionary<CharacterReference, FloatTensor> referenceTokens = new(ReferenceEqualityComparer.Instance);
    private FloatTensor? unconditionalTokens;
    private bool disposed;

    private SceneEngine(EngineOptions options, SdxlModelFiles model, SchedulerConfig schedulerConfig,
        ClipTokenizer tokenizer, ClipTokenizer tokenizer2, ClipTextEncoder textEncoder, ClipTextEncoder textEncoder2,
        Unet unet, VaeDecoder vae, ClipVisionEncoder? imageEncoder, ImageProjection? projection, string? encoderIdentity)
    {
        Options = options;
        ModelName = model.Name;
        forceZerosForEmptyPrompt = model.ForceZerosForEmptyPrompt;
        this.schedulerConfig = schedulerConfig;
        this.tokenizer = tokenizer;
        this.tokenizer2 = tokenizer2;
        this.textEncoder = textEncoder;
        this.textEncoder2 = textEncoder2;
        this.unet = unet;
        this.vae = vae;
        this.imageEncoder = imageEncoder;
        this.projection = projection;
        ImageEncoderIdentity = encoderIdentity;
    }

    public EngineOptions Options { get; }

    /// <summary>
    /// A short name for the checkpoint (<see cref="EngineOptions.ModelName"/>, else its folder or file name; then "+" and the replacement UNet file's
    /// name when there is one), stored with every scene.
    /// </summary>
    public string ModelName { get; }

    public bool SupportsReferences => imageEncoder is not null;

    /// <summary>Which image encoder references are made with; null without an IP-Adapter.</summary>
    public string? ImageEncoderIdentity { get; }

    /// <summary>
    /// Opens every network of the checkpoint (a diffusers folder or a single file, see
    /// <see cref="EngineOptions"/>); <paramref name="log"/> hears which one is loading.
    /// </summary>
    public static SceneEngine Open(EngineOptions options, IProgress<string>? log = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var adapterFiles = options.IpAdapterPath is null ? null : IpAdapterFiles.Open(options.IpAdapterPath, options.ImageEncoderPath ?? DefaultImageEncoderFolder(options.IpAdapterPath));
        using var model = SdxlModelFiles.Open(options);
        var settings = new SessionSettings { Threads = options.Threads };
        var schedulerConfig = SchedulerConfig.Load(model.SchedulerConfigPath);
        var tokenizer = ClipTokenizer.Load(model.Tokenizer);
        var tokenizer2 = ClipTokenizer.Load(model.Tokenizer2);

        var opened = new List<IDisposable>();
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
            var textEncoder = Track("text_encoder", () => ClipTextEncoder.Load(configs.TextEncoder, model.TextEncoder, settings));
            var textEncoder2 = Track("text_encoder_2", () => ClipTextEncoder.Load(configs.TextEncoder2, model.TextEncoder2, settings));
            var unet = Track("unet", () => Unet.Load(configs.Unet, model.Unet, adapterFiles, settings));
            var vae = Track("vae", () => VaeDecoder.Load(configs.Vae, model.Vae, settings));
            ClipVisionEncoder? imageEncoder = null;
            ImageProjection? projection = null;
            string? identity = null;
            if (adapterFiles is not null)
            {
                var encoderConfig = adapterFiles.ReadImageEncoderConfig();
                imageEncoder = Track("image encoder", () => ClipVisionEncoder.Load(adapterFiles, settings));
                projection = Track("image projection", () => ImageProjection.Load(adapterFiles.AdapterPath, ImageProjectionConfig.For(encoderConfig, unet.Config), settings));
                identity = $"clip-vision-{encoderConfig.HiddenSize}x{encoderConfig.NumHiddenLayers}-proj{encoderConfig.ProjectionDim}-{new FileInfo(adapterFiles.ImageEncoderWeightsPath).Length}";
            }
            return new SceneEngine(options, model, schedulerConfig, tokenizer, tokenizer2, textEncoder, textEncoder2,
                unet, vae, imageEncoder, projection, identity);
        }
        catch
        {
            foreach (var item in opened) item.Dispose();
            throw;
        }
    }

    /// <summary>h94/IP-Adapter keeps the ViT-H encoder in models/image_encoder beside sdxl_models/.</summary>
    private static string DefaultImageEncoderFolder(string adapterPath)
        => Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(adapterPath)))!, IpAdapterFiles.ImageEncoderRelativePath);

    /// <summary>Encodes one or more images of one character; their embeddings are averaged.</summary>
    public CharacterReference EncodeReference(IReadOnlyList<string> imagePaths, string? name = null, CancellationToken cancellation = default)
    {
        if (imagePaths.Count == 0) throw new ArgumentException("At least one reference image is needed.", nameof(imagePaths));
        var encoder = RequireImageEncoder();
        var images = imagePaths.Select(p => (Path: Path.GetFullPath(p), Image: SafeImageDecoder.Default.Decode(p))).ToList();
        var embeddings = new List<FloatTensor>();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            foreach (var (_, image) in images)
                embeddings.Add(encoder.Run(ClipImagePreprocessor.Preprocess(image), cancellation));
        }
        return new CharacterReference
        {
            Name = name ?? Path.GetFileNameWithoutExtension(images[0].Path),
            Sources = images.Select(i => new ReferenceSource(i.Path, CharacterReference.Sha256Of(i.Path))).ToList(),
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
            return encoder.Run(ClipImagePreprocessor.Preprocess(image), cancellation).Data;
        }
    }

    public Scene Generate(SceneRequest request, IProgress<SceneProgress>? progress = null, CancellationToken cancellation = default)
    {
        request.Validate();
        if (request.Reference is { } reference) CheckReference(reference);
        var clock = Stopwatch.StartNew();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var warnings = new List<string>();
            var positive = EncodePrompt(request.Prompt, "prompt", warnings, cancellation);
            PromptEmbedding? negative = null;
            if (request.GuidanceScale > 1 && (request.NegativePrompt is not null || !forceZerosForEmptyPrompt))
                negative = EncodePrompt(request.NegativePrompt ?? "", "negative prompt", warnings, cancellation);

            FloatTensor? ipTokens = null, unconditional = null;
            if (projection is not null)
            {
                unconditional = unconditionalTokens ??= projection.UnconditionalTokens(cancellation);
                if (request.Reference is { } r && request.ReferenceWeight > 0) ipTokens = ReferenceTokens(r, cancellation);
            }

            var (latents, image) = SdxlPipeline.Run(request, new SdxlPipeline.Conditioning(positive, negative, ipTokens, unconditional),
                unet, vae, schedulerConfig, progress, cancellation);
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
                Width = request.Width,
                Height = request.Height,
                ReferenceName = request.Reference?.Name,
                ReferenceWeight = request.Reference is null ? 0 : request.ReferenceWeight,
                Model = ModelName,
                InitialNoisePath = request.InitialNoisePath,
                Elapsed = clock.Elapsed,
                FinalLatents = latents,
                Warnings = warnings,
            };
        }
    }

    private void CheckReference(CharacterReference reference)
    {
        if (imageEncoder is null)
            throw new InvalidOperationException("This engine was opened without an IP-Adapter, so it cannot use a reference. Open it with -IPAdapterPath.");
        if (reference.Encoder != ImageEncoderIdentity)
            throw new ArgumentException(
                $"Reference '{reference.Name}' was encoded with '{reference.Encoder}', but this engine's image encoder is '{ImageEncoderIdentity}'. Import the reference images again with this engine.",
                nameof(reference));
    }

    private ClipVisionEncoder RequireImageEncoder() => imageEncoder
        ?? throw new InvalidOperationException("This engine was opened without an IP-Adapter and image encoder, so it cannot read reference images. Open it with -IPAdapterPath.");

    private FloatTensor ReferenceTokens(CharacterReference reference, CancellationToken cancellation)
    {
        if (referenceTokens.TryGetValue(reference, out var tokens)) return tokens;
        var embeds = new FloatTensor(reference.Embedding, [1, reference.Embedding.Length]);
        tokens = projection!.Run(embeds, cancellation);
        if (referenceTokens.Count >= PromptCacheSize) referenceTokens.Clear();
        referenceTokens[reference] = tokens;
        return tokens;
    }

    /// <summary>Both encoders' penultimate states concatenated, and encoder 2's pooled text, cached per text.</summary>
    private PromptEmbedding EncodePrompt(string text, string what, List<string> warnings, CancellationToken cancellation)
    {
        if (!prompts.TryGetValue(text, out var cached))
        {
            var ids1 = tokenizer.Encode(text);
            var ids2 = tokenizer2.Encode(text);
            var hidden1 = textEncoder.Run([ids1.IdsAsInt64()], cancellation).PenultimateHiddenStates;
            var output2 = textEncoder2.Run([ids2.IdsAsInt64()], cancellation);
            var embeds = ConcatFeatures(hidden1, output2.PenultimateHiddenStates);
            cached = (new PromptEmbedding(embeds, output2.TextEmbeds!), Math.Max(ids1.DroppedTokenCount, ids2.DroppedTokenCount));
            prompts[text] = cached;
            promptOrder.AddLast(text);
            if (promptOrder.Count > PromptCacheSize)
            {
                prompts.Remove(promptOrder.First!.Value);
                promptOrder.RemoveFirst();
            }
        }
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
            imageEncoder?.Dispose();
            projection?.Dispose();
        }
    }
}
