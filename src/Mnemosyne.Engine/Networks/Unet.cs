using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// What the UNet is conditioned on besides the latents and the timestep; constant over a sampling loop.
/// </summary>
/// <param name="EncoderHiddenStates">Prompt embeddings [B, tokens, cross_attention_dim].</param>
/// <param name="TextEmbeds">Pooled prompt embeddings [B, pooled].</param>
/// <param name="TimeIds">SDXL micro-conditioning [B, 6]: original (h, w), crop (top, left), target (h, w).</param>
public sealed record UnetConditioning(FloatTensor EncoderHiddenStates, FloatTensor TextEmbeds, FloatTensor TimeIds)
{
    /// <summary>
    /// The IP-Adapter's key and value of every cross-attention, made from the image-prompt tokens by
    /// <see cref="IpAdapterKeys"/>, with this batch; null for no reference.
    /// </summary>
    public IpAdapterKeyValues? IpKeyValues { get; init; }

    /// <summary>The IP-Adapter weight of every cross-attention, for one reference; 0 gives exactly the text-only UNet.</summary>
    public float IpScale { get; init; }

    /// <summary>
    /// Several references: how many tokens of <see cref="IpKeyValues"/> each has, in order, side by side (4 per picture for
    /// the base adapter); each attends over its own. Null: one reference of all the tokens.
    /// </summary>
    public IReadOnlyList<int>? IpTokenCounts { get; init; }

    /// <summary>
    /// Each reference's weight in each cross-attention [layers × references], layer by layer in <see cref="IpAdapterAttention.Layers"/>'
    /// order (instead of <see cref="IpScale"/>); null: <see cref="IpScale"/> everywhere.
    /// </summary>
    public float[]? IpScales { get; init; }

    /// <summary>
    /// The references' region masks, per resolution level that has cross-attentions: [references, queries] (diffusers'
    /// downsampled ip_adapter_masks, <see cref="Unet.QueriesAt"/> of them); null, or a null level: everywhere.
    /// </summary>
    public IReadOnlyDictionary<int, FloatTensor>? IpMasks { get; init; }

    /// <summary>How many references the IP-Adapter inputs hold.</summary>
    public int IpReferenceCount => IpTokenCounts?.Count ?? 1;
}

/// <summary>
/// The SDXL UNet (diffusers UNet2DConditionModel with the "text_time" added embedding), optionally with
/// IP-Adapter decoupled cross-attention in every attn2, as one ONNX graph built from the checkpoint.
/// The adapter's keys and values (<see cref="IpAdapterKeys"/>) and its weight are inputs of the graph, so one
/// session serves every reference and weight, and the UNet holds none of the adapter's weights.
/// </summary>
public sealed class Unet : IDisposable
{
    public const string SampleInput = "sample";
    public const string TimestepInput = "timestep";
    public const string EncoderHiddenStatesInput = "encoder_hidden_states";
    public const string TextEmbedsInput = "text_embeds";
    public const string TimeIdsInput = "time_ids";
    public const string IpScaleInput = IpAdapterAttention.ScalesInput;
    public const string Output = "out_sample";

    /// <summary>
    /// A second output of the whole UNet, and the input of <see cref="RunFromFeature"/>: what enters the last layer of
    /// the last up block beside the first skip connection (DeepCache's shallowest cached branch).
    /// </summary>
    public const string DeepCacheFeatureOutput = "deep_cache_feature";

    internal const string DownBlock = "DownBlock2D";
    internal const string CrossAttnDownBlock = "CrossAttnDownBlock2D";
    internal const string UpBlock = "UpBlock2D";
    internal const string CrossAttnUpBlock = "CrossAttnUpBlock2D";
    internal const string CrossAttnMidBlock = "UNetMidBlock2DCrossAttn";

    /// <summary>SDXL's time ids: original size, crop corner and target size.</summary>
    public const int TimeIdCount = 6;

    private readonly OnnxModel model;
    private readonly Lazy<OnnxModel> shallowModel;
    private readonly IReadOnlyList<IpAdapterAttention.Layer> ipLayers;
    private readonly LoraFeed? lora;

    private Unet(OnnxModel model, OnnxGraph shallowGraph, SessionSettings settings, UnetConfig config, bool hasIpAdapter, string weightsPath, LoraFeed? lora)
    {
        this.model = model;
        this.lora = lora;
        WeightsPath = weightsPath;
        // Made on first use: only a scene with DeepCache runs it. A profile of it is a file of its own.
        var shallowSettings = settings.ProfilePathPrefix is null ? settings : settings with { ProfilePathPrefix = settings.ProfilePathPrefix + "-shallow" };
        shallowModel = new(() => OnnxModel.Create(shallowGraph, shallowSettings));
        Config = config;
        HasIpAdapter = hasIpAdapter;
        ipLayers = hasIpAdapter ? IpAdapterAttention.Layers(config) : [];
    }

    /// <summary>The levels (resolutions) that have cross-attentions: each takes its own region masks.</summary>
    public IEnumerable<int> AttentionLevels => ipLayers.Select(l => l.Level).Distinct();

    /// <summary>The queries of an attention at <paramref name="level"/> for latents of <paramref name="height"/> × <paramref name="width"/>: each downsampler halves a side, rounding up.</summary>
    public static int QueriesAt(int level, int height, int width)
    {
        for (int i = 0; i < level; i++) (height, width) = ((height + 1) / 2, (width + 1) / 2);
        return height * width;
    }

