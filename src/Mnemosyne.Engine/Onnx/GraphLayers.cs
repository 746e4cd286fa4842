using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Safetensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// The layer vocabulary the networks are written in: each method adds the ONNX nodes of one PyTorch
/// layer, reading its weights by the checkpoint's key names and checking their shapes.
/// </summary>
public static class GraphLayers
{
    private static Dictionary<string, object> Attrs(params (string Key, object Value)[] items)
        => items.ToDictionary(i => i.Key, i => i.Value);

    /// <summary>
    /// The accuracy_level of MatMulNBits that quantises the activations to int8 per block as well, so the products
    /// run on integer dot-product instructions: the speed the quantised weights are for.
    /// </summary>
    public const long Int8ComputeAccuracyLevel = 4;

    /// <summary>
    /// torch.nn.Linear: y = x·Wᵀ + b, W stored [out, in]. FusedMatMul reads W transposed in place; a weight the source
    /// holds quantised runs as MatMulNBits, whose B is laid out [out, in-blocks] too, with the bias as its own input.
    /// </summary>
    public static string Linear(this OnnxGraph g, string x, IWeightSource file, string prefix, long inFeatures, long outFeatures, bool bias = true)
    {
        if (g.QuantisedWeight(file, prefix + ".weight", outFeatures, inFeatures) is { } quantised)
        {
            string?[] inputs = bias
                ? [x, quantised.Blocks, quantised.Scales, null, null, g.Weight(file, prefix + ".bias", outFeatures)]
                : [x, quantised.Blocks, quantised.Scales];
            return g.Node("MatMulNBits", inputs, Attrs(
                ("K", inFeatures), ("N", outFeatures), ("bits", (long)quantised.Bits), ("block_size", (long)quantised.BlockSize),
                ("accuracy_level", Int8ComputeAccuracyLevel)), "com.microsoft").WithLinearLora(g, x, prefix, inFeatures, outFeatures);
        }
        var w = g.Weight(file, prefix + ".weight", outFeatures, inFeatures);
        var y = g.Node("FusedMatMul", [x, w], Attrs(("transB", 1L)), "com.microsoft");
        return (bias ? g.Add(y, g.Weight(file, prefix + ".bias", outFeatures)) : y).WithLinearLora(g, x, prefix, inFeatures, outFeatures);
    }

    /// <summary>
    /// y + (x·A)·B where the graph has LoRA branches: float32 beside the layer's own product, whatever its precision, so
    /// that a LoRA set or weight changes only the inputs A and B, never the session.
    /// </summary>
    private static string WithLinearLora(this string y, OnnxGraph g, string x, string prefix, long inFeatures, long outFeatures)
        => g.LoraBranchFor(prefix, inFeatures, outFeatures, 1, convolution: false) is { } branch
            ? g.Add(y, g.MatMul(g.MatMul(x, branch.Down), branch.Up))
            : y;

    /// <summary>torch.nn.Conv2d with square kernels; weights [out, in, k, k].</summary>
    public static string Conv2d(this OnnxGraph g, string x, IWeightSource file, string prefix, long inChannels, long outChannels, int kernel,
        int stride = 1, int? padding = null, bool bias = true)
    {
        var pad = padding ?? kernel / 2;
        var w = g.Weight(file, prefix + ".weight", outChannels, inChannels, kernel, kernel);
        string?[] inputs = bias ? [x, w, g.Weight(file, prefix + ".bias", outChannels)] : [x, w];
        var y = g.Node("Conv", inputs, Attrs(
            ("kernel_shape", new long[] { kernel, kernel }),
            ("strides", new long[] { stride, stride }),
            ("pads", new long[] { pad, pad, pad, pad })));
        if (g.LoraBranchFor(prefix, inChannels, outChannels, kernel, convolution: true) is not { } branch) return y;
        // The down kernel sees what the layer's own does; the up kernel mixes the rank's channels pixel by pixel.
        var down = g.Node("Conv", [x, branch.Down], Attrs(("strides", new long[] { stride, stride }), ("pads", new long[] { pad, pad, pad, pad })));
        return g.Add(y, g.Node("Conv", [down, branch.Up]));
    }

    /// <summary>torch.nn.GroupNorm on NCHW with per-channel affine (ONNX GroupNormalization-21).</summary>
    public static string GroupNorm(this OnnxGraph g, string x, IWeightSource file, string prefix, long channels, int groups, float epsilon)
        => g.Node("GroupNormalization",
            [x, g.Weight(file, prefix + ".weight", channels), g.Weight(file, prefix + ".bias", channels)],
            Attrs(("num_groups", (long)groups), ("epsilon", epsilon)));

    /// <summary>torch.nn.LayerNorm over the last axis.</summary>
    public static string LayerNorm(this OnnxGraph g, string x, IWeightSource file, string prefix, long features, float epsilon)
        => g.Node("LayerNormalization",
            [x, g.Weight(file, prefix + ".weight", features), g.Weight(file, prefix + ".bias", features)],
            Attrs(("axis", -1L), ("epsilon", epsilon)));

