using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.Engine.Tests.Sampling;

/// <summary>
/// Schedulers against diffusers v0.30.0. The exact values below were printed by diffusers v0.30.0 on
/// PyTorch 1.13 (CPU, float32) from SDXL base's scheduler_config.json (the fidelity checkpoint's copy);
/// the rounded ones come from ../shared/reference/sdxl-ip-adapter-facts.md §5.
/// </summary>
public class SchedulerTests
{
    /// <summary>SDXL base 1.0's scheduler_config.json, key for key.</summary>
    private const string SdxlConfigJson = """
        {
          "_class_name": "EulerDiscreteScheduler",
          "_diffusers_version": "0.19.0.dev0",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "clip_sample": false,
          "interpolation_type": "linear",
          "num_train_timesteps": 1000,
          "prediction_type": "epsilon",
          "sample_max_value": 1.0,
          "set_alpha_to_one": false,
          "skip_prk_steps": true,
          "steps_offset": 1,
          "timestep_spacing": "leading",
          "trained_betas": null,
          "use_karras_sigmas": false
        }
        """;

    private static readonly SchedulerConfig Sdxl = SchedulerConfig.Parse(SdxlConfigJson, "sdxl scheduler_config.json");

    /// <summary>SDXL's config without clip_sample and set_alpha_to_one, so DDIM's own defaults (true) apply.</summary>
    private static readonly SchedulerConfig SdxlWithoutDdimKeys = Sdxl with { ClipSample = null, SetAlphaToOne = null };

    private static float[] Sigmas(IScheduler scheduler) => scheduler switch
    {
        EulerDiscreteScheduler euler => [.. euler.Sigmas],
        EulerAncestralScheduler ancestral => [.. ancestral.Sigmas],
        DpmSolverMultistepScheduler dpm => [.. dpm.Sigmas],
        _ => throw new ArgumentException("no sigmas"),
    };

    [Fact]
    public void TrainingSigmasSpanTheSdxlRange()
    {
        // With linspace spacing and 1000 steps, Euler's sigmas are the training sigmas, descending.
        var sigmas = Sigmas(new EulerDiscreteScheduler(Sdxl, 1000, TimestepSpacing.Linspace));
        Assert.Equal(14.6146, sigmas[0], 4);
        Assert.Equal(0.029168, sigmas[^2], 6);
        Assert.Equal(0f, sigmas[^1]);
    }

    [Fact]
    public void EulerLeadingMatchesTheFactsDocument()
    {
        var ten = Schedulers.Create(SchedulerKind.Euler, Sdxl, 10);
        Assert.Equal([901f, 801f, 701f, 601f, 501f, 401f, 301f, 201f, 101f, 1f], ten.Timesteps);
        Assert.Equal(8.3907, Sigmas(ten)[0], 4);
        Assert.Equal(8.4501, ten.InitNoiseSigma, 4);

        var twenty = Schedulers.Create(SchedulerKind.Euler, Sdxl, 20);
        Assert.Equal(951f, twenty.Timesteps[0]);
        Assert.Equal(11.0283, Sigmas(twenty)[0], 4);
        Assert.Equal(11.0736, twenty.InitNoiseSigma, 4);

        var thirty = Schedulers.Create(SchedulerKind.Euler, Sdxl, 30);
        Assert.Equal(Enumerable.Range(0, 30).Select(k => 958f - 33 * k).Append(1f).Where(t => t > 0).Take(30), thirty.Timesteps);
        // The facts document's 11.4769 is this value rounded half up.
        Assert.Equal(11.476849555969238f, Sigmas(thirty)[0]);
        Assert.Equal(11.520333290100098f, thirty.InitNoiseSigma);
    }

    [Fact]
    public void DpmSolverLeadingDropsTheZeroTimestep()
    {
        var scheduler = Schedulers.Create(SchedulerKind.DpmPlusPlus2M, Sdxl, 20);
        Assert.Equal(Enumerable.Range(0, 20).Select(k => 941f - 47 * k), scheduler.Timesteps);
        Assert.Equal(1f, scheduler.InitNoiseSigma);
    }