    public UnetConfig Config { get; }

    /// <summary>The weights file the UNet was loaded from (not its converted copy), for messages.</summary>
    public string WeightsPath { get; }

    /// <summary>Whether the graph has the IP-Adapter branch (an adapter file was given).</summary>
    public bool HasIpAdapter { get; }

    /// <summary>The width of the pooled text embedding the added condition expects.</summary>
    public int PooledTextDim => PooledTextWidth(Config);

    /// <summary>
    /// Loads unet/ of a diffusers checkpoint, with the IP-Adapter branch when <paramref name="ipAdapter"/> is given;
    /// the adapter's weights are not read (<see cref="IpAdapterKeys"/> runs them), but its file must match this UNet.
    /// </summary>
    public static Unet Load(ComponentFiles unet, IpAdapterFiles? ipAdapter, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(settings);
        var config = ConfigJson.Read<UnetConfig>(unet.ConfigPath);
        using var weights = SafetensorsFile.Open(unet.WeightsPath);
        return Load(config, weights, ipAdapter, settings);
    }

    /// <summary>
    /// A UNet over any weight source (e.g. a single-file checkpoint's), which must stay open until this returns.
    /// With <see cref="SessionSettings.Precision"/> Int8 the first load converts the weights into the cache
    /// (<see cref="ConvertedWeightCache"/>), and later loads read them from there. With <paramref name="lora"/> every
    /// linear and convolution layer it names has a LoRA branch, whose factors every run takes from it.
    /// </summary>
    public static Unet Load(UnetConfig config, IWeightSource weights, IpAdapterFiles? ipAdapter, SessionSettings settings, LoraFeed? lora = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(settings);
        var withAdapter = ipAdapter is not null;
        // The whole UNet and DeepCache's shallow one read the same weights (the shallow one a few of them).
        (OnnxGraph Whole, OnnxGraph Shallow) Build(IWeightSource source, string? folder)
            => (BuildGraph(config, source, withAdapter, folder, lora?.Modules), BuildShallowGraph(config, source, withAdapter, folder, lora?.Modules));
        void CheckAdapterFile() { if (ipAdapter is not null) CheckAdapter(config, ipAdapter); }

        var (whole, shallow) = settings.Precision == WeightPrecision.Float32
            ? Build(weights, Path.GetDirectoryName(weights.Path))
            : ConvertedNetwork.Build(settings, [("unet", weights)], (sources, folder) => Build(sources[0], folder), CheckAdapterFile);
        if (settings.Precision == WeightPrecision.Float32) CheckAdapterFile();
        return new Unet(OnnxModel.Create(whole, settings), shallow, settings, config, withAdapter, weights.Path, lora);
    }

    /// <summary>Loads a unet/ folder holding config.json and diffusion_pytorch_model.safetensors.</summary>
    public static Unet Load(string unetFolder, IpAdapterFiles? ipAdapter, SessionSettings settings)
    {
        var folder = Path.GetFullPath(unetFolder);
        var config = Path.Combine(folder, "config.json");
        var weights = Path.Combine(folder, "diffusion_pytorch_model.safetensors");
        foreach (var file in new[] { config, weights })
            if (!File.Exists(file))
                throw new FileNotFoundException($"UNet file not found: {file} (a diffusers unet/ folder has config.json and diffusion_pytorch_model.safetensors).", file);
        return Load(new ComponentFiles(folder, config, weights), ipAdapter, settings);
    }

    /// <summary>
    /// Builds the UNet graph, asking <paramref name="unetWeights"/> for every tensor with the shape the config
    /// implies, so a wrong or incomplete checkpoint is refused here, before any weight is read. With
    /// <paramref name="withIpAdapter"/> every cross-attention takes the adapter's key and value
    /// (<c>ip_key_{n}</c>, <c>ip_value_{n}</c> [B, tokens, C]) and the weight <c>ip_scale</c> as inputs;
    /// without, the graph has no ip inputs. With <paramref name="loraBranches"/> the linear and convolution layers it
    /// names have a LoRA branch (<see cref="OnnxGraph.LoraBranches"/>).
    /// </summary>
    public static OnnxGraph BuildGraph(UnetConfig config, IWeightSource unetWeights, bool withIpAdapter, string? weightFolder, Func<string, bool>? loraBranches = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(unetWeights);
        CheckSupported(config, unetWeights.Path);
        return new GraphBuilder(config, unetWeights, withIpAdapter, weightFolder, loraBranches).Build();
    }

    /// <summary>
    /// The shallow UNet of DeepCache's branch 0: the embeddings, conv_in, the last layer of the last up block and the
    /// output head, run on a <see cref="DeepCacheFeatureOutput"/> of the whole UNet kept from an earlier step. It
    /// takes the same inputs as the whole graph plus <see cref="DeepCacheFeatureOutput"/>.
    /// </summary>
    public static OnnxGraph BuildShallowGraph(UnetConfig config, IWeightSource unetWeights, bool withIpAdapter, string? weightFolder, Func<string, bool>? loraBranches = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(unetWeights);
        CheckSupported(config, unetWeights.Path);
        return new GraphBuilder(config, unetWeights, withIpAdapter, weightFolder, loraBranches).BuildShallow();
    }

