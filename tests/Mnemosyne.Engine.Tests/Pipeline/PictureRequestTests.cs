using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>The checks of a request made from a starting picture (img2img) and a mask (inpainting), and the step arithmetic they share.</summary>
public class PictureRequestTests
{
    private static RgbImage Picture(int width, int height, byte value = 0) => new(width, height, Enumerable.Repeat(value, 3 * width * height).ToArray());

    private static SceneRequest Request(double strength = 0.5) => new()
    {
        Prompt = "a cat", Seed = 1, Width = 96, Height = 64, Steps = 10, InitImage = Picture(96, 64), Strength = strength,
    };

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(1.0)]
    public void TakesAStrengthThatRunsSteps(double strength) => Request(strength).Validate();

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.01)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void RefusesAStrengthOutside0To1(double strength)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Request(strength).Validate());
        Assert.Equal(nameof(SceneRequest.Strength), e.ParamName);
        Assert.Contains("from 0 to 1", e.Message);
        // Checked with or without a picture.
        Assert.Throws<ArgumentOutOfRangeException>(() => (Request(strength) with { InitImage = null }).Validate());
    }

    /// <summary>⌊10 × 0.09⌋ = 0 steps: diffusers would fail on an empty schedule.</summary>
    [Fact]
    public void RefusesAStrengthThatRunsNoStep()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Request(0.09).Validate());
        Assert.Equal(nameof(SceneRequest.Strength), e.ParamName);
        Assert.Contains("runs none", e.Message);
    }

    [Fact]
    public void RefusesAPictureOfAnotherSizeThanTheScene()
    {
        var e = Assert.Throws<ArgumentException>(() => (Request() with { InitImage = Picture(64, 96) }).Validate());
        Assert.Equal(nameof(SceneRequest.InitImage), e.ParamName);
        Assert.Contains("64×96 but the scene is 96×64", e.Message);
    }

    [Fact]
    public void RefusesAMaskOfAnotherSizeThanThePicture()
    {
        var e = Assert.Throws<ArgumentException>(() => (Request() with { Mask = Picture(48, 32) }).Validate());
        Assert.Equal(nameof(SceneRequest.Mask), e.ParamName);
        Assert.Contains("48×32", e.Message);
        (Request() with { Mask = Picture(96, 64) }).Validate();
    }

    [Fact]
    public void RefusesAMaskWithoutAPicture()
    {
        var e = Assert.Throws<ArgumentException>(() => (Request() with { InitImage = null, Mask = Picture(96, 64) }).Validate());
        Assert.Equal(nameof(SceneRequest.Mask), e.ParamName);
    }

    [Fact]
    public void RefusesInitialNoiseWithAPicture()
    {
        var noise = new FloatTensor(new float[4 * 8 * 12], [1, 4, 8, 12]);
        var e = Assert.Throws<ArgumentException>(() => (Request() with { InitialNoise = noise }).Validate());
        Assert.Equal(nameof(SceneRequest.InitialNoise), e.ParamName);
    }

    /// <summary>diffusers' get_timesteps: int(steps × strength) in double precision, the first step steps minus that.</summary>
    [Theory]
    [InlineData(10, 0.3, 7)]
    [InlineData(5, 0.6, 2)]
    [InlineData(6, 0.75, 2)]
    [InlineData(4, 1.0, 0)]
    [InlineData(10, 0.7, 3)] // 10 × 0.7 = 7.000000000000001
    public void EntersTheScheduleWhereDiffusersDoes(int steps, double strength, int first)
        => Assert.Equal(first, ImageToImage.FirstStep(steps, strength));

    /// <summary>PIL's convert("L") weights, then ≥ 128 redraws; the latent mask reads the pixel at (8y, 8x).</summary>
    [Fact]
    public void TheLatentMaskIsTheBinarisedGreyOfEveryEighthPixel()
    {
        var rgb = new byte[3 * 16 * 16];
        void Set(int x, int y, byte r, byte g, byte b) => (rgb[3 * (y * 16 + x)], rgb[3 * (y * 16 + x) + 1], rgb[3 * (y * 16 + x) + 2]) = (r, g, b);
        Set(8, 0, 128, 128, 128);   // grey 128: redrawn
        Set(0, 8, 127, 127, 127);   // grey 127: kept
        Set(8, 8, 0, 255, 0);       // green: grey 150, redrawn
        Set(9, 9, 255, 255, 255);   // not on the 8-pixel grid: not read
        var mask = Inpainting.LatentMask(new RgbImage(16, 16, rgb), 8);
        Assert.Equal([false, true, false, true], mask);
    }
}
