using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// The encoding half of diffusers' AutoencoderKL as the SDXL img2img and inpainting pipelines use it: an image
/// [B, in_channels, H, W] in [-1, 1] → the latent distribution's mean and standard deviation [B, latent_channels,
/// H/f, W/f] (f = 2^(blocks − 1), 8 for SDXL), from which <see cref="LatentDistribution.Scaled"/> draws the latents
/// the pipelines start from.
/// </summary>
public sealed class VaeEncoder : IDisposable
{
    public const string ImageInput = "image";
    public const string MeanOutput = "mean";
    public const string LogVarianceOutput = "logvar";

    /// <summary>The encoder's group norms (resnets, mid attention, output) all use 1e-6, as the decoder's.</summary>
    private const float NormEpsilon = 1e-6f;

    private const string DownBlockType = "DownEncoderBlock2D";

    private readonly OnnxModel model;

    private VaeEncoder(OnnxModel model, VaeConfig config)
    {
        this.model = model;
        Config = config;
    }

    public VaeConfig Config { get; }

    /// <summary>An encoder over any weight source (a diffusers vae/ file or a single-file checkpoint's), which must stay open until this returns.</summary>
    public static VaeEncoder Load(VaeConfig config, IWeightSource weights, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(settings);
        var graph = BuildGraph(config, weights, Path.GetDirectoryName(weights.Path));
        // Runs once per scene on large activations, as the decoder: no arena.
        return new VaeEncoder(OnnxModel.Create(graph, settings with { MemoryArena = false }), config);
    }

    /// <summary>
    /// The encoder graph: input <see cref="ImageInput"/> [batch, in_channels, height, width] in [-1, 1], outputs
    /// <see cref="MeanOutput"/> and <see cref="LogVarianceOutput"/> (clamped to [-30, 20] as diffusers'
    /// DiagonalGaussianDistribution does). Every encoder tensor (and quant_conv) is asked of <paramref name="weights"/>
    /// with the shape the config implies.
    /// </summary>
    public static OnnxGraph BuildGraph(VaeConfig config, IWeightSource weights, string? weightFolder)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        VaeDecoder.Validate(config, "the VAE config");
        if (config.DownBlockTypes.Length != config.BlockOutChannels.Count || config.DownBlockTypes.Any(t => t != DownBlockType))
            throw new InvalidDataException(
                $"the VAE config: down_block_types must be {config.BlockOutChannels.Count} × '{DownBlockType}'; got [{string.Join(", ", config.DownBlockTypes)}].");

        var channels = config.BlockOutChannels;
        int blocks = channels.Count;
        int groups = config.NormNumGroups;
        long latent = config.LatentChannels;

        var g = new OnnxGraph("vae_encoder", weightFolder);
        var x = g.Input(ImageInput, DataType.Float, "batch", (long)config.InChannels, "height", "width");
        x = g.Conv2d(x, weights, "encoder.conv_in", config.InChannels, channels[0], 3);

        long current = channels[0];
        for (int i = 0; i < blocks; i++)
        {
            var prefix = $"encoder.down_blocks.{i}";
            long output = channels[i];
            for (int j = 0; j < config.LayersPerBlock; j++)
            {
                x = VaeDecoder.Resnet(g, weights, $"{prefix}.resnets.{j}", x, current, output, groups, config.ActFn);
                current = output;
            }
            if (i < blocks - 1) x = Downsample(g, weights, $"{prefix}.downsamplers.0.conv", x, output);
        }

        x = VaeDecoder.Resnet(g, weights, "encoder.mid_block.resnets.0", x, current, current, groups, config.ActFn);
        if (config.MidBlockAddAttention) x = VaeDecoder.MidAttention(g, weights, "encoder.mid_block.attentions.0", x, current, groups);
        x = VaeDecoder.Resnet(g, weights, "encoder.mid_block.resnets.1", x, current, current, groups, config.ActFn);