    /// <summary>The adapter's projections must fit this UNet (layers and widths); its headers are read, not its weights.</summary>
    private static void CheckAdapter(UnetConfig config, IpAdapterFiles ipAdapter)
    {
        using var adapter = SafetensorsFile.Open(ipAdapter.AdapterPath);
        IpAdapterKeys.BuildGraph(config, adapter, null);
    }

    /// <summary>One UNet forward at one timestep for the whole batch; returns the noise prediction [B, out, h, w].</summary>
    public FloatTensor Run(FloatTensor sample, float timestep, UnetConditioning conditioning, CancellationToken cancellation = default)
        => Run(sample, [timestep], conditioning, cancellation);

    /// <summary>
    /// One UNet forward; <paramref name="timesteps"/> holds one value for the whole batch or one per batch
    /// item (fractional values are kept, as diffusers does for float timesteps).
    /// </summary>
    public FloatTensor Run(FloatTensor sample, float[] timesteps, UnetConditioning conditioning, CancellationToken cancellation = default)
        => model.Run(Inputs(sample, timesteps, conditioning), [Output], cancellation)[0];

    /// <summary>One UNet forward that also returns its <see cref="DeepCacheFeatureOutput"/>, for <see cref="RunFromFeature"/>.</summary>
    public (FloatTensor Prediction, FloatTensor Feature) RunKeepingFeature(
        FloatTensor sample, float timestep, UnetConditioning conditioning, CancellationToken cancellation = default)
    {
        var outputs = model.Run(Inputs(sample, [timestep], conditioning), [Output, DeepCacheFeatureOutput], cancellation);
        return (outputs[0], outputs[1]);
    }

    /// <summary>
    /// The noise prediction of the shallow UNet (<see cref="BuildShallowGraph"/>) on a feature that
    /// <see cref="RunKeepingFeature"/> gave at an earlier step, for the same batch.
    /// </summary>
    public FloatTensor RunFromFeature(FloatTensor sample, float timestep, UnetConditioning conditioning, FloatTensor feature, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(feature);
        var inputs = Inputs(sample, [timestep], conditioning);
        long channels = Config.BlockOutChannels[0];
        if (feature.Shape is not [var b, var c, var h, var w] || b != sample.Shape[0] || c != channels || h != sample.Shape[2] || w != sample.Shape[3])
            throw new ArgumentException(
                $"The feature must be [{sample.Shape[0]}, {channels}, {sample.Shape[2]}, {sample.Shape[3]}] (the sample's batch and size); it is {ShapeText(feature)}.",
                nameof(feature));
        inputs.Add(ModelInput.Float(DeepCacheFeatureOutput, feature));
        // The shallow graph reads the adapter's keys and values of its own layers only (none when it has no attention).
        var shallow = shallowModel.Value;
        var accepted = shallow.InputNames;
        return shallow.Run(inputs.Where(i => accepted.Contains(i.Name)).ToList(), [Output], cancellation)[0];
    }

    private List<ModelInput> Inputs(FloatTensor sample, float[] timesteps, UnetConditioning conditioning)
    {
        ArgumentNullException.ThrowIfNull(sample);
        ArgumentNullException.ThrowIfNull(timesteps);
        ArgumentNullException.ThrowIfNull(conditioning);
        var batch = CheckInputs(sample, timesteps, conditioning);
        var inputs = new List<ModelInput>
        {
            ModelInput.Float(SampleInput, sample),
            ModelInput.Float(TimestepInput, new FloatTensor(timesteps, [timesteps.Length])),
            ModelInput.Float(EncoderHiddenStatesInput, conditioning.EncoderHiddenStates),
            ModelInput.Float(TextEmbedsInput, conditioning.TextEmbeds),
            ModelInput.Float(TimeIdsInput, conditioning.TimeIds),
        };
        if (HasIpAdapter)
        {
            var c = conditioning;
            // No reference: zero keys and values at weight 0 leave the output exactly that of the text-only UNet.
            var keyValues = c.IpKeyValues?.Layers
                ?? ipLayers.Select(l => new IpAdapterLayerKeyValue(l.Number, FloatTensorOps.Zeros(batch, 1, (int)l.Channels), FloatTensorOps.Zeros(batch, 1, (int)l.Channels))).ToList();
            foreach (var layer in keyValues)
            {
                inputs.Add(ModelInput.Float(IpAdapterAttention.KeyName(layer.Number), layer.Key));
                inputs.Add(ModelInput.Float(IpAdapterAttention.ValueName(layer.Number), layer.Value));
            }
            int references = c.IpReferenceCount;
            var scales = c.IpScales ?? Enumerable.Repeat(c.IpScale, ipLayers.Count).ToArray();
            inputs.Add(ModelInput.Float(IpScaleInput, new FloatTensor(scales, [ipLayers.Count, references])));
            int tokens = keyValues[0].Key.Shape[1];
            var bias = new float[references * tokens];
            if (c.IpTokenCounts is { } counts)
            {
                Array.Fill(bias, float.NegativeInfinity);
                for (int r = 0, first = 0; r < references; first += counts[r], r++)
                    Array.Fill(bias, 0f, r * tokens + first, counts[r]);
            }
            inputs.Add(ModelInput.Float(IpAdapterAttention.TokenBiasInput, new FloatTensor(bias, [references, tokens])));
            foreach (var level in AttentionLevels)
            {
                var mask = c.IpMasks?.GetValueOrDefault(level);
                if (mask is null)
                {
                    int queries = QueriesAt(level, sample.Shape[2], sample.Shape[3]);
                    var ones = new float[references * queries];
                    Array.Fill(ones, 1f);
                    mask = new FloatTensor(ones, [references, queries]);
                }
                inputs.Add(ModelInput.Float(IpAdapterAttention.MaskName(level), mask));
            }
        }
        if (lora is not null) inputs.AddRange(lora.Inputs);
        return inputs;
    }