    public static string Silu(this OnnxGraph g, string x) => g.Mul(x, g.Node("Sigmoid", [x]));

    public static string Relu(this OnnxGraph g, string x) => g.Node("Relu", [x]);

    /// <summary>Exact (erf) GELU.</summary>
    public static string Gelu(this OnnxGraph g, string x) => g.Node("Gelu", [x]);

    /// <summary>CLIP's quick_gelu: x·σ(1.702x).</summary>
    public static string QuickGelu(this OnnxGraph g, string x) => g.Mul(x, g.Node("Sigmoid", [g.Mul(x, g.Scalar(1.702f))]));

    public static string Activation(this OnnxGraph g, string x, string name) => name switch
    {
        "silu" or "swish" => g.Silu(x),
        "gelu" => g.Gelu(x),
        "quick_gelu" => g.QuickGelu(x),
        "relu" => g.Relu(x),
        _ => throw new NotSupportedException($"Activation '{name}' is not supported."),
    };

    public static string Add(this OnnxGraph g, string a, string b) => g.Node("Add", [a, b]);

    public static string Sub(this OnnxGraph g, string a, string b) => g.Node("Sub", [a, b]);

    public static string Mul(this OnnxGraph g, string a, string b) => g.Node("Mul", [a, b]);

    public static string Div(this OnnxGraph g, string a, string b) => g.Node("Div", [a, b]);

    public static string MatMul(this OnnxGraph g, string a, string b) => g.Node("MatMul", [a, b]);

    /// <summary>Reshape; 0 copies the input's dimension, -1 is inferred.</summary>
    public static string Reshape(this OnnxGraph g, string x, params long[] shape) => g.Node("Reshape", [x, g.Int64s(shape)]);

    public static string Transpose(this OnnxGraph g, string x, params long[] perm) => g.Node("Transpose", [x], Attrs(("perm", perm)));

    public static string Concat(this OnnxGraph g, long axis, params string[] inputs) => g.Node("Concat", inputs, Attrs(("axis", axis)));

    public static string Softmax(this OnnxGraph g, string x, long axis = -1) => g.Node("Softmax", [x], Attrs(("axis", axis)));

    public static string Unsqueeze(this OnnxGraph g, string x, params long[] axes) => g.Node("Unsqueeze", [x, g.Int64s(axes)]);

    public static string Squeeze(this OnnxGraph g, string x, params long[] axes) => g.Node("Squeeze", [x, g.Int64s(axes)]);

    /// <summary>x[starts:ends] along the given axes (ends may be long.MaxValue).</summary>
    public static string Slice(this OnnxGraph g, string x, long[] starts, long[] ends, long[] axes)
        => g.Node("Slice", [x, g.Int64s(starts), g.Int64s(ends), g.Int64s(axes)]);

    /// <summary>Splits the axis into equal parts.</summary>
    public static string[] Split(this OnnxGraph g, string x, long axis, int parts)
        => g.Nodes("Split", [x], parts, Attrs(("axis", axis), ("num_outputs", (long)parts)));

    public static string Gather(this OnnxGraph g, string data, string indices, long axis = 0)
        => g.Node("Gather", [data, indices], Attrs(("axis", axis)));

    public static string Shape(this OnnxGraph g, string x) => g.Node("Shape", [x]);

    public static string Cast(this OnnxGraph g, string x, DataType to) => g.Node("Cast", [x], Attrs(("to", (long)to)));

    /// <summary>
    /// Multi-head scaled dot-product attention on [B, S, heads·headSize] inputs (com.microsoft
    /// MultiHeadAttention, scale 1/√headSize). <paramref name="attentionBias"/> [1, 1, S, L] is added to the scores.
    /// </summary>
    public static string Attention(this OnnxGraph g, string q, string k, string v, int heads, string? attentionBias = null)
        => g.Node("MultiHeadAttention", attentionBias is null ? [q, k, v] : [q, k, v, null, null, attentionBias],
            Attrs(("num_heads", (long)heads)), "com.microsoft");

    /// <summary>torch's interpolate(scale_factor=f, mode="nearest") on NCHW: output pixel i reads input pixel ⌊i/f⌋.</summary>
    public static string UpsampleNearest(this OnnxGraph g, string x, int factor)
        => g.Node("Resize", [x, null, g.Constant([1f, 1f, factor, factor], 4)], Attrs(
            ("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor")));

    /// <summary>Nearest-neighbour resize of NCHW to an explicit [H, W], as torch's interpolate(mode="nearest").</summary>
    public static string ResizeNearest(this OnnxGraph g, string x, string sizes)
        => g.Node("Resize", [x, null, null, sizes], Attrs(
            ("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor")));
}
