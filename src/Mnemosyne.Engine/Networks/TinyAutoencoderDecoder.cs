using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// The decoding half of diffusers' AutoencoderTiny (TAESD; madebyollin/taesdxl for SDXL) as the SDXL pipeline
/// uses it: latents as the sampler leaves them, divided by scaling_factor (1 for TAESDXL), softly clamped to ±3
/// (tanh(x/3)·3), then plain convolutions, ReLU residual blocks and nearest up-sampling, and ×2 − 1 into about
/// [-1, 1]. A few percent of the VAE decoder's work, for fast drafts and live previews. The encoder is not built.
/// </summary>
public sealed class TinyAutoencoderDecoder : ILatentDecoder
{
    public const string LatentsInput = "latents";
    public const string ImageOutput = "image";
    public const string WeightsFileName = "diffusion_pytorch_model.safetensors";
    public const string ConfigFileName = "config.json";

    private const string ExpectedClassName = "AutoencoderTiny";

    /// <summary>DecoderTiny's clamp is fixed at ±3 whatever latent_magnitude says (that one is the encoder's).</summary>
    private const float ClampMagnitude = 3f;

    private const string Layout = "a diffusers AutoencoderTiny folder (config.json + diffusion_pytorch_model.safetensors), such as madebyollin/taesdxl's";

    private readonly OnnxModel model;

    private TinyAutoencoderDecoder(OnnxModel model, TinyAutoencoderConfig config, string folder)
    {
        this.model = model;
        Config = config;
        Folder = folder;
    }

    public TinyAutoencoderConfig Config { get; }

    /// <summary>The folder the config and weights were read from.</summary>
    public string Folder { get; }

    string ILatentDecoder.Source => Folder;

    public int LatentChannels => Config.LatentChannels;

    public int UpscaleFactor => (int)Math.Pow(Config.UpsamplingScalingFactor, Config.DecoderBlockOutChannels.Count - 1);

