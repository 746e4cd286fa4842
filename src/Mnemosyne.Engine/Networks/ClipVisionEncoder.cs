using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>What the image encoder makes of pictures: the base adapter's input, and IP-Adapter Plus's.</summary>
/// <param name="ImageEmbeds">[B, projection_dim]: what the base adapter and consistency measures read.</param>
/// <param name="PenultimateHiddenStates">[B, patches + 1, hidden]: transformers' hidden_states[-2], every token, no post_layernorm.</param>
public sealed record ClipVisionOutput(FloatTensor ImageEmbeds, FloatTensor PenultimateHiddenStates);

/// <summary>
/// The IP-Adapter image encoder (transformers CLIPVisionModelWithProjection, ViT-H/14 for the SDXL
/// vit-h adapters): preprocessed pixel values → image_embeds and penultimate hidden states (<see cref="ClipVisionOutput"/>).
/// </summary>
public sealed class ClipVisionEncoder : IDisposable
{
    public const string PixelValuesInput = "pixel_values";
    public const string ImageEmbedsOutput = "image_embeds";
    public const string PenultimateHiddenStatesOutput = "penultimate_hidden_states";

    private const string Prefix = "vision_model";
    private readonly OnnxModel model;

    private ClipVisionEncoder(OnnxModel model, ClipVisionConfig config, string weightsPath)
    {
        this.model = model;
        Config = config;
        WeightsPath = weightsPath;
    }

    public ClipVisionConfig Config { get; }

    /// <summary>The weights file the encoder was loaded from (not its converted copy), for messages.</summary>
    public string WeightsPath { get; }

    /// <summary>An image encoder folder with config.json and model.safetensors.</summary>
    public static ClipVisionEncoder Load(string folder, SessionSettings settings)
        => Load(Path.Combine(folder, "config.json"), Path.Combine(folder, "model.safetensors"), settings);

    public static ClipVisionEncoder Load(IpAdapterFiles files, SessionSettings settings)
        => Load(files.ImageEncoderConfigPath, files.ImageEncoderWeightsPath, settings);

    private static ClipVisionEncoder Load(string configPath, string weightsPath, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var config = ConfigJson.Read<ClipVisionConfig>(configPath);
        using var weights = SafetensorsFile.Open(weightsPath);
        // With Int8 the linear layers read 8-bit weights, converted once into the cache.
        var graph = settings.Precision == WeightPrecision.Float32
            ? BuildGraph(config, weights, Path.GetDirectoryName(weights.Path))
            : ConvertedNetwork.Build(settings, [("image-encoder", weights)], (converted, folder) => BuildGraph(config, converted[0], folder));
        return new ClipVisionEncoder(OnnxModel.Create(graph, settings), config, weights.Path);
    }

    /// <summary>
    /// The encoder's graph: <c>pixel_values</c> [B, channels, size, size] → <c>image_embeds</c> [B, projection_dim]:
    /// patch convolution, class token, position embedding, pre_layrnorm, the layers, post_layernorm
    /// on the class token, visual_projection; and <c>penultimate_hidden_states</c> [B, patches + 1, hidden], the
    /// input of the last layer (transformers' hidden_states[-2], which starts with pre_layrnorm's output).
    /// </summary>
    public static OnnxGraph BuildGraph(ClipVisionConfig config, IWeightSource weights, string? weightFolder)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        var what = $"image encoder config of {weights.Path}";
        var layer = ClipTransformerLayer.Create(what, config.HiddenSize, config.IntermediateSize, config.NumAttentionHeads, config.HiddenAct, config.LayerNormEps);
        if (config.PatchSize <= 0 || config.ImageSize <= 0 || config.ImageSize % config.PatchSize != 0 || config.NumChannels <= 0
            || config.NumHiddenLayers < 1 || config.ProjectionDim <= 0)
            throw new InvalidDataException(
                $"{what}: image_size {config.ImageSize} must be a positive multiple of patch_size {config.PatchSize}, and num_channels {config.NumChannels}, num_hidden_layers {config.NumHiddenLayers} and projection_dim {config.ProjectionDim} positive.");
        long hidden = config.HiddenSize;
        long side = config.ImageSize / config.PatchSize;
        long positions = side * side + 1;

