using System.IO.Compression;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Tests.Imaging;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// The PNG parameters text in AUTOMATIC1111's layout: written by <see cref="Scene.ParametersText"/>, read by
/// <see cref="SceneSettings"/>. The A1111 texts here are written by hand from its create_infotext (processing.py) and
/// parse_generation_parameters (infotext_utils.py).
/// </summary>
public sealed class SceneSettingsTests
{
    /// <summary>An A1111 1.10 txt2img + hires fix infotext with a LoRA and an embedding, as its web UI writes one.</summary>
    private const string A1111Text =
        "masterpiece, best quality, 1girl, (red hair:1.2), looking at viewer,\n" +
        "  standing in the rain <lora:add_detail:0.5>\n" +
        "Negative prompt: lowres, bad anatomy, (worst quality:1.4), easynegative\n" +
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3551209734, Size: 832x1216, " +
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.35, Clip skip: 2, Hires upscale: 1.5, " +
        "Hires steps: 12, Hires upscaler: 4x-UltraSharp, Lora hashes: \"add_detail: 7c6bad76eb54, more_details: 3b8aa1d351ef\", " +
        "TI hashes: \"easynegative: c74b4e810b03\", Emphasis: \"Original\", Version: v1.10.1";

    [Fact]
    public void ReadsAnA1111Infotext()
    {
        var settings = SceneSettings.Parse(A1111Text);

        Assert.Equal("masterpiece, best quality, 1girl, (red hair:1.2), looking at viewer,\nstanding in the rain <lora:add_detail:0.5>", settings.Prompt);
        Assert.Equal("lowres, bad anatomy, (worst quality:1.4), easynegative", settings.NegativePrompt);
        Assert.Equal(28, settings.Steps);
        Assert.Equal(("DPM++ 2M", "Karras"), (settings.Sampler, settings.ScheduleType));
        Assert.Equal(SchedulerKind.DpmPlusPlus2MKarras, settings.Scheduler);
        Assert.Equal(6.5f, settings.GuidanceScale);
        Assert.Equal(3551209734L, settings.Seed);
        Assert.Equal((832, 1216), (settings.Width, settings.Height));
        Assert.Equal(("31e35c80fc", "sd_xl_base_1.0"), (settings.ModelHash, settings.Model));
        Assert.Equal(new Dictionary<string, string> { ["add_detail"] = "7c6bad76eb54", ["more_details"] = "3b8aa1d351ef" }, settings.LoraHashes);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["Denoising strength"] = "0.35", ["Clip skip"] = "2", ["Hires upscale"] = "1.5", ["Hires steps"] = "12",
                ["Hires upscaler"] = "4x-UltraSharp", ["TI hashes"] = "easynegative: c74b4e810b03", ["Emphasis"] = "Original", ["Version"] = "v1.10.1",
            },
            settings.Extra);
        Assert.Null(settings.ReferenceName);
        Assert.Null(settings.Spacing);
        Assert.Equal(A1111Text, settings.Parameters);
    }

    [Theory]
    [InlineData("Euler a", null, SchedulerKind.EulerAncestral)]
    [InlineData("Euler a", "Automatic", SchedulerKind.EulerAncestral)]
    [InlineData("Euler", "Automatic", SchedulerKind.Euler)]
    [InlineData("Euler", "Uniform", SchedulerKind.Euler)]
    [InlineData("DDIM", null, SchedulerKind.Ddim)]
    [InlineData("LCM", "Automatic", SchedulerKind.Lcm)]
    // Before A1111 1.9 the schedule was part of the sampler's name, and plain "DPM++ 2M" had the model's own sigmas.
    [InlineData("DPM++ 2M", null, SchedulerKind.DpmPlusPlus2M)]
    [InlineData("DPM++ 2M Karras", null, SchedulerKind.DpmPlusPlus2MKarras)]
    // Since 1.9 Automatic is each sampler's default: Karras for DPM++ 2M.
    [InlineData("DPM++ 2M", "Automatic", SchedulerKind.DpmPlusPlus2MKarras)]
    [InlineData("DPM++ 2M", "Uniform", SchedulerKind.DpmPlusPlus2M)]
    [InlineData("DPM++ 2M", "Karras", SchedulerKind.DpmPlusPlus2MKarras)]
    [InlineData("dpm++ 2m karras", null, SchedulerKind.DpmPlusPlus2MKarras)]
    [InlineData("k_euler_a", null, SchedulerKind.EulerAncestral)]
    [InlineData("DpmPlusPlus2MKarras", null, SchedulerKind.DpmPlusPlus2MKarras)]
    [InlineData("EulerAncestral", "Automatic", SchedulerKind.EulerAncestral)]
    [InlineData("DpmPlusPlus2M", "Uniform", SchedulerKind.DpmPlusPlus2M)]
    [InlineData("Euler", "Karras", null)]
    [InlineData("DPM++ 2M", "Exponential", null)]
    [InlineData("DPM++ SDE", "Karras", null)]
    [InlineData("DpmPlusPlus2M", "Karras", null)]
    [InlineData("DPM++ 2M Karras", "Uniform", null)]
    [InlineData("2", null, null)]
    [InlineData("Heun", null, null)]
    public void MapsA1111SamplerNamesToSchedulers(string sampler, string? scheduleType, SchedulerKind? expected)
    {
        Assert.Equal(expected, SamplerNames.FromA1111(sampler, scheduleType));
    }

    [Fact]
    public void ReadsMnemosynesLoraWeightsBesideTheHashes_InOrder()
    {
        var settings = SceneSettings.Parse("a knight\nSteps: 3, Seed: 1, Lora hashes: \"kira: 0123456789ab, film: ba9876543210\", Lora weights: \"kira: 0.8, film: -0.5\"");

        Assert.Equal(["kira", "film"], settings.LoraHashes.Keys);
        Assert.Equal(new Dictionary<string, float> { ["kira"] = 0.8f, ["film"] = -0.5f }, settings.LoraWeights);
        Assert.Empty(settings.Extra);
        Assert.Empty(settings.Loras);
        Assert.Null(settings.LoraFolder);
        var e = Assert.Throws<InvalidDataException>(() => SceneSettings.Parse("a knight\nSteps: 3, Lora hashes: \"kira: 0123456789ab\", Lora weights: \"kira: strong\""));
        Assert.Contains("Lora weights gives kira 'strong', which is not a number", e.Message);
    }

    [Fact]
    public void EverySchedulerIsWrittenUnderNamesThatReadBackAsIt()
    {
        foreach (var kind in Enum.GetValues<SchedulerKind>())
        {
            var (sampler, schedule) = SamplerNames.ToA1111(kind);
            Assert.Equal(kind, SamplerNames.FromA1111(sampler, schedule));
        }
        Assert.Equal(("Euler a", "Automatic"), SamplerNames.ToA1111(SchedulerKind.EulerAncestral));
        Assert.Equal(("DPM++ 2M", "Karras"), SamplerNames.ToA1111(SchedulerKind.DpmPlusPlus2MKarras));
        Assert.Equal(("DDIM", "Automatic"), SamplerNames.ToA1111(SchedulerKind.Ddim));
        Assert.Equal(("LCM", "Automatic"), SamplerNames.ToA1111(SchedulerKind.Lcm));
    }

    [Theory]
    [InlineData("plain value", "plain value")]
    [InlineData("a, b", "\"a, b\"")]
    [InlineData("key: value", "\"key: value\"")]
    [InlineData("say \"hi\", then\\go", "\"say \\\"hi\\\", then\\\\go\"")]
    [InlineData("two\nlines", "\"two\\nlines\"")]
    [InlineData("bell\u0007, é ✓", "\"bell\\u0007, é ✓\"")]
    [InlineData("quote \" without comma", "quote \" without comma")]
    public void QuotesValuesAsA1111Does(string value, string written)
    {
        Assert.Equal(written, Infotext.Quote(value));
        Assert.Equal(value, Infotext.Unquote(written));
    }

    [Fact]
    public void KeepsAQuotedValueWithCommasAndColonsWhole()
    {
        var (_, _, settings) = Infotext.Parse("a cat\nSteps: 2, Reference: \"kira, the: \\\"knight\\\"\", Seed: 3, Size: 64x64");
        Assert.Equal(["Steps", "Reference", "Seed", "Size"], settings.Select(pair => pair.Key));
        Assert.Equal("kira, the: \"knight\"", settings[1].Value);
    }

    [Fact]
    public void ALastLineOfFewerThanThreeSettingsIsPartOfThePrompt()
    {
        var settings = SceneSettings.Parse("a cat\nwearing: a hat, smiling");
        Assert.Equal("a cat\nwearing: a hat, smiling", settings.Prompt);
        Assert.Null(settings.NegativePrompt);
        Assert.Null(settings.Steps);
        Assert.Empty(settings.Extra);
    }

    /// <summary>
    /// A hostile file's long line without a colon: read in linear time. A backtracking reading of A1111's pattern takes
    /// time quadratic in the length: about a minute for these 100,000 characters, hours for a megabyte.
    /// </summary>
    [Fact]
    public void ReadsALongLineWithoutAColonQuickly()
    {
        var line = string.Concat(Enumerable.Repeat("word word ", 10_000));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var settings = SceneSettings.Parse("a cat\n" + line);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Equal("a cat\n" + line.Trim(), settings.Prompt);
    }

    [Fact]
    public void AMultiLineNegativePromptAndAnEmptyOneAreKept()
    {
        var multi = SceneSettings.Parse("a cat\nNegative prompt: blurry,\nlowres\nSteps: 2, Sampler: Euler, Seed: 1");
        Assert.Equal(("a cat", "blurry,\nlowres"), (multi.Prompt, multi.NegativePrompt));
        var empty = SceneSettings.Parse("a cat\nNegative prompt: \nSteps: 2, Sampler: Euler, Seed: 1");
        Assert.Equal("", empty.NegativePrompt);
    }

    [Fact]
    public void AValueOfTheWrongKindIsOneErrorNamingEach()
    {
        var e = Assert.Throws<InvalidDataException>(() => SceneSettings.Parse("a cat\nSteps: two, Sampler: Euler, Seed: 1.5, Size: 64 by 64, CFG scale: 7"));
        Assert.Equal(
            "In the settings text, Size is '64 by 64', which is not a size WIDTHxHEIGHT (for example 1024x768); Steps is 'two', which is not a whole number; " +
            "Seed is '1.5', which is not a whole number.",
            e.Message);
    }

    [Theory]
    [MemberData(nameof(Scenes))]
    public void WritesA1111sLayoutAndReadsEverySettingBack(Scene scene, string expected)
    {
        var text = scene.ParametersText();
        Assert.Equal(expected, text);

        var settings = SceneSettings.Parse(text);
        Assert.Equal(scene.Prompt, settings.Prompt);
        Assert.Equal(scene.NegativePrompt, settings.NegativePrompt);
        Assert.Equal(scene.Steps, settings.Steps);
        Assert.Equal(scene.Scheduler, settings.Scheduler);
        Assert.Equal(scene.Spacing, settings.Spacing);
        Assert.Equal(scene.GuidanceScale, settings.GuidanceScale);
        Assert.Equal(scene.GuidanceCutoff < 1 ? scene.GuidanceCutoff : null, settings.GuidanceCutoff);
        Assert.Equal(scene.Seed, settings.Seed);
        Assert.Equal((scene.Width, scene.Height), (settings.Width, settings.Height));
        Assert.Equal((scene.ModelHash, scene.Model), (settings.ModelHash, settings.Model));
        Assert.Equal(scene.ReferenceName, settings.ReferenceName);
        Assert.Equal(scene.ReferenceName is null ? null : new[] { scene.ReferenceWeight }, settings.ReferenceWeight);
        Assert.Equal(scene.DeepCacheInterval > 1 ? scene.DeepCacheInterval : null, settings.DeepCacheInterval);
        Assert.Equal(scene.Decoder == SceneDecoder.Full ? null : scene.Decoder, settings.Decoder);
        Assert.Equal(scene.PromptStyle == PromptStyle.A1111 ? null : scene.PromptStyle, settings.PromptStyle);
    }

    public static TheoryData<Scene, string> Scenes() => new()
    {
        {
            Made() with { NegativePrompt = "blurry, lowres", ReferenceName = "kira, the knight", ReferenceWeight = 0.55f },
            "a cat, in a red hat\nNegative prompt: blurry, lowres\n" +
            "Steps: 4, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 4294967295, Size: 96x64, Model hash: 0123456789, Model: \"tiny: b\", " +
            "Reference: \"kira, the knight\", Reference weight: 0.55, Generator: Mnemosyne"
        },
        {
            Made() with { Scheduler = SchedulerKind.DpmPlusPlus2M, NegativePrompt = "", GuidanceCutoff = 0.4, Spacing = TimestepSpacing.Trailing, DeepCacheInterval = 3, Decoder = SceneDecoder.Tiny, Precision = WeightPrecision.Int8, ModelHash = null, PromptStyle = PromptStyle.Diffusers },
            "a cat, in a red hat\nNegative prompt: \n" +
            "Steps: 4, Sampler: DPM++ 2M, Schedule type: Uniform, CFG scale: 7.5, Seed: 4294967295, Size: 96x64, Model: \"tiny: b\", Prompt style: Diffusers, Timestep spacing: trailing, " +
            "CFG cutoff: 0.4, Precision: Int8, Decoder: Tiny, DeepCache interval: 3, Generator: Mnemosyne"
        },
        {
            Made() with { Scheduler = SchedulerKind.DpmPlusPlus2MKarras, GuidanceScale = 0.1f + 0.2f },
            "a cat, in a red hat\n" +
            "Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 0.3, Seed: 4294967295, Size: 96x64, Model hash: 0123456789, Model: \"tiny: b\", Generator: Mnemosyne"
        },
        {
            Made() with { Scheduler = SchedulerKind.Ddim, GuidanceScale = 1.23456f },
            "a cat, in a red hat\n" +
            "Steps: 4, Sampler: DDIM, Schedule type: Automatic, CFG scale: 1.23456, Seed: 4294967295, Size: 96x64, Model hash: 0123456789, Model: \"tiny: b\", Generator: Mnemosyne"
        },
    };

    private static Scene Made() => new()
    {
        Image = new RgbImage(1, 1, [1, 2, 3]),
        Prompt = "a cat, in a red hat",
        Seed = uint.MaxValue,
        Steps = 4,
        Scheduler = SchedulerKind.EulerAncestral,
        GuidanceScale = 7.5f,
        Width = 96,
        Height = 64,
        Model = "tiny: b",
        ModelHash = "0123456789",
        FinalLatents = new FloatTensor(new float[4], [1, 4, 1, 1]),
    };

    [Fact]
    public void ReadsTheSettingsOfASavedPicture_AndRefusesFilesWithoutThem()
    {
        using var folder = new TempFolder();
        var image = new RgbImage(2, 2, new byte[12]);
        var saved = folder.File("scene.png");
        PngFile.Save(saved, image, [new PngTextEntry("Software", "x"), PngTextEntry.Parameters(A1111Text)]);
        Assert.Equal(3551209734L, SceneSettings.Read(saved).Seed);

        var bare = folder.File("bare.png");
        PngFile.Save(bare, image);
        var e = Assert.Throws<InvalidDataException>(() => SceneSettings.Read(bare));
        Assert.Equal($"{bare} has no 'parameters' text, so it records no settings (saved by a program that does not write them, or stripped since).", e.Message);

        var text = folder.File("notes.png");
        File.WriteAllText(text, "Steps: 2, Sampler: Euler, Seed: 1");
        Assert.Contains("not a PNG file", Assert.Throws<InvalidDataException>(() => SceneSettings.Read(text)).Message);

        var cut = folder.File("cut.png");
        File.WriteAllBytes(cut, File.ReadAllBytes(saved)[..^30]);
        Assert.Contains("ends before its IEND", Assert.Throws<InvalidDataException>(() => SceneSettings.Read(cut)).Message);

        var wrong = folder.File("wrong.png");
        PngFile.Save(wrong, image, [PngTextEntry.Parameters("a cat\nSteps: many, Sampler: Euler, Seed: 1")]);
        Assert.Equal($"{wrong}: In the settings text, Steps is 'many', which is not a whole number.", Assert.Throws<InvalidDataException>(() => SceneSettings.Read(wrong)).Message);
    }

    [Fact]
    public void RefusesACompressedParametersBombBeforeInflatingIt()
    {
        using var folder = new TempFolder();
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            zlib.Write(new byte[2 * 1024 * 1024]);
        var plain = PngFile.Encode(new RgbImage(2, 2, new byte[12]));
        using var png = new MemoryStream();
        png.Write(plain.AsSpan(0, 33));
        TestImages.WritePngChunk(png, "zTXt", [.. "parameters\0\0"u8, .. compressed.ToArray()]);
        png.Write(plain.AsSpan(33));
        var bomb = folder.File("bomb.png");
        File.WriteAllBytes(bomb, png.ToArray());

        var e = Assert.Throws<InvalidDataException>(() => SceneSettings.Read(bomb));
        Assert.Contains("zTXt chunk inflates to over 1048576 bytes", e.Message);
    }
}