    public void Dispose()
    {
        model.Dispose();
        if (shallowModel.IsValueCreated) shallowModel.Value.Dispose();
    }

    private int CheckInputs(FloatTensor sample, float[] timesteps, UnetConditioning conditioning)
    {
        if (sample.Shape is not [var batch, var channels, > 0, > 0] || batch < 1 || channels != Config.InChannels)
            throw new ArgumentException($"The sample must be [batch, {Config.InChannels}, height, width]; it is {ShapeText(sample)}.", nameof(sample));
        if (timesteps.Length != 1 && timesteps.Length != batch)
            throw new ArgumentException($"Give one timestep or one per batch item ({batch}); {timesteps.Length} were given.", nameof(timesteps));
        var c = conditioning;
        var cross = Config.CrossAttentionDim;
        if (c.EncoderHiddenStates.Shape is not [var b1, > 0, var width] || b1 != batch || width != cross)
            throw new ArgumentException($"EncoderHiddenStates must be [{batch}, tokens, {cross}]; it is {ShapeText(c.EncoderHiddenStates)}.", nameof(conditioning));
        if (c.TextEmbeds.Shape is not [var b2, var pooled] || b2 != batch || pooled != PooledTextDim)
            throw new ArgumentException($"TextEmbeds must be [{batch}, {PooledTextDim}]; it is {ShapeText(c.TextEmbeds)}.", nameof(conditioning));
        if (c.TimeIds.Shape is not [var b3, TimeIdCount] || b3 != batch)
            throw new ArgumentException($"TimeIds must be [{batch}, {TimeIdCount}]; it is {ShapeText(c.TimeIds)}.", nameof(conditioning));
        if (!HasIpAdapter && (c.IpKeyValues is not null || c.IpScale != 0))
            throw new ArgumentException("This UNet was loaded without an IP-Adapter: load it with the adapter files to use a reference image.", nameof(conditioning));
        if (c.IpKeyValues is null && c.IpScale != 0)
            throw new ArgumentException($"IpScale is {c.IpScale} but no IpKeyValues were given.", nameof(conditioning));
        if (c.IpKeyValues is not null) CheckKeyValues(c.IpKeyValues, batch);
        if (!float.IsFinite(c.IpScale))
            throw new ArgumentException($"IpScale must be a finite number, not {c.IpScale}.", nameof(conditioning));
        CheckReferences(c, sample);
        return batch;
    }

    /// <summary>One key and one value per cross-attention of this UNet, in its order, each [batch, tokens, C] with one token count.</summary>
    private void CheckKeyValues(IpAdapterKeyValues keyValues, int batch)
    {
        var given = keyValues.Layers;
        if (!given.Select(l => l.Number).SequenceEqual(ipLayers.Select(l => l.Number)))
            throw new ArgumentException(
                $"IpKeyValues must hold the {ipLayers.Count} cross-attentions of this UNet, in order; they hold {given.Count} " +
                $"([{string.Join(", ", given.Take(8).Select(l => l.Number))}{(given.Count > 8 ? ", …" : "")}]): make them with IpAdapterKeys for this UNet.",
                "conditioning");
        int tokens = given.Count > 0 && given[0].Key.Shape.Length == 3 ? given[0].Key.Shape[1] : 0;
        for (int i = 0; i < given.Count; i++)
        {
            long channels = ipLayers[i].Channels;
            foreach (var (what, tensor) in new[] { ("key", given[i].Key), ("value", given[i].Value) })
                if (tensor.Shape is not [var b, var t, var width] || b != batch || t != tokens || t < 1 || width != channels)
                    throw new ArgumentException(
                        $"IpKeyValues of layer {given[i].Number}: the {what} must be [{batch}, {(tokens > 0 ? tokens : "tokens")}, {channels}]; it is {ShapeText(tensor)}.",
                        "conditioning");
        }
    }

    /// <summary>Token counts that fill the keys, a finite weight per layer and reference, masks of each level's queries.</summary>
    private void CheckReferences(UnetConditioning c, FloatTensor sample)
    {
        if (!HasIpAdapter) return;
        int references = c.IpReferenceCount;
        int tokens = c.IpKeyValues?.Layers[0].Key.Shape[1] ?? 1;
        if (c.IpTokenCounts is { } counts && (counts.Count == 0 || counts.Any(n => n < 1) || counts.Sum() != tokens || c.IpKeyValues is null))
            throw new ArgumentException(
                $"IpTokenCounts [{string.Join(", ", counts)}] must be one or more positive counts that add up to the IpKeyValues' {tokens} tokens.", "conditioning");
        if (c.IpScales is { } scales && (scales.Length != ipLayers.Count * references || scales.Any(v => !float.IsFinite(v))))
            throw new ArgumentException(
                $"IpScales must hold {ipLayers.Count} layers × {references} references = {ipLayers.Count * references} finite weights; it holds {scales.Length}.", "conditioning");
        if (c.IpMasks is { } masks)
            foreach (var (level, mask) in masks)
            {
                int queries = QueriesAt(level, sample.Shape[2], sample.Shape[3]);
                if (!AttentionLevels.Contains(level) || mask.Shape is not [var r, var q] || r != references || q != queries)
                    throw new ArgumentException(
                        $"IpMasks at level {level} must be [{references}, {queries}] (references, the level's queries) at a level with cross-attentions " +
                        $"({string.Join(", ", AttentionLevels)}); it is {ShapeText(mask)}.", "conditioning");
            }
    }

