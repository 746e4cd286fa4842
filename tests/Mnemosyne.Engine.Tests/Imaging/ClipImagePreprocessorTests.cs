using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Imaging;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public class ClipImagePreprocessorTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void ReproducesDiffusersPixelValuesForTheReferenceImage(string model)
    {
        var tiny = TinyModel.Named(model);
        var image = SafeImageDecoder.Default.Decode(tiny.ReferenceImage);
        var expected = NpyFile.Read(Path.Combine(tiny.ReferenceFolder, "reference-pixel-values.npy"));

        var actual = ClipImagePreprocessor.Preprocess(image);

        Assert.Equal(expected.Shape, actual.Shape);
        double maxAbs = 0;
        int differing = 0;
        for (int i = 0; i < expected.Data.Length; i++)
        {
            double error = Math.Abs((double)expected.Data[i] - actual.Data[i]);
            maxAbs = Math.Max(maxAbs, error);
            if (error > 0) differing++;
        }
        output.WriteLine($"config {model} pixel_values max-abs error {maxAbs:E3}, {differing} of {expected.Data.Length} values differ");
        Assert.Equal(0, differing);
    }

    [Theory]
    [InlineData(300, 200, 336, 224)]
    [InlineData(200, 300, 224, 336)]
    [InlineData(224, 224, 224, 224)]
    [InlineData(1, 1, 224, 224)]
    [InlineData(1000, 3, 74666, 224)]
    [InlineData(333, 500, 224, 336)]
    [InlineData(500, 333, 336, 224)]
    public void ResizesTheShortSideTo224AndTruncatesTheLongSide(int width, int height, int expectedWidth, int expectedHeight)
    {
        Assert.Equal((expectedWidth, expectedHeight), ClipImagePreprocessor.ShortSideTo(width, height, 224));
    }

    [Fact]
    public void NormalisesAUniformImageWithClipMeanAndStd()
    {
        var grey = new RgbImage(224, 224, Enumerable.Repeat((byte)128, 3 * 224 * 224).ToArray());

        var values = ClipImagePreprocessor.Preprocess(grey);

        // 128/255 in double, cast to float, then (x − mean)/std in float.
        float unit = (float)(128 * (1.0 / 255.0));
        Assert.Equal((unit - 0.48145466f) / 0.26862954f, values.Data[0]);
        Assert.Equal((unit - 0.4578275f) / 0.26130258f, values.Data[224 * 224]);
        Assert.Equal((unit - 0.40821073f) / 0.27577711f, values.Data[2 * 224 * 224 + 224 * 224 - 1]);
    }

    [Fact]
    public void HandlesAnExtremeAspectRatioWithoutTheFullResize()
    {
        // 16384×1 resizes to 3,670,016×224 (2.5 GB of RGB); only the 224×224 centre is computed.
        var line = new RgbImage(16384, 1, Enumerable.Repeat((byte)51, 3 * 16384).ToArray());

        var values = ClipImagePreprocessor.Preprocess(line);

        float red = ((float)(51 * (1.0 / 255.0)) - 0.48145466f) / 0.26862954f;
        Assert.All(values.Data.Take(224 * 224), v => Assert.Equal(red, v));
    }

    [Fact]
    public void CropsTheCentreWithTheTopLeftRoundedDown()
    {
        // 224 high and 227 wide: no resize, the crop starts at column (227 − 224) // 2 = 1.
        var rgb = new byte[3 * 227 * 224];
        for (int y = 0; y < 224; y++)
            for (int x = 0; x < 227; x++)
                rgb[3 * (y * 227 + x)] = (byte)x;
        var values = ClipImagePreprocessor.Preprocess(new RgbImage(227, 224, rgb));

        float Red(byte v) => ((float)(v * (1.0 / 255.0)) - 0.48145466f) / 0.26862954f;
        Assert.Equal(Red(1), values.Data[0]);
        Assert.Equal(Red(224), values.Data[223]);
    }
}
