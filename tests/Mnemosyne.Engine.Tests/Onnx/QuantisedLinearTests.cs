using System.Runtime.InteropServices;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Onnx;
using Xunit.Abstractions;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Tests.Onnx;

/// <summary>
/// A linear layer over converted weights runs as ONNX Runtime's MatMulNBits (8 bits, blocks of 32, int8 compute)
/// and computes x·Ŵᵀ + b for the dequantised Ŵ (exactly, for inputs that int8 compute does not round).
/// </summary>
public sealed class QuantisedLinearTests(ITestOutputHelper output) : IDisposable
{
    private const int In = 80; // not a multiple of the block size: the last block is padded
    private const int Out = 48;
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-qlinear-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static float[] Random(int count, int seed, float scale)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1) * scale).ToArray();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RunsAsMatMulNBitsOnTheDequantisedWeights(bool bias)
    {
        var weight = Random(Out * In, 1, 0.2f);
        var biasValues = Random(Out, 2, 0.5f);
        var source = Path.Combine(dir, "model.safetensors");
        var entries = new List<SafetensorsWriter.Entry> { new("fc.weight", [Out, In], () => weight) };
        if (bias) entries.Add(new("fc.bias", [Out], () => biasValues));
        SafetensorsWriter.Write(source, entries);

        using var file = SafetensorsFile.Open(source);
        var plan = new WeightConversionPlan(file);
        BuildLinear(plan, null, bias);
        Assert.Equal([new PlannedWeight("fc.weight", [Out, In], Quantised: true)], plan.Weights.Where(w => w.Quantised),
            (a, b) => a.Name == b.Name && a.Shape.SequenceEqual(b.Shape));
        var folder = Path.Combine(dir, "converted");
        using var converted = ConvertedWeightCache.Open(folder, "linear", plan);

        var graph = BuildLinear(converted, folder, bias);
        var nodes = ModelProto.Parser.ParseFrom(graph.ToBytes()).Graph.Node;
        Assert.Contains(nodes, n => n.OpType == "MatMulNBits" && n.Domain == "com.microsoft");
        Assert.DoesNotContain(nodes, n => n.OpType is "FusedMatMul" or "MatMul");

        // Inputs that int8 compute represents exactly (each block of 32 holds multiples of its largest magnitude / 127,
        // that magnitude included), so any difference from x·Ŵᵀ + b is a layout or zero-point error, not rounding.
        const int rows = 10;
        var random = new Random(3);
        var x = new float[rows * In];
        for (int r = 0; r < rows; r++)
            for (int start = 0; start < In; start += 32)
            {
                float largest = 0.25f + (float)random.NextDouble();
                int width = Math.Min(32, In - start);
                for (int k = 0; k < width; k++) x[r * In + start + k] = random.Next(-127, 128) * largest / 127;
                x[r * In + start + random.Next(width)] = random.Next(2) == 0 ? largest : -largest;
            }
        float[] y;
        using (var model = OnnxModel.Create(graph, SessionSettings.Default))
            y = model.Run([ModelInput.Float("x", new FloatTensor(x, [2, rows / 2, In]))], ["y"])[0].Data;

        var q = converted.LocateQuantised("fc.weight", Out, In)!;
        var dequantised = Int8BlockQuantiser.Dequantise(q.File.RawBytes(q.Blocks), MemoryMarshal.Cast<byte, float>(q.File.RawBytes(q.Scales)), Out, In);
        double worstToQuantised = 0, worstToFloat32 = 0, largestOutput = 0;
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < Out; o++)
            {
                double exact = bias ? biasValues[o] : 0, onQuantised = exact, magnitude = 0;
                for (int k = 0; k < In; k++)
                {
                    exact += (double)x[r * In + k] * weight[o * In + k];
                    onQuantised += (double)x[r * In + k] * dequantised[o * In + k];
                    magnitude += Math.Abs((double)x[r * In + k] * dequantised[o * In + k]);
                }
                double actual = y[r * Out + o];
                worstToQuantised = Math.Max(worstToQuantised, Math.Abs(actual - onQuantised) / (magnitude + 1e-3));
                worstToFloat32 = Math.Max(worstToFloat32, Math.Abs(actual - exact));
                largestOutput = Math.Max(largestOutput, Math.Abs(exact));
            }
        output.WriteLine($"bias {bias}: against x·Ŵᵀ + b at most {worstToQuantised:E1} of Σ|x·Ŵ|; against float32 {worstToFloat32:g3} (outputs up to {largestOutput:g3})");
        Assert.True(worstToQuantised <= 1e-5, $"MatMulNBits is {worstToQuantised:E1} of Σ|x·Ŵ| from x·Ŵᵀ + b: blocks, scales or zero point are laid out wrong");
        Assert.True(worstToFloat32 <= 0.02 * largestOutput, $"{worstToFloat32:g3} from float32 for outputs up to {largestOutput:g3}");
    }

    [Fact]
    public void ASourceWithoutQuantisedWeightsKeepsFusedMatMul()
    {
        var source = Path.Combine(dir, "model.safetensors");
        SafetensorsWriter.Write(source, [new("fc.weight", [Out, In], () => new float[Out * In]), new("fc.bias", [Out], () => new float[Out])]);
        using var file = SafetensorsFile.Open(source);
        var nodes = ModelProto.Parser.ParseFrom(BuildLinear(file, dir, bias: true).ToBytes()).Graph.Node;
        Assert.Contains(nodes, n => n.OpType == "FusedMatMul");
        Assert.DoesNotContain(nodes, n => n.OpType == "MatMulNBits");
    }

    private static OnnxGraph BuildLinear(IWeightSource weights, string? folder, bool bias)
    {
        var g = new OnnxGraph("linear", folder);
        var x = g.Input("x", DataType.Float, "batch", "tokens", (long)In);
        g.Output(g.Linear(x, weights, "fc", In, Out, bias), "y", DataType.Float, "batch", "tokens", (long)Out);
        return g;
    }
}
