using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// The decoding half of diffusers' AutoencoderKL as the SDXL pipeline uses it: latents as the sampler
/// leaves them (still multiplied by scaling_factor) → image [B, out_channels, f·h, f·w] in about [-1, 1],
/// where f = 2^(blocks − 1) (8 for SDXL). The encoder half is <see cref="VaeEncoder"/>.
/// </summary>
public sealed class VaeDecoder : ILatentDecoder
{
    public const string LatentsInput = "latents";
    public const string ImageOutput = "image";

    /// <summary>The decoder's group norms (resnets, mid attention, output) all use 1e-6, not torch's 1e-5.</summary>
    private const float NormEpsilon = 1e-6f;

    private const string ExpectedClassName = "AutoencoderKL";
    private const string UpBlockType = "UpDecoderBlock2D";

    private readonly OnnxModel model;

    private VaeDecoder(OnnxModel model, VaeConfig config, string source)
    {
        this.model = model;
        Config = config;
        Source = source;
    }

    public VaeConfig Config { get; }

    public string Source { get; }

    public int LatentChannels => Config.LatentChannels;

    /// <summary>Pixels per latent along each side.</summary>
    public int UpscaleFactor => 1 << (Config.BlockOutChannels.Count - 1);

    /// <summary>Reads vae/config.json and builds the decoder over the weights file in place.</summary>
    public static VaeDecoder Load(ComponentFiles vae, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(vae);
        ArgumentNullException.ThrowIfNull(settings);
        var config = ConfigJson.Read<VaeConfig>(vae.ConfigPath);
        Validate(config, vae.ConfigPath);
        using var weights = SafetensorsFile.Open(vae.WeightsPath);
        return Load(config, weights, settings);
    }

    /// <summary>A decoder over any weight source (e.g. a single-file checkpoint's), which must stay open until this returns.</summary>
    public static VaeDecoder Load(VaeConfig config, IWeightSource weights, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(settings);
        var graph = BuildGraph(config, weights, Path.GetDirectoryName(weights.Path));
        // The weights are external data in their own folder, so ONNX Runtime reads them itself and
        // the file may be closed once the session exists. The decoder runs once per scene on the
        // largest activations of all (GBs at 1024²): without the arena they are returned after the run.
        return new VaeDecoder(OnnxModel.Create(graph, settings with { MemoryArena = false }), config, weights.Path);
    }

    /// <summary>
    /// The decoder graph: input <see cref="LatentsInput"/> [batch, latent_channels, height, width],
    /// output <see cref="ImageOutput"/>. Every decoder tensor (and post_quant_conv) is asked of
    /// <paramref name="weights"/> with the shape the config implies, so a wrong checkpoint fails here
    /// with a <see cref="CheckpointException"/>, and a recording source lists them all.
    /// </summary>
    public static OnnxGraph BuildGraph(VaeConfig config, IWeightSource weights, string? weightFolder)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        Validate(config, "the VAE config");

        var channels = config.BlockOutChannels;
        int blocks = channels.Count;
        int groups = config.NormNumGroups;
        long latent = config.LatentChannels;
        long widest = channels[blocks - 1];

        var g = new OnnxGraph("vae_decoder", weightFolder);
        var latents = g.Input(LatentsInput, DataType.Float, "batch", latent, "height", "width");
        var x = Unscale(g, config, latents);
        if (config.UsePostQuantConv) x = g.Conv2d(x, weights, "post_quant_conv", latent, latent, 1);
        x = g.Conv2d(x, weights, "decoder.conv_in", latent, widest, 3);

        x = Resnet(g, weights, "decoder.mid_block.resnets.0", x, widest, widest, groups, config.ActFn);
        if (config.MidBlockAddAttention) x = MidAttention(g, weights, "decoder.mid_block.attentions.0", x, widest, groups);
        x = Resnet(g, weights, "decoder.mid_block.resnets.1", x, widest, widest, groups, config.ActFn);

        long current = widest;
        for (int i = 0; i < blocks; i++)
        {
            var prefix = $"decoder.up_blocks.{i}";
            long output = channels[blocks - 1 - i];
            for (int j = 0; j <= config.LayersPerBlock; j++)
            {
                x = Resnet(g, weights, $"{prefix}.resnets.{j}", x, current, output, groups, config.ActFn);
                current = output;
            }
            if (i < blocks - 1)
                x = g.Conv2d(g.UpsampleNearest(x, 2), weights, $"{prefix}.upsamplers.0.conv", output, output, 3);
        }

