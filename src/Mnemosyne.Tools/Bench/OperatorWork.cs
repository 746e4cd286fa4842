namespace Mnemosyne.Tools.Bench;

/// <summary>Where the multiply-adds of a network are: what the 24/64/12% split is about.</summary>
public enum WorkKind
{
    Convolution,
    /// <summary>Products with a weight matrix: linear layers (MatMul, FusedMatMul, Gemm, MatMulNBits).</summary>
    Linear,
    /// <summary>The two products of attention, Q·Kᵀ and softmax·V.</summary>
    Attention,
    /// <summary>Norms, activations, element-wise and layout operators: not counted as floating-point work.</summary>
    Other,
}

/// <summary>
/// Floating-point operations of one kernel, counted from its shapes as ONNX Runtime ran it (after its
/// graph optimisations and layout changes): 2 per multiply-add of the products; element-wise work is
/// not counted, as in the usual FLOP counts of a UNet.
/// </summary>
public static class OperatorWork
{
    public static (WorkKind Kind, double Flops) Of(ProfiledNode node)
    {
        var output = node.OutputShapes.FirstOrDefault();
        if (output is null) return (WorkKind.Other, 0);
        return node.OpType switch
        {
            "MatMul" or "FusedMatMul" or "Gemm" or "MatMulNBits" or "MatMulInteger" or "MatMulIntegerToFloat" or "DynamicQuantizeMatMul"
                => (WorkKind.Linear, MatMulFlops(node, output)),
            "MultiHeadAttention" => (WorkKind.Attention, AttentionFlops(node, output)),
            _ when node.OpType.Contains("Conv", StringComparison.Ordinal) && Input(node, 1) is { Length: >= 3 } weight
                => (WorkKind.Convolution, ConvFlops(weight, output)),
            _ => (WorkKind.Other, 0),
        };
    }

    /// <summary>2·(output elements)·K, with K the dimension A shares with B, found from A's shape and the output's rows.</summary>
    private static double MatMulFlops(ProfiledNode node, long[] output)
    {
        var a = Input(node, 0);
        if (a is null || a.Length == 0) return 0;
        long k = a.Length == 1 || output.Length < 2 || a[^2] == output[^2] ? a[^1] : a[^2];
        return 2.0 * Elements(output) * k;
    }

    /// <summary>2·(output elements)·(C/groups)·kernel area; weight [M, C/groups, kh, kw].</summary>
    private static double ConvFlops(long[] weight, long[] output)
        => 2.0 * Elements(output) * Elements(weight[1..]);

    /// <summary>
    /// Q·Kᵀ: 2·B·S·L·D, softmax·V: 2·B·S·L·Dv. Query [B, S, D]; key [B, L, D] or [B, heads, L, d]; a
    /// missing key means packed inputs, where L = S.
    /// </summary>
    private static double AttentionFlops(ProfiledNode node, long[] output)
    {
        var query = Input(node, 0);
        var key = Input(node, 1);
        if (query is null || output.Length != 3) return 0;
        long batch = output[0], queries = output[1], valueWidth = output[2];
        (long keys, long keyWidth) = key switch
        {
            { Length: 3 } => (key[1], key[2]),
            { Length: 4 } => (key[2], key[1] * key[3]),
            _ => (queries, query.Length == 5 ? query[2] * query[4] : valueWidth),
        };
        return 2.0 * batch * queries * keys * (keyWidth + valueWidth);
    }

    private static long[]? Input(ProfiledNode node, int index) => index < node.InputShapes.Length ? node.InputShapes[index] : null;

    private static long Elements(long[] shape) => shape.Aggregate(1L, (a, b) => a * b);
}
