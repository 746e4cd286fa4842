using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Sampling;

/// <summary>
/// The training schedule against values printed by PyTorch 1.13 and diffusers v0.30.0 (exact float32),
/// at indices that include the eighth lane of torch.linspace's vectors (7, 31), where its rounding
/// differs from a fused start + step·i, and both sides of its halfway switch (499, 500).
/// </summary>
public class TrainingScheduleTests
{
    private static readonly int[] Indices = [0, 7, 31, 499, 500, 503, 995, 999];

    private static TrainingSchedule From(string json) =>
        TrainingSchedule.From(SchedulerConfig.Parse(json, "test"), pinTerminalAlphaCumprod: true);

    private static void AssertAtIndices(float[] expected, float[] actual)
    {
        for (int k = 0; k < Indices.Length; k++)
            Assert.True(expected[k] == actual[Indices[k]], $"index {Indices[k]}: {actual[Indices[k]]:R}, torch gives {expected[k]:R}");
    }

    [Fact]
    public void LinearBetasAreTorchLinspace()
    {
        AssertAtIndices(
            [9.999999747378752e-05f, 0.00023943945416249335f, 0.000717517570592463f, 0.0100400410592556f, 0.010059960186481476f, 0.010119720362126827f, 0.019920319318771362f, 0.019999999552965164f],
            From("""{"beta_schedule": "linear"}""").Betas);
    }

    [Fact]
    public void ScaledLinearScheduleMatchesDiffusers()
    {
        var schedule = From("""{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}""");
        float[] roots = [0.029154758900403976f, 0.029718050733208656f, 0.03164933621883392f, 0.06930940598249435f, 0.06938987225294113f, 0.06963128596544266f, 0.10922262817621231f, 0.10954450815916061f];
        AssertAtIndices(roots.Select(r => r * r).ToArray(), schedule.Betas);
        AssertAtIndices(
            [0.9991499781608582f, 0.9930886626243591f, 0.9708254337310791f, 0.2776694595813751f, 0.2763324975967407f, 0.2723417282104492f, 0.00489013222977519f, 0.0046600960195064545f],
            schedule.AlphasCumprod);
        AssertAtIndices(
            [0.029167532920837402f, 0.08342323452234268f, 0.17335310578346252f, 1.6128870248794556f, 1.6182795763015747f, 1.6345816850662231f, 14.26511287689209f, 14.614645004272461f],
            schedule.Sigmas);
    }

    [Fact]
    public void NumpyLogIsNotTheCorrectlyRoundedLog()
    {
        // NumPy's float32 log (its AVX2/AVX-512 loop) differs from the correctly rounded value at some
        // training sigmas; the Karras timesteps read NumPy's, so the emulation must too.
        var sigmas = From("""{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}""").Sigmas;
        int differing = sigmas.Count(s => ReferenceArithmetic.NumpyLog(s) != (float)Math.Log(s));
        Assert.InRange(differing, 1, 999);
        Assert.Equal(0f, ReferenceArithmetic.NumpyLog(1f));
        Assert.Equal(MathF.Log(2f), ReferenceArithmetic.NumpyLog(2f), 6);
    }

    [Fact]
    public void TrainedBetasAreTakenAsGiven()
    {
        var schedule = From("""{"trained_betas": [0.1, 0.2, 0.5]}""");
        Assert.Equal([0.1f, 0.2f, 0.5f], schedule.Betas);
        Assert.Equal([0.9f, (float)(0.9f * (double)0.8f), (float)((double)(0.9f * (double)0.8f) * 0.5f)], schedule.AlphasCumprod);
    }
}
