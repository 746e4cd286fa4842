using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Tests.Imaging;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public class DecoderOutputConverterTests
{
    /// <summary>Every whole-scene case of the tiny models that keeps diffusers' float image beside its PNG, as its folder.</summary>
    public static TheoryData<string> Cases()
    {
        var cases = new TheoryData<string>();
        foreach (var source in TinyModel.Present.SelectMany(m => m.SceneSources))
            foreach (var c in TinyModel.SceneCases(source))
            {
                var folder = TinyModel.CaseFolder(source, c.GetProperty("name").GetString()!);
                if (File.Exists(Path.Combine(folder, "image-float.npy"))) cases.Add(folder);
            }
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RoundsTheFloatImageAsDiffusersDid(string folder)
    {
        var unit = NpyFile.Read(Path.Combine(folder, "image-float.npy"));
        var png = SafeImageDecoder.Default.Decode(Path.Combine(folder, "image.png"));
        Assert.Equal([1, png.Height, png.Width, 3], unit.Shape);

        // image-float is already clamp(x/2 + 0.5, 0, 1), laid out 1×H×W×3 like the PNG.
        var rounded = unit.Data.Select(DecoderOutputConverter.ToByte).ToArray();
        Assert.Equal(png.Rgb, rounded);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TurnsTheDecoderOutputIntoTheReferencePng(string folder)
    {
        var unit = NpyFile.Read(Path.Combine(folder, "image-float.npy"));
        var png = SafeImageDecoder.Default.Decode(Path.Combine(folder, "image.png"));
        int height = unit.Shape[1], width = unit.Shape[2], plane = height * width;

        // Back to what the VAE gave: channels first, in [−1, 1] (2u − 1 maps back to u through x/2 + 0.5 here).
        var output = new float[3 * plane];
        for (int i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
                output[c * plane + i] = 2 * unit.Data[3 * i + c] - 1;

        var image = DecoderOutputConverter.ToRgbImage(new FloatTensor(output, [1, 3, height, width]));
        Assert.Equal((png.Width, png.Height), (image.Width, image.Height));
        Assert.Equal(png.Rgb, image.Rgb);
    }

    [Fact]
    public void ClampsAndMapsTheEndsAndTheMiddle()
    {
        // Channel planes of a 5×1 image: R = −1, 1, 0, 3, −7; G = +∞, −∞, −0.5, 0.5, 1; B = 0.
        var output = new FloatTensor(
            [-1, 1, 0, 3, -7, float.PositiveInfinity, float.NegativeInfinity, -0.5f, 0.5f, 1, 0, 0, 0, 0, 0], [3, 1, 5]);
        var image = DecoderOutputConverter.ToRgbImage(output);
        Assert.Equal((5, 1), (image.Width, image.Height));
        // 0 → 0.5 · 255 = 127.5 → 128 (half to even); −0.5 → 63.75 → 64; 0.5 → 191.25 → 191.
        Assert.Equal([0, 255, 128, 255, 0, 128, 128, 64, 128, 255, 191, 128, 0, 255, 128], image.Rgb);
    }

    [Fact]
    public void RoundsHalfToEvenAsNumPyDoes()
    {
        // A unit value whose float product with 255 is exactly 2.5: NumPy rounds it to 2 (away from zero would give 3).
        float unit = 2.5f / 255f;
        while (unit * 255f > 2.5f) unit = MathF.BitDecrement(unit);
        while (unit * 255f < 2.5f) unit = MathF.BitIncrement(unit);
        Assert.Equal(2.5f, unit * 255f);
        Assert.Equal(2, DecoderOutputConverter.ToByte(unit));
    }

    [Fact]
    public void RefusesNaNNamingWhere()
    {
        var data = new float[3 * 2 * 2];
        data[4 + 3] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => DecoderOutputConverter.ToRgbImage(new FloatTensor(data, [1, 3, 2, 2])));
        Assert.Contains("channel 1, pixel (1, 1)", e.Message);
    }

    [Theory]
    [InlineData(new[] { 2, 3, 4, 4 })]
    [InlineData(new[] { 1, 4, 4, 4 })]
    [InlineData(new[] { 4, 4, 3 })]
    [InlineData(new[] { 48 })]
    public void RefusesWhatIsNotOneRgbImage(int[] shape)
    {
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        var e = Assert.Throws<ArgumentException>(() => DecoderOutputConverter.ToRgbImage(new FloatTensor(data, shape)));
        Assert.Contains($"[{string.Join(", ", shape)}]", e.Message);
    }
}
