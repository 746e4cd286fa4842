using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Networks;

/// <summary>What a CLIP text encoder gives SDXL for a batch of prompts.</summary>
/// <param name="PenultimateHiddenStates">
/// [B, 77, hidden]: the output of the second-to-last layer, without the final layer norm
/// (transformers' <c>hidden_states[-2]</c>), SDXL's prompt embedding.
/// </param>
/// <param name="TextEmbeds">
/// [B, projection_dim]: the pooled embedding (final layer norm at the end-of-text token, then
/// text_projection); only for a CLIPTextModelWithProjection, else null.
/// </param>
public sealed record ClipTextOutput(FloatTensor PenultimateHiddenStates, FloatTensor? TextEmbeds);

/// <summary>
/// A CLIP text encoder (transformers CLIPTextModel, or CLIPTextModelWithProjection with the pooled
/// text_embeds), built from its config.json and safetensors weights.
/// </summary>
public sealed class ClipTextEncoder : IDisposable
{
    public const string InputIds = "input_ids";
    public const string PenultimateOutput = "penultimate_hidden_states";
    public const string TextEmbedsOutput = "text_embeds";

    private const string Prefix = "text_model";
    private readonly OnnxModel model;
    private readonly LoraFeed? lora;

    private ClipTextEncoder(OnnxModel model, ClipTextConfig config, LoraFeed? lora)
    {
        this.model = model;
        this.lora = lora;
        Config = config;
    }

    public ClipTextConfig Config { get; }

    /// <summary>Tokens per prompt: the tokenizer pads and truncates to this length.</summary>
    public int SequenceLength => Config.MaxPositionEmbeddings;

    /// <summary>A text encoder folder with config.json and model.safetensors.</summary>
    public static ClipTextEncoder Load(string folder, SessionSettings settings)
        => Load(new ComponentFiles(folder, Path.Combine(folder, "config.json"), Path.Combine(folder, "model.safetensors")), settings);

    /// <summary>A checkpoint's text_encoder/ or text_encoder_2/ (with the weights variant it picked).</summary>
    public static ClipTextEncoder Load(ComponentFiles files, SessionSettings settings)
    {
        var config = ConfigJson.Read<ClipTextConfig>(files.ConfigPath);
        using var weights = SafetensorsFile.Open(files.WeightsPath);
        return Load(config, weights, settings);
    }

    /// <summary>
    /// An encoder over any weight source (e.g. a single-file checkpoint's), which must stay open until this returns.
    /// With <see cref="SessionSettings.Precision"/> Int8 its linear layers read 8-bit weights, converted once into the cache.
    /// With <paramref name="lora"/> the linear layers it names have a LoRA branch, whose factors every run takes from it.
    /// </summary>
    public static ClipTextEncoder Load(ClipTextConfig config, IWeightSource weights, SessionSettings settings, LoraFeed? lora = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var graph = settings.Precision == WeightPrecision.Float32
            ? BuildGraph(config, weights, Path.GetDirectoryName(weights.Path), lora?.Modules)
            : ConvertedNetwork.Build(settings, [("text-encoder", weights)], (converted, folder) => BuildGraph(config, converted[0], folder, lora?.Modules));
        return new ClipTextEncoder(OnnxModel.Create(graph, settings), config, lora);
    }

