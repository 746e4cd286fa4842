using Mnemosyne.Engine.Models;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>The progress text the cmdlet shows: bytes, total, rate and time left.</summary>
public sealed class ModelInstallProgressTests
{
    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(999, "999 B")]
    [InlineData(698_391_064, "698 MB")]
    [InlineData(6_941_187_536, "6.94 GB")]
    [InlineData(12_345_678, "12.3 MB")]
    public void ByteSize_IsDecimalWithThreeSignificantDigits(long bytes, string expected) => Assert.Equal(expected, ByteSize.Format(bytes));

    [Fact]
    public void Describe_ShowsBytesTotalRateAndTimeLeft()
    {
        var progress = new ModelInstallProgress
        {
            Model = "sdxl-base-1.0",
            File = "unet/diffusion_pytorch_model.fp16.safetensors",
            FileNumber = 16,
            FileCount = 18,
            Stage = ModelInstallStage.Downloading,
            BytesDone = 1_200_000_000,
            BytesTotal = 6_941_187_536,
            BytesPerSecond = 45_300_000,
            Remaining = TimeSpan.FromSeconds(127),
        };

        Assert.Equal("unet/diffusion_pytorch_model.fp16.safetensors (16/18): 1.20 GB of 6.94 GB at 45.3 MB/s, 2 min 7 s left", progress.Describe());
        Assert.Equal(1_200_000_000 / 6_941_187_536.0, progress.Fraction!.Value, 12);
    }

    [Fact]
    public void Describe_NamesTheStageWhenNotDownloading() =>
        Assert.Equal("model.safetensors (1/1): 5 B, verifying",
            new ModelInstallProgress { Model = "m", File = "model.safetensors", FileNumber = 1, FileCount = 1, Stage = ModelInstallStage.Verifying, BytesDone = 5 }.Describe());
}