        x = g.GroupNorm(x, weights, "decoder.conv_norm_out", current, groups, NormEpsilon);
        // diffusers' Decoder uses a plain SiLU here whatever act_fn says.
        x = g.Silu(x);
        x = g.Conv2d(x, weights, "decoder.conv_out", current, config.OutChannels, 3);
        g.Output(x, ImageOutput, DataType.Float, "batch", config.OutChannels, "image_height", "image_width");
        return g;
    }

    /// <summary>Decodes latents [B, latent_channels, h, w] (as the sampler leaves them) to an image in about [-1, 1].</summary>
    public FloatTensor Run(FloatTensor latents, CancellationToken cancellation = default)
    {
        LatentInput.Check(latents, Config.LatentChannels, "VAE");
        return model.Run([ModelInput.Float(LatentsInput, latents)], [ImageOutput], cancellation)[0];
    }

    public void Dispose() => model.Dispose();

    internal static void Validate(VaeConfig config, string source)
    {
        InvalidDataException Bad(string what) => new($"{source}: {what}");
        if (config.ClassName != ExpectedClassName)
            throw Bad($"_class_name is '{config.ClassName}', not '{ExpectedClassName}': only diffusers' AutoencoderKL VAEs are supported.");
        var channels = config.BlockOutChannels;
        if (channels.IsScalar || channels.Count == 0 || channels.Values.Any(c => c <= 0))
            throw Bad("block_out_channels must be a non-empty list of positive channel counts.");
        if (config.UpBlockTypes.Length != channels.Count || config.UpBlockTypes.Any(t => t != UpBlockType))
            throw Bad($"up_block_types must be {channels.Count} × '{UpBlockType}' (one per block_out_channels entry); got [{string.Join(", ", config.UpBlockTypes)}].");
        if (config.NormNumGroups <= 0 || channels.Values.Any(c => c % config.NormNumGroups != 0))
            throw Bad($"norm_num_groups {config.NormNumGroups} does not divide every entry of block_out_channels [{string.Join(", ", channels.Values)}].");
        if (config.LatentChannels <= 0 || config.OutChannels <= 0 || config.LayersPerBlock < 0)
            throw Bad("latent_channels and out_channels must be positive and layers_per_block not negative.");
        if (config.ActFn is not ("silu" or "swish" or "gelu"))
            throw Bad($"act_fn '{config.ActFn}' is not supported (silu, swish or gelu).");
        if (!float.IsFinite(config.ScalingFactor) || config.ScalingFactor <= 0)
            throw Bad($"scaling_factor {config.ScalingFactor} must be a positive number.");
        if (config.LatentsMean is { } mean && config.LatentsStd is { } std
            && (mean.Length != config.LatentChannels || std.Length != config.LatentChannels))
            throw Bad($"latents_mean and latents_std need {config.LatentChannels} values each (one per latent channel); they have {mean.Length} and {std.Length}.");
    }

    /// <summary>
    /// Undoes the latent scaling as the SDXL pipeline does before decoding: latents·std/scaling_factor + mean
    /// when the config has both latents_mean and latents_std, else latents/scaling_factor.
    /// </summary>
    private static string Unscale(OnnxGraph g, VaeConfig config, string latents)
    {
        var factor = g.Scalar(config.ScalingFactor);
        if (config.LatentsMean is not { } mean || config.LatentsStd is not { } std) return g.Div(latents, factor);
        long c = config.LatentChannels;
        var scaled = g.Div(g.Mul(latents, g.Constant(std, 1, c, 1, 1)), factor);
        return g.Add(scaled, g.Constant(mean, 1, c, 1, 1));
    }

    /// <summary>diffusers' ResnetBlock2D without a time embedding: norm → act → conv → norm → act → conv, plus the (projected) input.</summary>
    internal static string Resnet(OnnxGraph g, IWeightSource weights, string prefix, string x, long inChannels, long outChannels, int groups, string activation)
    {
        var h = g.Activation(g.GroupNorm(x, weights, prefix + ".norm1", inChannels, groups, NormEpsilon), activation);
        h = g.Conv2d(h, weights, prefix + ".conv1", inChannels, outChannels, 3);
        h = g.Activation(g.GroupNorm(h, weights, prefix + ".norm2", outChannels, groups, NormEpsilon), activation);
        h = g.Conv2d(h, weights, prefix + ".conv2", outChannels, outChannels, 3);
        var shortcut = inChannels == outChannels ? x : g.Conv2d(x, weights, prefix + ".conv_shortcut", inChannels, outChannels, 1);
        return g.Add(shortcut, h);
    }

    /// <summary>
    /// The mid block's single-head self-attention over all H·W positions: group norm, q/k/v projections
    /// with bias, softmax(q·kᵀ/√C)·v, output projection, plus the input.
    /// </summary>
    internal static string MidAttention(OnnxGraph g, IWeightSource weights, string prefix, string x, long channels, int groups)
    {
        var names = AttentionNames(weights, prefix);
        var normed = g.GroupNorm(x, weights, prefix + ".group_norm", channels, groups, NormEpsilon);
        var tokens = g.Transpose(g.Reshape(normed, 0, 0, -1), 0, 2, 1); // [B, H·W, C]
        var q = g.Linear(tokens, weights, $"{prefix}.{names.Query}", channels, channels);
        var k = g.Linear(tokens, weights, $"{prefix}.{names.Key}", channels, channels);
        var v = g.Linear(tokens, weights, $"{prefix}.{names.Value}", channels, channels);
        // With no mask or bias, ONNX Runtime's CPU MultiHeadAttention runs its tiled (flash) kernel and never
        // holds the whole (H·W)² score matrix (1 GB at 1024²): keep it that way.
        var attended = g.Attention(q, k, v, heads: 1);
        var projected = g.Linear(attended, weights, $"{prefix}.{names.Output}", channels, channels);
        var back = g.Node("Reshape", [g.Transpose(projected, 0, 2, 1), g.Shape(x)]);
        return g.Add(back, x);
    }

    /// <summary>
    /// diffusers files name the attention to_q/to_k/to_v/to_out.0; files written before diffusers 0.14
    /// say query/key/value/proj_attn (same Linear shapes), which diffusers renames on load.
    /// </summary>
    private static (string Query, string Key, string Value, string Output) AttentionNames(IWeightSource weights, string prefix)
        => weights is SafetensorsFile file && !file.Contains(prefix + ".to_q.weight") && file.Contains(prefix + ".query.weight")
            ? ("query", "key", "value", "proj_attn")
            : ("to_q", "to_k", "to_v", "to_out.0");
}