    [Theory]
    [InlineData(SchedulerKind.Euler)]
    [InlineData(SchedulerKind.EulerAncestral)]
    [InlineData(SchedulerKind.DpmPlusPlus2M)]
    [InlineData(SchedulerKind.Ddim)]
    public void TrailingSpacingCountsDownFromTheLastTrainingStep(SchedulerKind kind)
    {
        var scheduler = Schedulers.Create(kind, Sdxl, 4, TimestepSpacing.Trailing);
        Assert.Equal([999f, 749f, 499f, 249f], scheduler.Timesteps);
        float expectedInit = kind is SchedulerKind.Euler or SchedulerKind.EulerAncestral ? 14.614645004272461f : 1f;
        Assert.Equal(expectedInit, scheduler.InitNoiseSigma);
    }

    [Fact]
    public void TrailingSpacingInheritsNumpyArangesExtraStep()
    {
        // arange(1000, 0, -1000/61) has 62 values in NumPy; diffusers runs all of them, the last at t = -1.
        var scheduler = Schedulers.Create(SchedulerKind.Euler, Sdxl, 61, TimestepSpacing.Trailing);
        Assert.Equal(62, scheduler.Timesteps.Count);
        Assert.Equal([999f, 983f, 966f], scheduler.Timesteps.Take(3));
        Assert.Equal([32f, 15f, -1f], scheduler.Timesteps.TakeLast(3));
    }