    /// <summary>
    /// The encoder's graph: <c>input_ids</c> int64 [B, 77] → <c>penultimate_hidden_states</c> [B, 77, hidden]
    /// and, with a projection, <c>text_embeds</c> [B, projection_dim]. Every tensor of the checkpoint
    /// is checked, the last layer's included where no output needs it. With <paramref name="loraBranches"/> the linear
    /// layers it names (of those the outputs need) have a LoRA branch (<see cref="OnnxGraph.LoraBranches"/>).
    /// </summary>
    public static OnnxGraph BuildGraph(ClipTextConfig config, IWeightSource weights, string? weightFolder, Func<string, bool>? loraBranches = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        var layer = ClipTransformerLayer.Create(
            $"text encoder config of {weights.Path}", config.HiddenSize, config.IntermediateSize, config.NumAttentionHeads, config.HiddenAct, config.LayerNormEps);
        if (config.NumHiddenLayers < 1 || config.MaxPositionEmbeddings < 2 || config.VocabSize < 1)
            throw new InvalidDataException(
                $"Text encoder config of {weights.Path}: num_hidden_layers {config.NumHiddenLayers}, max_position_embeddings {config.MaxPositionEmbeddings} and vocab_size {config.VocabSize} must be positive (and at least 2 positions).");
        long hidden = config.HiddenSize;
        int length = config.MaxPositionEmbeddings;

        var g = new OnnxGraph(config.HasProjection ? "clip_text_model_with_projection" : "clip_text_model", weightFolder, loraBranches);
        var ids = g.Input(InputIds, DataType.Int64, "batch", length);

        var tokens = g.Gather(g.Weight(weights, Prefix + ".embeddings.token_embedding.weight", config.VocabSize, hidden), ids);
        var h = g.Add(tokens, g.Weight(weights, Prefix + ".embeddings.position_embedding.weight", length, hidden));

        var causal = g.Constant(CausalBias(length), 1, 1, length, length);
        int last = config.NumHiddenLayers - 1;
        for (int i = 0; i < last; i++)
            h = layer.Build(g, h, weights, $"{Prefix}.encoder.layers.{i}", causal);
        g.Output(h, PenultimateOutput, DataType.Float, "batch", length, hidden);

        var lastPrefix = $"{Prefix}.encoder.layers.{last}";
        if (!config.HasProjection)
        {
            // SDXL discards this encoder's pooled output, so its last layer is never run.
            layer.Expect(weights, lastPrefix);
            weights.Expect(Prefix + ".final_layer_norm.weight", [hidden]);
            weights.Expect(Prefix + ".final_layer_norm.bias", [hidden]);
            return g;
        }

        h = layer.Build(g, h, weights, lastPrefix, causal);
        // The end-of-text token has the largest id; ArgMax takes its first occurrence.
        var eos = g.Node("ArgMax", [g.Cast(ids, DataType.Int32)], new Dictionary<string, object> { ["axis"] = 1L, ["keepdims"] = 1L });
        var pooled = g.Node("GatherND", [h, eos], new Dictionary<string, object> { ["batch_dims"] = 1L });
        // The final layer norm acts on each token alone, so it is applied to the pooled token only.
        pooled = g.LayerNorm(pooled, weights, Prefix + ".final_layer_norm", hidden, config.LayerNormEps);
        var projected = g.Linear(pooled, weights, "text_projection", hidden, config.ProjectionDim, bias: false);
        g.Output(projected, TextEmbedsOutput, DataType.Float, "batch", config.ProjectionDim);
        return g;
    }

    /// <summary>Scores of later tokens get float32's minimum added, as transformers' causal mask does.</summary>
    private static float[] CausalBias(int length)
    {
        var bias = new float[length * length];
        for (int row = 0; row < length; row++)
            bias.AsSpan(row * length + row + 1, length - row - 1).Fill(float.MinValue);
        return bias;
    }

    /// <summary>Encodes a batch of token id rows, each exactly <see cref="SequenceLength"/> long.</summary>
    public ClipTextOutput Run(IReadOnlyList<long[]> tokenIds, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        if (tokenIds.Count == 0) throw new ArgumentException("At least one row of token ids is needed.", nameof(tokenIds));
        var flat = new long[tokenIds.Count * SequenceLength];
        for (int row = 0; row < tokenIds.Count; row++)
        {
            var ids = tokenIds[row];
            if (ids.Length != SequenceLength)
                throw new ArgumentException($"Row {row} has {ids.Length} token ids; this encoder takes exactly {SequenceLength} (pad or truncate with the tokenizer).", nameof(tokenIds));
            for (int i = 0; i < ids.Length; i++)
                if (ids[i] < 0 || ids[i] >= Config.VocabSize)
                    throw new ArgumentException($"Token id {ids[i]} at row {row}, position {i} is outside the vocabulary of {Config.VocabSize}.", nameof(tokenIds));
            ids.CopyTo(flat, row * SequenceLength);
        }
        List<ModelInput> inputs = [ModelInput.Int64(InputIds, flat, tokenIds.Count, SequenceLength), .. lora?.Inputs ?? []];
        if (!Config.HasProjection)
            return new ClipTextOutput(model.Run(inputs, [PenultimateOutput], cancellation)[0], null);
        var outputs = model.Run(inputs, [PenultimateOutput, TextEmbedsOutput], cancellation);
        return new ClipTextOutput(outputs[0], outputs[1]);
    }

    public void Dispose() => model.Dispose();
}
