using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Sampling;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public class SchedulerConfigTests
{
    /// <summary>Both tiny models carry SDXL base 1.0's scheduler_config.json, key for key.</summary>
    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void ReadsATinyModelsSchedulerFolder(string model)
    {
        var config = SchedulerConfig.Load(Path.Combine(TinyModel.Named(model).Folder, "scheduler"));
        Assert.Equal("EulerDiscreteScheduler", config.ClassName);
        Assert.Equal("scaled_linear", config.BetaSchedule);
        Assert.Equal(0.00085, config.BetaStart);
        Assert.Equal(0.012, config.BetaEnd);
        Assert.Equal("leading", config.TimestepSpacing);
        Assert.Equal(1, config.StepsOffset);
        Assert.False(config.ClipSample);
        Assert.False(config.SetAlphaToOne);
        Assert.Null(config.TrainedBetas);
        Assert.Null(config.SolverOrder);
        Assert.EndsWith(SchedulerConfig.FileName, config.Source);
    }

    [Fact]
    public void MissingKeysStayNull()
    {
        var config = SchedulerConfig.Parse("""{"beta_schedule": "linear", "unknown_key": [1, 2]}""", "test");
        Assert.Equal("linear", config.BetaSchedule);
        Assert.Null(config.NumTrainTimesteps);
        Assert.Null(config.ClipSample);
        Assert.Null(config.TimestepSpacing);
    }

    [Fact]
    public void ReadsTrainedBetas()
    {
        var config = SchedulerConfig.Parse("""{"trained_betas": [0.1, 0.2, 0.3]}""", "test");
        Assert.Equal([0.1, 0.2, 0.3], config.TrainedBetas);
    }

    [Fact]
    public void ReadsPythonsNonFiniteNumbers()
    {
        // diffusers saves DPM-Solver configs with "lambda_min_clipped": -Infinity (Python's json module).
        var config = SchedulerConfig.Parse("""{"lambda_min_clipped": -Infinity, "sigma_max": Infinity, "sigma_min": NaN, "algorithm_type": "say \"NaN\" -Infinity"}""", "test");
        Assert.Equal(double.NegativeInfinity, config.LambdaMinClipped);
        Assert.Equal(double.PositiveInfinity, config.SigmaMax);
        Assert.True(double.IsNaN(config.SigmaMin!.Value));
        Assert.Equal("say \"NaN\" -Infinity", config.AlgorithmType);
    }

    [Theory]
    [InlineData("""{"steps_offset": "one"}""", "\"steps_offset\" should be a whole number")]
    [InlineData("""{"clip_sample": 1}""", "\"clip_sample\" should be true or false")]
    [InlineData("""{"beta_schedule": 3}""", "\"beta_schedule\" should be a string")]
    [InlineData("""{"trained_betas": [0.1, "x"]}""", "\"trained_betas\" should be an array of numbers")]
    [InlineData("""[1, 2]""", "must be a JSON object")]
    [InlineData("""{"beta_start": """, "not valid JSON")]
    public void BadValuesNameTheFileAndTheKey(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => SchedulerConfig.Parse(json, "my/scheduler_config.json"));
        Assert.StartsWith("my/scheduler_config.json: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AMissingFileSaysWhatToPass()
    {
        var folder = Path.Combine(Path.GetTempPath(), "mnemosyne-no-scheduler-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var e = Assert.Throws<FileNotFoundException>(() => SchedulerConfig.Load(folder));
            Assert.Contains(Path.Combine(folder, SchedulerConfig.FileName), e.Message);
        }
        finally
        {
            Directory.Delete(folder);
        }
    }

    [Theory]
    [InlineData("""{"timestep_spacing": "sideways"}""", "timestep_spacing \"sideways\"")]
    [InlineData("""{"beta_schedule": "sigmoid"}""", "beta_schedule \"sigmoid\"")]
    [InlineData("""{"prediction_type": "flow"}""", "prediction_type \"flow\"")]
    [InlineData("""{"interpolation_type": "log_linear"}""", "interpolation_type \"log_linear\"")]
    [InlineData("""{"final_sigmas_type": "sigma_max"}""", "final_sigmas_type \"sigma_max\"")]
    public void UnsupportedValuesAreRefusedWhenTheSchedulerIsBuilt(string json, string expected)
    {
        var config = SchedulerConfig.Parse(json, "model/scheduler_config.json");
        var e = Assert.Throws<InvalidDataException>(() => Schedulers.Create(SchedulerKind.Euler, config, 10));
        Assert.StartsWith("model/scheduler_config.json: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ThresholdingIsRefusedForTheSchedulersThatWouldUseIt()
    {
        var config = SchedulerConfig.Parse("""{"thresholding": true}""", "cfg");
        Assert.Throws<InvalidDataException>(() => Schedulers.Create(SchedulerKind.Ddim, config, 10));
        Assert.Throws<InvalidDataException>(() => Schedulers.Create(SchedulerKind.DpmPlusPlus2M, config, 10));
    }
}