    private static string ShapeText(FloatTensor t) => "[" + string.Join(", ", t.Shape) + "]";

    private static int PooledTextWidth(UnetConfig config) => config.ProjectionClassEmbeddingsInputDim - TimeIdCount * config.AdditionTimeEmbedDim;

    /// <summary>Refuses configs this graph does not reproduce (SD 1.x/2.x UNets, other embeddings or blocks).</summary>
    private static void CheckSupported(UnetConfig config, string weightsPath)
    {
        void Require(bool condition, string what)
        {
            if (!condition)
                throw new CheckpointException($"The UNet config of {weightsPath} is not an SDXL UNet this engine supports: {what}.", weightsPath);
        }

        int levels = config.BlockOutChannels.Count;
        Require(config.AdditionEmbedType == "text_time", $"addition_embed_type is '{config.AdditionEmbedType ?? "null"}', not 'text_time' (an SD 1.x/2.x UNet?)");
        Require(levels > 0 && config.DownBlockTypes.Length == levels && config.UpBlockTypes.Length == levels,
            $"{config.DownBlockTypes.Length} down and {config.UpBlockTypes.Length} up blocks for {levels} block_out_channels");
        foreach (var (name, list) in new[] { ("layers_per_block", config.LayersPerBlock), ("transformer_layers_per_block", config.TransformerLayersPerBlock),
            ("attention_head_dim / num_attention_heads", config.NumAttentionHeads ?? config.AttentionHeadDim) })
            Require(list.IsScalar || list.Count == levels, $"{name} has {list.Count} entries for {levels} blocks");
        Require(config.DownBlockTypes.All(t => t is DownBlock or CrossAttnDownBlock), $"down_block_types [{string.Join(", ", config.DownBlockTypes)}]");
        Require(config.UpBlockTypes.All(t => t is UpBlock or CrossAttnUpBlock), $"up_block_types [{string.Join(", ", config.UpBlockTypes)}]");
        Require(config.MidBlockType == CrossAttnMidBlock, $"mid_block_type '{config.MidBlockType ?? "null"}'");
        Require(config.UseLinearProjection, "use_linear_projection is false");
        Require(config.TimeEmbeddingType == "positional" && config.TimeCondProjDim is null, $"time_embedding_type '{config.TimeEmbeddingType}' / time_cond_proj_dim {config.TimeCondProjDim}");
        Require(config.ResnetTimeScaleShift == "default", $"resnet_time_scale_shift '{config.ResnetTimeScaleShift}'");
        Require(config.ActFn is "silu" or "swish", $"act_fn '{config.ActFn}'");
        Require(config.DownsamplePadding == 1, $"downsample_padding {config.DownsamplePadding}");
        Require(config.MidBlockScaleFactor == 1, $"mid_block_scale_factor {config.MidBlockScaleFactor}");
        Require(!config.CenterInputSample, "center_input_sample is true");
        Require(config.ConvInKernel % 2 == 1 && config.ConvOutKernel % 2 == 1, "even conv_in/conv_out kernels");
        Require(config.BlockOutChannels[0] % 2 == 0 && config.AdditionTimeEmbedDim % 2 == 0, "odd timestep embedding widths");
        Require(PooledTextWidth(config) > 0,
            $"projection_class_embeddings_input_dim {config.ProjectionClassEmbeddingsInputDim} leaves no room for the pooled text beside {TimeIdCount} time ids of {config.AdditionTimeEmbedDim}");
        Require(config.NormNumGroups > 0, $"norm_num_groups {config.NormNumGroups}");
        for (int i = 0; i < levels; i++)
        {
            int channels = config.BlockOutChannels[i];
            Require(channels > 0 && channels % config.NormNumGroups == 0, $"block_out_channels {channels} is not a multiple of norm_num_groups {config.NormNumGroups}");
            bool attends = config.DownBlockTypes[i] == CrossAttnDownBlock || config.UpBlockTypes[levels - 1 - i] == CrossAttnUpBlock || i == levels - 1;
            Require(!attends || (config.HeadsAt(i) > 0 && channels % config.HeadsAt(i) == 0), $"{channels} channels do not split into {config.HeadsAt(i)} heads");
        }
    }

    /// <summary>Writes the nodes of one UNet graph; names follow diffusers' module paths.</summary>
    private sealed class GraphBuilder
    {
        private readonly OnnxGraph g;
        private readonly UnetConfig config;
        private readonly IWeightSource w;
        private readonly bool withIpAdapter;
        private readonly IReadOnlyDictionary<string, int> adapterNumbers;
        private readonly long crossDim;
        private readonly long timeEmbedDim;
        private readonly int groups;
        private string activatedEmbedding = "";
        private string context = "";
        private string? ipScales;
        private string? ipTokenBias;
        private readonly IReadOnlyDictionary<string, (int Index, int Level)> adapterLayers;
        private readonly Dictionary<int, string> ipMasks = [];

