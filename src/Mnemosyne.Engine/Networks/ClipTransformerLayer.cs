using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// The pre-LayerNorm transformer layer that CLIP's text and vision towers share (transformers'
/// CLIPEncoderLayer): <c>h += out_proj(attention(layer_norm1(h)))</c>, then <c>h += fc2(act(fc1(layer_norm2(h))))</c>.
/// </summary>
internal sealed record ClipTransformerLayer(int Hidden, int Intermediate, int Heads, string Activation, float Epsilon)
{
    public static ClipTransformerLayer Create(string what, int hidden, int intermediate, int heads, string activation, float epsilon)
    {
        if (hidden <= 0 || intermediate <= 0 || heads <= 0 || hidden % heads != 0)
            throw new InvalidDataException(
                $"{what}: hidden_size {hidden} must be a positive multiple of num_attention_heads {heads} (and intermediate_size {intermediate} positive).");
        if (activation is not ("gelu" or "quick_gelu"))
            throw new InvalidDataException($"{what}: hidden_act '{activation}' is not a CLIP activation (gelu or quick_gelu).");
        return new ClipTransformerLayer(hidden, intermediate, heads, activation, epsilon);
    }

    /// <summary>Adds the layer at <paramref name="prefix"/> (e.g. <c>text_model.encoder.layers.3</c>) to the graph.</summary>
    public string Build(OnnxGraph g, string h, IWeightSource weights, string prefix, string? attentionBias)
    {
        var normed = g.LayerNorm(h, weights, prefix + ".layer_norm1", Hidden, Epsilon);
        var q = g.Linear(normed, weights, prefix + ".self_attn.q_proj", Hidden, Hidden);
        var k = g.Linear(normed, weights, prefix + ".self_attn.k_proj", Hidden, Hidden);
        var v = g.Linear(normed, weights, prefix + ".self_attn.v_proj", Hidden, Hidden);
        var attended = g.Attention(q, k, v, Heads, attentionBias);
        h = g.Add(h, g.Linear(attended, weights, prefix + ".self_attn.out_proj", Hidden, Hidden));

        normed = g.LayerNorm(h, weights, prefix + ".layer_norm2", Hidden, Epsilon);
        var inner = g.Activation(g.Linear(normed, weights, prefix + ".mlp.fc1", Hidden, Intermediate), Activation);
        return g.Add(h, g.Linear(inner, weights, prefix + ".mlp.fc2", Intermediate, Hidden));
    }

    /// <summary>
    /// Checks the layer's tensors without adding it to a graph, for a layer that the outputs do not
    /// need but that a complete checkpoint of this architecture has.
    /// </summary>
    public void Expect(IWeightSource weights, string prefix)
    {
        foreach (var (name, shape) in Tensors(prefix)) weights.Expect(name, shape);
    }

    private IEnumerable<(string Name, long[] Shape)> Tensors(string prefix)
    {
        foreach (var norm in new[] { "layer_norm1", "layer_norm2" })
        {
            yield return ($"{prefix}.{norm}.weight", [Hidden]);
            yield return ($"{prefix}.{norm}.bias", [Hidden]);
        }
        foreach (var projection in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
        {
            yield return ($"{prefix}.self_attn.{projection}.weight", [Hidden, Hidden]);
            yield return ($"{prefix}.self_attn.{projection}.bias", [Hidden]);
        }
        yield return ($"{prefix}.mlp.fc1.weight", [Intermediate, Hidden]);
        yield return ($"{prefix}.mlp.fc1.bias", [Intermediate]);
        yield return ($"{prefix}.mlp.fc2.weight", [Hidden, Intermediate]);
        yield return ($"{prefix}.mlp.fc2.bias", [Hidden]);
    }
}
