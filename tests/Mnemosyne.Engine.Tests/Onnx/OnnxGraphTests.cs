using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Mnemosyne.Engine.Tests.Onnx;

public sealed class OnnxGraphTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-onnx-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static readonly float[] Weight = [1f, 2f, 3f, -1f, 0.5f, 4f]; // [out 2, in 3]
    private static readonly float[] Bias = [0.25f, -0.75f];

    private static float[] Expected(float[] x) =>
    [
        x[0] * 1f + x[1] * 2f + x[2] * 3f + 0.25f,
        x[0] * -1f + x[1] * 0.5f + x[2] * 4f - 0.75f,
    ];

    private static float[] RunLinear(string weightFolder, string file)
    {
        using var weights = SafetensorsFile.Open(file);
        var g = new OnnxGraph("linear", weightFolder);
        var x = g.Input("x", DataType.Float, 1, 3);
        g.Output(g.Linear(x, weights, "fc", 3, 2), "y", DataType.Float, 1, 2);
        using var model = OnnxModel.Create(g, SessionSettings.Default);
        return model.Run([ModelInput.Float("x", new FloatTensor([1f, 2f, 3f], [1, 3]))], ["y"])[0].Data;
    }

    [Theory]
    [InlineData(TensorDType.F32, true)]
    [InlineData(TensorDType.F16, true)]
    [InlineData(TensorDType.F32, false)]
    public void LinearMatchesTorchSemantics(TensorDType dtype, bool weightsInGraphFolder)
    {
        var file = Path.Combine(dir, "model.safetensors");
        SafetensorsWriter.Write(file, [new("fc.weight", [2, 3], () => Weight), new("fc.bias", [2], () => Bias)], dtype);
        var folder = weightsInGraphFolder ? dir : Directory.CreateTempSubdirectory("mnemosyne-other-").FullName;
        var y = RunLinear(folder, file);
        Assert.Equal(Expected([1f, 2f, 3f]), y);
    }

    [Fact]
    public void RefusesAWeightOfTheWrongShape()
    {
        var file = Path.Combine(dir, "model.safetensors");
        SafetensorsWriter.Write(file, [new("fc.weight", [3, 2], () => Weight), new("fc.bias", [2], () => Bias)]);
        using var weights = SafetensorsFile.Open(file);
        var g = new OnnxGraph("linear", dir);
        var e = Assert.Throws<CheckpointException>(() => g.Linear(g.Input("x", DataType.Float, 1, 3), weights, "fc", 3, 2));
        Assert.Contains("fc.weight", e.Message);
        Assert.Contains("[3, 2]", e.Message);
    }

    [Fact]
    public void CancellationBeforeARunThrows()
    {
        var file = Path.Combine(dir, "model.safetensors");
        SafetensorsWriter.Write(file, [new("fc.weight", [2, 3], () => Weight), new("fc.bias", [2], () => Bias)]);
        using var weights = SafetensorsFile.Open(file);
        var g = new OnnxGraph("linear", dir);
        g.Output(g.Linear(g.Input("x", DataType.Float, 1, 3), weights, "fc", 3, 2), "y", DataType.Float, 1, 2);
        using var model = OnnxModel.Create(g, SessionSettings.Default);
        Assert.Throws<OperationCanceledException>(() =>
            model.Run([ModelInput.Float("x", new FloatTensor([1f, 2f, 3f], [1, 3]))], ["y"], new CancellationToken(true)));
    }
}