        public GraphBuilder(UnetConfig config, IWeightSource weights, bool withIpAdapter, string? weightFolder, Func<string, bool>? loraBranches)
        {
            g = new OnnxGraph("unet", weightFolder, loraBranches);
            this.config = config;
            w = weights;
            this.withIpAdapter = withIpAdapter;
            var layers = IpAdapterAttention.Layers(config);
            adapterNumbers = layers.ToDictionary(l => l.BlockPrefix, l => l.Number, StringComparer.Ordinal);
            adapterLayers = layers.Select((l, i) => (l, i)).ToDictionary(e => e.l.BlockPrefix, e => (e.i, e.l.Level), StringComparer.Ordinal);
            crossDim = config.CrossAttentionDim;
            timeEmbedDim = 4L * config.BlockOutChannels[0];
            groups = config.NormNumGroups;
        }

        public OnnxGraph Build()
        {
            var sample = Inputs();
            var h = g.Conv2d(sample, w, "conv_in", config.InChannels, config.BlockOutChannels[0], config.ConvInKernel);
            var skips = new Stack<(string Value, long Channels)>();
            long channels = config.BlockOutChannels[0];
            skips.Push((h, channels));

            int levels = config.BlockOutChannels.Count;
            for (int i = 0; i < levels; i++)
            {
                var prefix = $"down_blocks.{i}";
                long outChannels = config.BlockOutChannels[i];
                for (int j = 0; j < config.LayersPerBlock[i]; j++)
                {
                    h = Resnet(h, $"{prefix}.resnets.{j}", channels, outChannels);
                    channels = outChannels;
                    if (config.DownBlockTypes[i] == CrossAttnDownBlock)
                        h = Transformer(h, $"{prefix}.attentions.{j}", channels, config.TransformerLayersPerBlock[i], config.HeadsAt(i));
                    skips.Push((h, channels));
                }
                if (i < levels - 1)
                {
                    h = g.Conv2d(h, w, $"{prefix}.downsamplers.0.conv", channels, channels, 3, stride: 2, padding: 1);
                    skips.Push((h, channels));
                }
            }

            h = Resnet(h, "mid_block.resnets.0", channels, channels);
            h = Transformer(h, "mid_block.attentions.0", channels, config.TransformerLayersPerBlock[levels - 1], config.HeadsAt(levels - 1));
            h = Resnet(h, "mid_block.resnets.1", channels, channels);

            for (int i = 0; i < levels; i++)
            {
                int level = levels - 1 - i;
                long outChannels = config.BlockOutChannels[level];
                for (int j = 0; j < config.LayersPerBlock[level] + 1; j++)
                {
                    var skip = skips.Pop();
                    if (skips.Count == 0)
                    {
                        g.Output(h, DeepCacheFeatureOutput, DataType.Float, "batch", channels, "height", "width");
                        return Head(UpLayer(h, skip, i, j, channels));
                    }
                    h = UpLayer(h, skip, i, j, channels);
                    channels = outChannels;
                }
                // Upsample to the size of the next skip, not ×2: a stride-2 conv made ceil(n/2) of odd sizes.
                h = g.ResizeNearest(h, g.Concat(0, g.Slice(g.Shape(h), [0], [2], [0]), g.Slice(g.Shape(skips.Peek().Value), [2], [4], [0])));
                h = g.Conv2d(h, w, $"up_blocks.{i}.upsamplers.0.conv", channels, channels, 3);
            }
            throw new InvalidOperationException("The up blocks used fewer skip connections than the down blocks made.");
        }

        /// <summary>
        /// DeepCache's retrieval step: the last up layer on a kept feature and this step's conv_in output (the first
        /// skip connection), then the head; every deeper block is skipped.
        /// </summary>
        public OnnxGraph BuildShallow()
        {
            var sample = Inputs();
            long channels = config.BlockOutChannels[0];
            var feature = g.Input(DeepCacheFeatureOutput, DataType.Float, "batch", channels, "height", "width");
            var skip = g.Conv2d(sample, w, "conv_in", config.InChannels, channels, config.ConvInKernel);
            int last = config.BlockOutChannels.Count - 1;
            return Head(UpLayer(feature, (skip, channels), last, config.LayersPerBlock[0], channels));
        }

        /// <summary>The graph's inputs; sets the activated embedding, the text context and the adapter weight the layers read.</summary>
        private string Inputs()
        {
            var sample = g.Input(SampleInput, DataType.Float, "batch", (long)config.InChannels, "height", "width");
            var timestep = g.Input(TimestepInput, DataType.Float, "timesteps");
            context = g.Input(EncoderHiddenStatesInput, DataType.Float, "batch", "text_tokens", crossDim);
            var textEmbeds = g.Input(TextEmbedsInput, DataType.Float, "batch", (long)PooledTextWidth(config));
            var timeIds = g.Input(TimeIdsInput, DataType.Float, "batch", (long)TimeIdCount);
            if (withIpAdapter)
            {
                ipScales = g.Input(IpScaleInput, DataType.Float, (long)adapterLayers.Count, "references");
                ipTokenBias = g.Input(IpAdapterAttention.TokenBiasInput, DataType.Float, "references", "image_tokens");
            }
            activatedEmbedding = Act(Embedding(sample, timestep, textEmbeds, timeIds));
            return sample;
        }

