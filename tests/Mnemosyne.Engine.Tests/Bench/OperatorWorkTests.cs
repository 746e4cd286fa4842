using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Tools.Bench;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Tests.Bench;

/// <summary>
/// The benchmark counts a network's work from ONNX Runtime's profile, after ORT has rewritten the
/// graph (NCHWc convolutions, pre-packed weights whose shapes the profile no longer shows). Each
/// kind is checked here against the textbook count of a graph with known shapes.
/// </summary>
public sealed class OperatorWorkTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-bench-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void CountsEachKindOfWorkFromTheProfileOfARun()
    {
        var g = new OnnxGraph("work", null);
        // Linear layer: [2, 8, 32] · Wᵀ, W [48, 32] (a constant, so ORT pre-packs it and drops its shape).
        var x = g.Input("x", DataType.Float, 2, 8, 32);
        g.Output(g.Node("FusedMatMul", [x, g.Constant(Values(48 * 32), 48, 32)], new Dictionary<string, object> { ["transB"] = 1L }, "com.microsoft"),
            "linear", DataType.Float, 2, 8, 48);
        // Transposed left side: Aᵀ with A [32, 8] (K = 32 rows) · B [32, 24].
        var a = g.Input("a", DataType.Float, 32, 8);
        g.Output(g.Node("FusedMatMul", [a, g.Constant(Values(32 * 24), 32, 24)], new Dictionary<string, object> { ["transA"] = 1L }, "com.microsoft"),
            "transposed", DataType.Float, 8, 24);
        // 3×3 convolution, 32 → 48 channels on 12², padded to keep the size.
        var image = g.Input("image", DataType.Float, 1, 32, 12, 12);
        g.Output(g.Node("Conv", [image, g.Constant(Values(48 * 32 * 9), 48, 32, 3, 3)], new Dictionary<string, object>
        {
            ["kernel_shape"] = new long[] { 3, 3 },
            ["pads"] = new long[] { 1, 1, 1, 1 },
        }), "conv", DataType.Float, 1, 48, 12, 12);
        // Cross-attention: 10 queries over 7 keys, width 16 in 2 heads.
        var q = g.Input("q", DataType.Float, 2, 10, 16);
        var kv = g.Input("kv", DataType.Float, 2, 7, 16);
        g.Output(g.Attention(q, kv, kv, heads: 2), "attention", DataType.Float, 2, 10, 16);

        var prefix = Path.Combine(dir, "work");
        using (var model = OnnxModel.Create(g, new SessionSettings { Threads = 1, ProfilePathPrefix = prefix }))
            model.Run(
            [
                ModelInput.Float("x", new FloatTensor(Values(2 * 8 * 32), [2, 8, 32])),
                ModelInput.Float("a", new FloatTensor(Values(32 * 8), [32, 8])),
                ModelInput.Float("image", new FloatTensor(Values(32 * 144), [1, 32, 12, 12])),
                ModelInput.Float("q", new FloatTensor(Values(2 * 10 * 16), [2, 10, 16])),
                ModelInput.Float("kv", new FloatTensor(Values(2 * 7 * 16), [2, 7, 16])),
            ], ["linear", "transposed", "conv", "attention"]);

        var runs = OrtProfile.Read(OrtProfile.Find(prefix));
        var work = WorkSummary.Of(Assert.Single(runs));

        double linear = 2.0 * (2 * 8) * 48 * 32 + 2.0 * 8 * 24 * 32;
        double conv = 2.0 * 48 * 12 * 12 * 32 * 9;
        double attention = 2.0 * 2 * 10 * 7 * 16 * 2; // Q·Kᵀ and softmax·V, both over width 16
        Assert.Equal(linear / 1e9, work.LinearGflop, 12);
        Assert.Equal(conv / 1e9, work.ConvolutionGflop, 12);
        Assert.Equal(attention / 1e9, work.AttentionGflop, 12);
        Assert.Equal((linear + conv + attention) / 1e9, work.Gflop, 12);
        Assert.Contains(work.ByOperator, s => s.OpType == "MultiHeadAttention" && s.Kernels == 1);
        Assert.True(work.KernelSeconds > 0 && work.KernelSeconds <= work.RunSeconds);
    }

    [Fact]
    public void FindRefusesAPrefixWithoutAProfile()
    {
        var e = Assert.Throws<FileNotFoundException>(() => OrtProfile.Find(Path.Combine(dir, "missing")));
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void ASimilarlyNamedSessionsProfileIsNotTaken()
    {
        // "text_encoder" must not pick up "text_encoder_2"'s file.
        File.WriteAllText(Path.Combine(dir, "text_encoder_2_2026-01-01_10-00-00_123.json"), "[]");
        Assert.Throws<FileNotFoundException>(() => OrtProfile.Find(Path.Combine(dir, "text_encoder")));
        File.WriteAllText(Path.Combine(dir, "text_encoder_2026-01-01_10-00-01_5.json"), "[]");
        Assert.EndsWith("text_encoder_2026-01-01_10-00-01_5.json", OrtProfile.Find(Path.Combine(dir, "text_encoder")));
    }

    private static float[] Values(int count) => Enumerable.Range(0, count).Select(i => (float)Math.Sin(i)).ToArray();
}