    [Theory]
    [InlineData(SchedulerKind.Ddim, 1000, "reach timestep 1000, outside the model's 0 to 999")]
    [InlineData(SchedulerKind.DpmPlusPlus2M, 999, "reach timestep 1000, outside the model's 0 to 999")]
    [InlineData(SchedulerKind.DpmPlusPlus2M, 1000, "take timestep 1 twice")]
    public void StepCountsWhoseTimestepsLeaveTheScheduleOrRepeat_AreRefusedUpFront(SchedulerKind kind, int steps, string problem)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Schedulers.Create(kind, Sdxl, steps));

        Assert.Equal(steps, e.ActualValue);
        Assert.Contains($"{kind} with Leading timestep spacing and steps_offset 1 cannot take {steps} steps", e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Contains("Use fewer steps or another scheduler.", e.Message);
    }

    [Theory]
    [InlineData(SchedulerKind.Ddim, 999)]
    [InlineData(SchedulerKind.DpmPlusPlus2M, 998)]
    [InlineData(SchedulerKind.DpmPlusPlus2MKarras, 1000)]
    public void TheLargestStepCountsThatFit_AreTaken(SchedulerKind kind, int steps)
    {
        var scheduler = Schedulers.Create(kind, Sdxl, steps);
        Assert.Equal(steps, scheduler.Timesteps.Count);
        Assert.All(scheduler.Timesteps, t => Assert.InRange(t, 0f, 999f));
    }

    [Fact]
    public void LcmTakesItsTimestepsFromTheDistillationScheduleWhateverTheSpacing()
    {
        // LCM-LoRA's 4 steps (diffusers' docstring example): every 20th of 1000 from 999, at indices 0, 12, 25, 37.
        Assert.Equal([999f, 759f, 499f, 259f], Schedulers.Create(SchedulerKind.Lcm, Sdxl, 4).Timesteps);
        Assert.Equal([999f, 759f, 499f, 259f], Schedulers.Create(SchedulerKind.Lcm, Sdxl, 4, TimestepSpacing.Trailing).Timesteps);
        // original_inference_steps from the config: 1000 // 25 = 40 apart.
        Assert.Equal([999f, 519f], Schedulers.Create(SchedulerKind.Lcm, Sdxl with { OriginalInferenceSteps = 25 }, 2).Timesteps);
        Assert.Equal(50, Schedulers.Create(SchedulerKind.Lcm, Sdxl, 50).Timesteps.Count);
    }

    [Fact]
    public void LcmRefusesMoreStepsThanItsDistillationScheduleHas()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Schedulers.Create(SchedulerKind.Lcm, Sdxl, 51));
        Assert.Equal(51, e.ActualValue);
        Assert.Contains("LCM takes its timesteps from the 50 of its distillation schedule, so it cannot take 51 steps", e.Message);
    }

    [Fact]
    public void DdimTakesItsOwnDefaultsWhereTheConfigIsSilent()
    {
        var defaults = new DdimScheduler(SdxlWithoutDdimKeys, 5);
        Assert.Equal(1f, defaults.ClipSampleRange);
        Assert.Equal(1f, defaults.FinalAlphaCumprod);
        Assert.Equal([801f, 601f, 401f, 201f, 1f], defaults.Timesteps);

        var sdxl = new DdimScheduler(Sdxl, 5);
        Assert.Null(sdxl.ClipSampleRange);
        Assert.Equal(0.99915, sdxl.FinalAlphaCumprod, 5);

        // Without a timestep_spacing key DDIM spaces "leading" while Euler spaces "linspace".
        var bare = SchedulerConfig.Parse("{}", "empty");
        Assert.Equal(TimestepSpacing.Leading, new DdimScheduler(bare, 10).Spacing);
        Assert.Equal(TimestepSpacing.Linspace, new EulerDiscreteScheduler(bare, 10).Spacing);
    }

    [Fact]
    public void KarrasSigmasGiveFractionalEulerTimestepsAndRoundedDpmTimesteps()
    {
        var euler = new EulerDiscreteScheduler(Sdxl with { UseKarrasSigmas = true }, 5);
        Assert.Equal([801f, 565.8302001953125f, 248.59303283691406f, 38.422298431396484f, 1f], euler.Timesteps);
        Assert.Equal([5.134433269500732f, 2.0248067378997803f, 0.6921505928039551f, 0.19469328224658966f, 0.04131447896361351f, 0f], euler.Sigmas);

        // DPM's Karras ramp spans the whole training range (σ_max 14.6146, σ_min 0.029168).
        var dpm = Schedulers.Create(SchedulerKind.DpmPlusPlus2MKarras, Sdxl, 6);
        Assert.Equal([999f, 837f, 594f, 249f, 30f, 0f], dpm.Timesteps);
        Assert.Equal([14.614645004272461f, 6.082158088684082f, 2.232161283493042f, 0.6925739049911499f, 0.16975794732570648f, 0.029167532920837402f, 0f], Sigmas(dpm));
    }

    public static TheoryData<string, SchedulerKind, int, TimestepSpacing?, bool, float[], float> DiffusersLoops => new()
    {
        {
            "euler, 4 steps", SchedulerKind.Euler, 4, null, false,
            [2.915083169937134f, 2.202699899673462f, 1.2522214651107788f, -3.6191163063049316f, 0.8920063376426697f, -2.207777976989746f, -0.27709656953811646f, -2.807527780532837f, -1.4260770082473755f, 2.4642975330352783f, -0.843285858631134f, -2.4817283153533936f, -1.3867757320404053f, -1.1138156652450562f, -1.45314359664917f, 1.0281645059585571f],
            0.01086814422160387f
        },
        {
            "euler, trailing, 4 steps", SchedulerKind.Euler, 4, TimestepSpacing.Trailing, false,
            [6.42930269241333f, 4.854458808898926f, 2.753262996673584f, -8.015661239624023f, 1.9569462537765503f, -4.895657062530518f, -0.6275553703308105f, -6.221506118774414f, -3.1675732135772705f, 5.432764053344727f, -1.879213571548462f, -5.5012712478637695f, -3.080690383911133f, -2.4772658348083496f, -3.2274084091186523f, 2.2579469680786133f],
            0.01086814422160387f
        },
        {
            "euler ancestral, 4 steps", SchedulerKind.EulerAncestral, 4, null, false,
            [2.4311935901641846f, 0.9371401071548462f, 0.3525777757167816f, -1.5667847394943237f, 0.13734140992164612f, -1.0549219846725464f, 0.35768190026283264f, -1.2991441488265991f, -0.9719187021255493f, 2.9664463996887207f, -0.6640101075172424f, -1.171878695487976f, -1.7967687845230103f, 0.15963245928287506f, -1.8836100101470947f, 1.056329607963562f],
            0.01086814422160387f
        },
        {
            "dpm++ 2m, 6 steps", SchedulerKind.DpmPlusPlus2M, 6, null, false,
            [2.8770148754119873f, 2.0707883834838867f, 0.9950997233390808f, -4.517956256866455f, 0.587432324886322f, -2.92069673538208f, -0.7356802821159363f, -3.599453926086426f, -2.036019802093506f, 2.366847276687622f, -1.3764556646347046f, -3.2307355403900146f, -1.9915406703948975f, -1.6826233863830566f, -2.066652297973633f, 0.7415268421173096f],
            1.6423169374465942f
        },
        {
            "dpm++ 2m karras, 6 steps", SchedulerKind.DpmPlusPlus2MKarras, 6, null, false,
            [3.2669262886047363f, 2.3425629138946533f, 1.1092554330825806f, -5.211622714996338f, 0.6418536901473999f, -3.3803184032440186f, -0.875133752822876f, -4.158532619476318f, -2.3660104274749756f, 2.682004690170288f, -1.6098014116287231f, -3.735786199569702f, -2.315014600753784f, -1.960830807685852f, -2.401132106781006f, 0.8185272812843323f],
            1.6423169374465942f
        },
        {
            "ddim, 5 steps, SDXL's clip_sample/set_alpha_to_one false", SchedulerKind.Ddim, 5, null, false,
            [3.1844022274017334f, 2.384007215499878f, 1.3160998821258545f, -4.157074928283691f, 0.9113814830780029f, -2.571371078491211f, -0.402160108089447f, -3.2452175617218018f, -1.693093180656433f, 2.677924156188965f, -1.0383002758026123f, -2.879166841506958f, -1.64893639087677f, -1.3422532081604004f, -1.7235039472579956f, 1.064361333847046f],
            1.6423169374465942f
        },
        {
            "ddim, 5 steps, DDIM's defaults (x0 clipped to ±1)", SchedulerKind.Ddim, 5, null, true,
            [0.8713816404342651f, 0.7998707294464111f, 0.6265387535095215f, -1.0f, 0.5064972043037415f, -1.0f, -0.4081710875034332f, -1.0f, -1.0f, 0.8261305093765259f, -1.0f, -1.0f, -1.0f, -1.0f, -1.0f, 0.5518718361854553f],
            1.6423169374465942f
        },
    };

    /// <summary>
    /// A whole denoising loop as the SDXL pipeline runs it, with the stand-in model ε = x_in/2 + i/10
    /// (exact in float32 on both sides), seed 42, latents [1, 4, 2, 2]: the final latents must equal
    /// diffusers' bit for bit, and so must the next draw from the generator (Euler and Euler ancestral
    /// consume one latent-sized draw per step; the others none).
    /// </summary>
    [Theory]
    [MemberData(nameof(DiffusersLoops))]
    public void WholeLoopsMatchDiffusersBitForBit(string name, SchedulerKind kind, int steps, TimestepSpacing? spacing, bool ddimDefaults, float[] expected, float nextDraw)
    {
        var scheduler = Schedulers.Create(kind, ddimDefaults ? SdxlWithoutDdimKeys : Sdxl, steps, spacing);
        var generator = new TorchGenerator(42);
        var latents = generator.Randn(1, 4, 2, 2);
        for (int i = 0; i < latents.Length; i++) latents[i] *= scheduler.InitNoiseSigma;
        for (int step = 0; step < scheduler.Timesteps.Count; step++)
        {
            var input = (float[])latents.Clone();
            scheduler.ScaleModelInput(input, step);
            var modelOutput = input.Select(x => x * 0.5f + (float)(0.1 * step)).ToArray();
            scheduler.Step(modelOutput, step, latents, generator);
        }
        Assert.True(expected.SequenceEqual(latents), $"{name}: got [{string.Join(", ", latents.Select(v => v.ToString("R")))}]");
        Assert.Equal(nextDraw, generator.Randn(16)[0]);
    }

    [Fact]
    public void EulerAncestralNeedsTheGenerator()
    {
        var scheduler = Schedulers.Create(SchedulerKind.EulerAncestral, Sdxl, 4);
        var e = Assert.Throws<ArgumentNullException>(() => scheduler.Step(new float[16], 0, new float[16], null));
        Assert.Contains("generator", e.Message);
    }

    [Fact]
    public void StepsMustComeInOrder()
    {
        var scheduler = Schedulers.Create(SchedulerKind.DpmPlusPlus2M, Sdxl, 4);
        scheduler.Step(new float[16], 0, new float[16], null);
        Assert.Throws<InvalidOperationException>(() => scheduler.Step(new float[16], 2, new float[16], null));
        Assert.Throws<InvalidOperationException>(() => scheduler.Step(new float[16], 0, new float[16], null));
        Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.ScaleModelInput(new float[16], 4));
        Assert.Throws<ArgumentException>(() => scheduler.Step(new float[8], 1, new float[16], null));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1001)]
    public void RefusesAStepCountOutsideTheTrainingRange(int steps)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Schedulers.Create(SchedulerKind.Euler, Sdxl, steps));
        Assert.Contains("1000", e.Message);
    }
}