        /// <summary>Layer j of up block i: the skip connection beside h, a resnet, and the block's transformer if it has one.</summary>
        private string UpLayer(string h, (string Value, long Channels) skip, int i, int j, long channels)
        {
            int level = config.BlockOutChannels.Count - 1 - i;
            long outChannels = config.BlockOutChannels[level];
            h = Resnet(g.Concat(1, h, skip.Value), $"up_blocks.{i}.resnets.{j}", channels + skip.Channels, outChannels);
            return config.UpBlockTypes[i] == CrossAttnUpBlock
                ? Transformer(h, $"up_blocks.{i}.attentions.{j}", outChannels, config.TransformerLayersPerBlock[level], config.HeadsAt(level))
                : h;
        }

        private OnnxGraph Head(string h)
        {
            long channels = config.BlockOutChannels[0];
            h = Act(g.GroupNorm(h, w, "conv_norm_out", channels, groups, config.NormEps));
            h = g.Conv2d(h, w, "conv_out", channels, config.OutChannels, config.ConvOutKernel);
            g.Output(h, Output, DataType.Float, "batch", (long)config.OutChannels, "height", "width");
            return g;
        }

        private string Act(string x) => g.Silu(x);

        /// <summary>emb = time_embedding(sinusoid(t)) + add_embedding([text_embeds, sinusoid(time_ids)]).</summary>
        private string Embedding(string sample, string timestep, string textEmbeds, string timeIds)
        {
            // One timestep for the batch is broadcast to every item, as diffusers expands it.
            var batch = g.Slice(g.Shape(sample), [0], [1], [0]);
            var t = g.Node("Expand", [timestep, batch]);
            var timeProjection = Sinusoid(g.Unsqueeze(t, 1), config.BlockOutChannels[0]);
            var time = g.Linear(Act(g.Linear(timeProjection, w, "time_embedding.linear_1", config.BlockOutChannels[0], timeEmbedDim)),
                w, "time_embedding.linear_2", timeEmbedDim, timeEmbedDim);

            // Each time id gets its own sinusoid; they are laid side by side after the pooled text.
            var idProjection = g.Reshape(Sinusoid(g.Unsqueeze(timeIds, 2), config.AdditionTimeEmbedDim), 0, -1);
            var added = g.Concat(-1, textEmbeds, idProjection);
            var augment = g.Linear(g.Silu(g.Linear(added, w, "add_embedding.linear_1", config.ProjectionClassEmbeddingsInputDim, timeEmbedDim)),
                w, "add_embedding.linear_2", timeEmbedDim, timeEmbedDim);
            return g.Add(time, augment);
        }

        /// <summary>diffusers' get_timestep_embedding on [..., 1] values: [cos, sin] (flip_sin_to_cos) or [sin, cos].</summary>
        private string Sinusoid(string values, int width)
        {
            var arguments = g.Mul(values, g.Constant(TimestepFrequencies(width / 2, config.FreqShift), width / 2));
            var sin = g.Node("Sin", [arguments]);
            var cos = g.Node("Cos", [arguments]);
            return config.FlipSinToCos ? g.Concat(-1, cos, sin) : g.Concat(-1, sin, cos);
        }

        private string Resnet(string x, string prefix, long inChannels, long outChannels)
        {
            var h = Act(g.GroupNorm(x, w, prefix + ".norm1", inChannels, groups, config.NormEps));
            h = g.Conv2d(h, w, prefix + ".conv1", inChannels, outChannels, 3);
            var time = g.Linear(activatedEmbedding, w, prefix + ".time_emb_proj", timeEmbedDim, outChannels);
            h = g.Add(h, g.Unsqueeze(time, 2, 3));
            h = Act(g.GroupNorm(h, w, prefix + ".norm2", outChannels, groups, config.NormEps));
            h = g.Conv2d(h, w, prefix + ".conv2", outChannels, outChannels, 3);
            var shortcut = inChannels == outChannels ? x : g.Conv2d(x, w, prefix + ".conv_shortcut", inChannels, outChannels, 1);
            return g.Add(shortcut, h);
        }

        /// <summary>Transformer2DModel with linear projections: NCHW → [B, H·W, C] → blocks → NCHW, plus the input.</summary>
        private string Transformer(string x, string prefix, long channels, int depth, int heads)
        {
            var h = g.GroupNorm(x, w, prefix + ".norm", channels, groups, 1e-6f);
            h = g.Transpose(g.Reshape(h, 0, channels, -1), 0, 2, 1);
            h = g.Linear(h, w, prefix + ".proj_in", channels, channels);
            for (int k = 0; k < depth; k++)
                h = TransformerBlock(h, $"{prefix}.transformer_blocks.{k}", channels, heads);
            h = g.Linear(h, w, prefix + ".proj_out", channels, channels);
            h = g.Node("Reshape", [g.Transpose(h, 0, 2, 1), g.Shape(x)]);
            return g.Add(h, x);
        }

        private string TransformerBlock(string h, string prefix, long channels, int heads)
        {
            const float LayerNormEps = 1e-5f;
            var normed = g.LayerNorm(h, w, prefix + ".norm1", channels, LayerNormEps);
            h = g.Add(SelfAttention(normed, prefix + ".attn1", channels, heads), h);
            normed = g.LayerNorm(h, w, prefix + ".norm2", channels, LayerNormEps);
            h = g.Add(CrossAttention(normed, prefix, channels, heads), h);
            normed = g.LayerNorm(h, w, prefix + ".norm3", channels, LayerNormEps);
            return g.Add(FeedForward(normed, prefix + ".ff", channels), h);
        }