        var g = new OnnxGraph("clip_vision_model_with_projection", weightFolder);
        var pixels = g.Input(PixelValuesInput, DataType.Float, "batch", config.NumChannels, config.ImageSize, config.ImageSize);

        var patches = g.Conv2d(pixels, weights, Prefix + ".embeddings.patch_embedding", config.NumChannels, hidden, config.PatchSize,
            stride: config.PatchSize, padding: 0, bias: false);
        patches = g.Transpose(g.Reshape(patches, 0, hidden, side * side), 0, 2, 1);

        // The class token leads every sequence: broadcast it to [B, 1, hidden].
        var classToken = g.Reshape(g.Weight(weights, Prefix + ".embeddings.class_embedding", hidden), 1, 1, hidden);
        var batch = g.Slice(g.Shape(pixels), [0], [1], [0]);
        classToken = g.Node("Expand", [classToken, g.Concat(0, batch, g.Int64s(1, hidden))]);

        var h = g.Add(g.Concat(1, classToken, patches), g.Weight(weights, Prefix + ".embeddings.position_embedding.weight", positions, hidden));
        h = g.LayerNorm(h, weights, Prefix + ".pre_layrnorm", hidden, config.LayerNormEps);
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            if (i == config.NumHiddenLayers - 1)
                g.Output(h, PenultimateHiddenStatesOutput, DataType.Float, "batch", positions, hidden);
            h = layer.Build(g, h, weights, $"{Prefix}.encoder.layers.{i}", attentionBias: null);
        }

        var pooled = g.Squeeze(g.Slice(h, [0], [1], [1]), 1);
        pooled = g.LayerNorm(pooled, weights, Prefix + ".post_layernorm", hidden, config.LayerNormEps);
        var embeds = g.Linear(pooled, weights, "visual_projection", hidden, config.ProjectionDim, bias: false);
        g.Output(embeds, ImageEmbedsOutput, DataType.Float, "batch", config.ProjectionDim);
        return g;
    }

    /// <summary>Encodes preprocessed pixel values [B, channels, size, size] (CLIP-normalised) to image_embeds [B, projection_dim].</summary>
    public FloatTensor Run(FloatTensor pixelValues, CancellationToken cancellation = default)
    {
        CheckPixels(pixelValues);
        return model.Run([ModelInput.Float(PixelValuesInput, pixelValues)], [ImageEmbedsOutput], cancellation)[0];
    }

    /// <summary>Both outputs of one run: image_embeds and the penultimate hidden states.</summary>
    public ClipVisionOutput Encode(FloatTensor pixelValues, CancellationToken cancellation = default)
    {
        CheckPixels(pixelValues);
        var outputs = model.Run([ModelInput.Float(PixelValuesInput, pixelValues)], [ImageEmbedsOutput, PenultimateHiddenStatesOutput], cancellation);
        return new ClipVisionOutput(outputs[0], outputs[1]);
    }

    private void CheckPixels(FloatTensor pixelValues)
    {
        ArgumentNullException.ThrowIfNull(pixelValues);
        int[] expected = [Config.NumChannels, Config.ImageSize, Config.ImageSize];
        if (pixelValues.Shape.Length != 4 || pixelValues.Shape[0] < 1 || !pixelValues.Shape.AsSpan(1).SequenceEqual(expected))
            throw new ArgumentException(
                $"Pixel values have shape [{string.Join(", ", pixelValues.Shape)}]; this encoder takes [B, {string.Join(", ", expected)}] (preprocess the image first).",
                nameof(pixelValues));
        if (pixelValues.Data.LongLength != pixelValues.Shape.Aggregate(1L, (a, d) => a * d))
            throw new ArgumentException($"Pixel values hold {pixelValues.Data.LongLength} floats, not what their shape says.", nameof(pixelValues));
    }

    public void Dispose() => model.Dispose();
}