    /// <summary>
    /// Reads the config and weights of <paramref name="path"/>: the folder, or its weights file. A file that is not a
    /// tiny autoencoder's (wrong class, config or tensors) is refused with a <see cref="CheckpointException"/> naming it.
    /// </summary>
    public static TinyAutoencoderDecoder Load(string path, SessionSettings settings)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(settings);
        var (folder, configPath, weightsPath) = Locate(Path.GetFullPath(path));
        var config = ConfigJson.Read<TinyAutoencoderConfig>(configPath);
        try
        {
            Validate(config, configPath);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointException(e.Message, configPath, null, e);
        }
        using var weights = SafetensorsFile.Open(weightsPath);
        var graph = BuildGraph(config, weights, folder);
        // Run at every preview as well as for whole scenes: without the arena its full-size buffers go back between runs.
        return new TinyAutoencoderDecoder(OnnxModel.Create(graph, settings with { MemoryArena = false }), config, folder);
    }

    /// <summary>
    /// The decoder graph: input <see cref="LatentsInput"/> [batch, latent_channels, height, width], output
    /// <see cref="ImageOutput"/>. Every decoder.layers.* tensor is asked of <paramref name="weights"/> with the shape
    /// the config implies, so a wrong file fails here with a <see cref="CheckpointException"/>, and a
    /// <see cref="WeightRecorder"/> lists them all.
    /// </summary>
    public static OnnxGraph BuildGraph(TinyAutoencoderConfig config, IWeightSource weights, string? weightFolder)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        Validate(config, "the tiny decoder config");

        var channels = config.DecoderBlockOutChannels;
        int stages = channels.Count;
        long width = channels[0];
        var activation = config.ActFn.ToLowerInvariant();

        var g = new OnnxGraph("tiny_decoder", weightFolder);
        var latents = g.Input(LatentsInput, DataType.Float, "batch", (long)config.LatentChannels, "height", "width");
        var x = g.Div(latents, g.Scalar(config.ScalingFactor));
        var clamp = g.Scalar(ClampMagnitude);
        x = g.Mul(g.Node("Tanh", [g.Div(x, clamp)]), clamp);

        // The indices follow DecoderTiny's nn.Sequential, where activations and up-samplers take a place too.
        int layer = 0;
        x = g.Activation(g.Conv2d(x, weights, Layer(layer), config.LatentChannels, width, 3), activation);
        layer += 2;
        for (int stage = 0; stage < stages; stage++)
        {
            bool last = stage == stages - 1;
            for (int block = 0; block < config.NumDecoderBlocks[stage]; block++)
                x = Block(g, weights, Layer(layer++), x, width, activation);
            if (!last)
            {
                x = g.UpsampleNearest(x, config.UpsamplingScalingFactor);
                layer++;
            }
            x = g.Conv2d(x, weights, Layer(layer++), width, last ? config.OutChannels : width, 3, bias: last);
        }

        // The decoder's own output is in [0, 1]; diffusers maps it to [-1, 1] like the VAE's.
        x = g.Sub(g.Mul(x, g.Scalar(2f)), g.Scalar(1f));
        g.Output(x, ImageOutput, DataType.Float, "batch", (long)config.OutChannels, "image_height", "image_width");
        return g;
    }

    /// <summary>Decodes latents [B, latent_channels, h, w] (as the sampler leaves them) to an image in about [-1, 1].</summary>
    public FloatTensor Run(FloatTensor latents, CancellationToken cancellation = default)
    {
        LatentInput.Check(latents, Config.LatentChannels, "Tiny decoder");
        return model.Run([ModelInput.Float(LatentsInput, latents)], [ImageOutput], cancellation)[0];
    }

    public void Dispose() => model.Dispose();

    private static string Layer(int index) => $"decoder.layers.{index}";

    /// <summary>diffusers' AutoencoderTinyBlock with equal in and out channels: ReLU(conv(act(conv(act(conv(x))))) + x).</summary>
    private static string Block(OnnxGraph g, IWeightSource weights, string prefix, string x, long channels, string activation)
    {
        var h = g.Activation(g.Conv2d(x, weights, prefix + ".conv.0", channels, channels, 3), activation);
        h = g.Activation(g.Conv2d(h, weights, prefix + ".conv.2", channels, channels, 3), activation);
        h = g.Conv2d(h, weights, prefix + ".conv.4", channels, channels, 3);
        return g.Relu(g.Add(h, x));
    }

    private static (string Folder, string Config, string Weights) Locate(string path)
    {
        string folder, weights;
        if (File.Exists(path))
        {
            folder = Path.GetDirectoryName(path)!;
            weights = path;
        }
        else if (Directory.Exists(path))
        {
            folder = path;
            weights = Path.Combine(folder, WeightsFileName);
            if (!File.Exists(weights))
                throw new FileNotFoundException($"{folder} has no {WeightsFileName}: a tiny decoder is {Layout}.", weights);
        }
        else throw new FileNotFoundException($"Tiny decoder not found: {path} (give {Layout}).", path);
        var config = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(config))
            throw new FileNotFoundException($"{folder} has no {ConfigFileName} beside the weights: a tiny decoder is {Layout}.", config);
        return (folder, config, weights);
    }

    private static void Validate(TinyAutoencoderConfig config, string source)
    {
        InvalidDataException Bad(string what) => new($"{source}: {what}");
        if (config.ClassName != ExpectedClassName)
            throw Bad($"_class_name is '{config.ClassName}', not '{ExpectedClassName}': a tiny decoder is {Layout}.");
        var channels = config.DecoderBlockOutChannels;
        if (channels.IsScalar || channels.Count == 0 || channels[0] <= 0)
            throw Bad("decoder_block_out_channels must be a non-empty list of positive channel counts.");
        // DecoderTiny feeds each stage's output (that stage's width) into the next stage's blocks unchanged.
        if (channels.Values.Any(c => c != channels[0]))
            throw Bad($"decoder_block_out_channels [{string.Join(", ", channels.Values)}] must all be equal: diffusers' DecoderTiny cannot run other widths.");
        var blocks = config.NumDecoderBlocks;
        if (blocks.IsScalar || blocks.Count != channels.Count || blocks.Values.Any(b => b < 0))
            throw Bad($"num_decoder_blocks must list {channels.Count} block counts (one per decoder_block_out_channels entry), none negative.");
        if (config.LatentChannels <= 0 || config.OutChannels <= 0 || config.UpsamplingScalingFactor < 1)
            throw Bad("latent_channels and out_channels must be positive and upsampling_scaling_factor at least 1.");
        if (config.ActFn.ToLowerInvariant() is not ("relu" or "silu" or "swish" or "gelu"))
            throw Bad($"act_fn '{config.ActFn}' is not supported (relu, silu, swish or gelu).");
        if (config.UpsampleFn != "nearest")
            throw Bad($"upsample_fn '{config.UpsampleFn}' is not supported (nearest).");
        if (!float.IsFinite(config.ScalingFactor) || config.ScalingFactor <= 0)
            throw Bad($"scaling_factor {config.ScalingFactor} must be a positive number.");
    }
}