        private string SelfAttention(string x, string prefix, long channels, int heads)
        {
            var q = g.Linear(x, w, prefix + ".to_q", channels, channels, bias: false);
            var k = g.Linear(x, w, prefix + ".to_k", channels, channels, bias: false);
            var v = g.Linear(x, w, prefix + ".to_v", channels, channels, bias: false);
            return g.Linear(g.Attention(q, k, v, heads), w, prefix + ".to_out.0", channels, channels);
        }

        /// <summary>
        /// attn2 over the text, plus, with an adapter, the image term before to_out: the same query attending to the
        /// layer's ip key and value (inputs), each reference over its own tokens, times its weight in this layer and its
        /// mask at this resolution, summed over the references (diffusers' per-image loop with ip_adapter_masks).
        /// </summary>
        private string CrossAttention(string x, string blockPrefix, long channels, int heads)
        {
            var prefix = blockPrefix + ".attn2";
            var q = g.Linear(x, w, prefix + ".to_q", channels, channels, bias: false);
            var k = g.Linear(context, w, prefix + ".to_k", crossDim, channels, bias: false);
            var v = g.Linear(context, w, prefix + ".to_v", crossDim, channels, bias: false);
            var attended = g.Attention(q, k, v, heads);
            if (withIpAdapter)
            {
                int number = adapterNumbers[blockPrefix];
                var ipKey = g.Input(IpAdapterAttention.KeyName(number), DataType.Float, "batch", "image_tokens", channels);
                var ipValue = g.Input(IpAdapterAttention.ValueName(number), DataType.Float, "batch", "image_tokens", channels);
                attended = g.Add(attended, ReferenceTerms(q, ipKey, ipValue, heads, blockPrefix));
            }
            return g.Linear(attended, w, prefix + ".to_out.0", channels, channels);
        }

        /// <summary>
        /// The references' terms: the batch is repeated once per reference (reference-major) and an attention bias keeps each
        /// copy to its reference's tokens; then each copy is weighed by the reference's scale and mask and the copies summed.
        /// </summary>
        private string ReferenceTerms(string q, string ipKey, string ipValue, int heads, string blockPrefix)
        {
            var (index, level) = adapterLayers[blockPrefix];
            if (!ipMasks.TryGetValue(level, out var mask))
                ipMasks[level] = mask = g.Input(IpAdapterAttention.MaskName(level), DataType.Float, "references", $"queries_{level}");
            var references = g.Slice(g.Shape(ipTokenBias!), [0], [1], [0]);
            var queryShape = g.Shape(q);
            var batch = g.Slice(queryShape, [0], [1], [0]);
            var queries = g.Slice(queryShape, [1], [2], [0]);
            var tokens = g.Slice(g.Shape(ipKey), [1], [2], [0]);
            var repeats = g.Concat(0, references, g.Int64s(1, 1));
            var bias = g.Node("Expand", [g.Unsqueeze(ipTokenBias!, 1, 2, 3), g.Concat(0, references, batch, g.Int64s(1), queries, tokens)]);
            bias = g.Node("Reshape", [bias, g.Concat(0, g.Int64s(-1, 1), queries, tokens)]);
            var terms = g.Attention(g.Node("Tile", [q, repeats]), g.Node("Tile", [ipKey, repeats]), g.Node("Tile", [ipValue, repeats]), heads, bias);
            terms = g.Node("Reshape", [terms, g.Concat(0, references, g.Int64s(-1), g.Slice(queryShape, [1], [3], [0]))]);
            var scale = g.Reshape(g.Gather(ipScales!, g.Int64s(index)), -1, 1, 1, 1);
            var weights = g.Mul(scale, g.Unsqueeze(mask, 1, 3));
            return g.Node("ReduceSum", [g.Mul(terms, weights), g.Int64s(0)], new Dictionary<string, object> { ["keepdims"] = 0L });
        }

        /// <summary>GEGLU feed-forward: the projection's first half times GELU of its second half, then back to C.</summary>
        private string FeedForward(string x, string prefix, long channels)
        {
            long inner = 4 * channels;
            var projected = g.Linear(x, w, prefix + ".net.0.proj", channels, 2 * inner);
            var halves = g.Split(projected, -1, 2);
            var gated = g.Mul(halves[0], g.Gelu(halves[1]));
            return g.Linear(gated, w, prefix + ".net.2", inner, channels);
        }
    }

    /// <summary>
    /// exp(−ln(10000)·j / (half − shift)) for j &lt; half, with the exponent rounded to float32 at each step as
    /// diffusers computes it. The exp itself is correctly rounded here; torch's float32 exp is 1 ulp off for
    /// about one value in ten, a difference lost in the network's other float32 rounding (with torch's exact
    /// values the fidelity UNet's error against diffusers at timestep 999 stays 3.4e-6).
    /// </summary>
    internal static float[] TimestepFrequencies(int half, int freqShift)
    {
        var frequencies = new float[half];
        float logMaxPeriod = (float)-Math.Log(10000);
        float divisor = half - freqShift;
        for (int j = 0; j < half; j++)
        {
            float exponent = logMaxPeriod * j / divisor;
            frequencies[j] = (float)Math.Exp(exponent);
        }
        return frequencies;
    }
}