        x = g.GroupNorm(x, weights, "encoder.conv_norm_out", current, groups, NormEpsilon);
        // diffusers' Encoder uses a plain SiLU here whatever act_fn says.
        x = g.Silu(x);
        x = g.Conv2d(x, weights, "encoder.conv_out", current, 2 * latent, 3);
        if (config.UseQuantConv) x = g.Conv2d(x, weights, "quant_conv", 2 * latent, 2 * latent, 1);

        var mean = g.Slice(x, [0], [latent], [1]);
        var logVariance = g.Node("Clip", [g.Slice(x, [latent], [2 * latent], [1]), g.Scalar(-30f), g.Scalar(20f)]);
        g.Output(mean, MeanOutput, DataType.Float, "batch", latent, "latent_height", "latent_width");
        g.Output(logVariance, LogVarianceOutput, DataType.Float, "batch", latent, "latent_height", "latent_width");
        return g;
    }

    /// <summary>The latent distribution of an image [B, in_channels, H, W] in [-1, 1].</summary>
    public LatentDistribution Run(FloatTensor image, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Shape.Length != 4 || image.Shape[1] != Config.InChannels)
            throw new ArgumentException($"The VAE encoder takes [batch, {Config.InChannels}, height, width]; got [{string.Join(", ", image.Shape)}].", nameof(image));
        var outputs = model.Run([ModelInput.Float(ImageInput, image)], [MeanOutput, LogVarianceOutput], cancellation);
        return new LatentDistribution(outputs[0], outputs[1], Config);
    }

    public void Dispose() => model.Dispose();

    /// <summary>diffusers' Downsample2D in the VAE: pad right and bottom by one (zeros), then a 3×3 convolution of stride 2, no padding.</summary>
    private static string Downsample(OnnxGraph g, IWeightSource weights, string prefix, string x, long channels)
    {
        var w = g.Weight(weights, prefix + ".weight", channels, channels, 3, 3);
        var b = g.Weight(weights, prefix + ".bias", channels);
        return g.Node("Conv", [x, w, b], new Dictionary<string, object>
        {
            ["kernel_shape"] = new long[] { 3, 3 },
            ["strides"] = new long[] { 2, 2 },
            ["pads"] = new long[] { 0, 0, 1, 1 },
        });
    }
}

/// <summary>diffusers' DiagonalGaussianDistribution over the latents of an image, and the VAE config that scales them.</summary>
public sealed record LatentDistribution(FloatTensor Mean, FloatTensor LogVariance, VaeConfig Config)
{
    /// <summary>
    /// The scaled latents as diffusers' SDXL pipelines make them: a sample (mean + exp(logvar/2)·ε, ε drawn from
    /// <paramref name="generator"/> in the latents' shape, as DiagonalGaussianDistribution.sample does), then
    /// ·scaling_factor, or (x − latents_mean)·scaling_factor/latents_std when <paramref name="useLatentsMeanStd"/>
    /// and the config has both (img2img's prepare_latents does; inpainting's _encode_vae_image does not).
    /// </summary>
    public FloatTensor Scaled(TorchGenerator generator, bool useLatentsMeanStd)
    {
        ArgumentNullException.ThrowIfNull(generator);
        var noise = generator.Randn(Mean.Shape);
        var latents = new float[Mean.Data.Length];
        int channels = Mean.Shape[1], plane = Mean.Shape[2] * Mean.Shape[3];
        bool shifted = useLatentsMeanStd && Config.LatentsMean is not null && Config.LatentsStd is not null;
        for (int i = 0; i < latents.Length; i++)
        {
            float sample = Mean.Data[i] + MathF.Exp(0.5f * LogVariance.Data[i]) * noise[i];
            int c = i / plane % channels;
            latents[i] = shifted
                ? (sample - Config.LatentsMean![c]) * Config.ScalingFactor / Config.LatentsStd![c]
                : Config.ScalingFactor * sample;
        }
        return new FloatTensor(latents, Mean.Shape);
    }
}
