using System.Globalization;
using System.Text;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>A finished scene: the picture and every setting that made it.</summary>
public sealed record Scene
{
    public required RgbImage Image { get; init; }
    public required string Prompt { get; init; }
    public string? NegativePrompt { get; init; }
    public required long Seed { get; init; }
    public required int Steps { get; init; }
    public required SchedulerKind Scheduler { get; init; }
    /// <summary>The timestep spacing the request asked for; null = the scheduler config's.</summary>
    public TimestepSpacing? Spacing { get; init; }
    public required float GuidanceScale { get; init; }
    /// <summary>The fraction of the steps after which guidance stopped (<see cref="SceneRequest.GuidanceCutoff"/>); 1 = every step guided.</summary>
    public double GuidanceCutoff { get; init; } = 1;
    public required int Width { get; init; }
    public required int Height { get; init; }
    public string? ReferenceName { get; init; }
    public float ReferenceWeight { get; init; }
    public required string Model { get; init; }
    /// <summary>The engine's weight precision: an Int8 picture differs slightly from the Float32 one of the same settings.</summary>
    public WeightPrecision Precision { get; init; }
    public string? InitialNoisePath { get; init; }
    /// <summary>The starting picture of an img2img or inpainting scene; null for text-to-image.</summary>
    public string? InitImagePath { get; init; }
    /// <summary>The inpainting mask; null otherwise.</summary>
    public string? MaskPath { get; init; }
    /// <summary>How far the scene went from its starting picture (<see cref="SceneRequest.Strength"/>); null for text-to-image.</summary>
    public double? Strength { get; init; }
    /// <summary>DeepCache's interval (1 = off): pictures made with it differ from the whole UNet's.</summary>
    public int DeepCacheInterval { get; init; } = 1;
    /// <summary>Which network decoded the picture: a Tiny one differs a little from the Full (VAE) one of the same latents.</summary>
    public SceneDecoder Decoder { get; init; }
    public TimeSpan Elapsed { get; init; }
    /// <summary>The latents before the VAE (still scaled), for research and tests.</summary>
    public required FloatTensor FinalLatents { get; init; }
    /// <summary>What the user should know, e.g. how many prompt tokens were cut off.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The settings as one text, in the layout other Stable Diffusion tools write to PNGs.</summary>
    public string ParametersText()
    {
        var inv = CultureInfo.InvariantCulture;
        var text = new StringBuilder(Prompt);
        if (NegativePrompt is not null) text.Append("\nNegative prompt: ").Append(NegativePrompt);
        text.Append("\nSteps: ").Append(Steps.ToString(inv))
            .Append(", Sampler: ").Append(Scheduler);
        if (Spacing is { } spacing) text.Append(", Timestep spacing: ").Append(spacing.ToString().ToLowerInvariant());
        text.Append(", CFG scale: ").Append(GuidanceScale.ToString("0.###", inv));
        // Every digit: the cutoff decides a step count, so a rounded value could make another picture.
        if (GuidanceCutoff < 1) text.Append(", CFG cutoff: ").Append(GuidanceCutoff.ToString("R", inv));
        text.Append(", Seed: ").Append(Seed.ToString(inv))
            .Append(", Size: ").Append(Width.ToString(inv)).Append('x').Append(Height.ToString(inv))
            .Append(", Model: ").Append(Model);
        if (Precision != WeightPrecision.Float32) text.Append(", Precision: ").Append(Precision);
        if (Decoder != SceneDecoder.Full) text.Append(", Decoder: ").Append(Decoder);
        if (ReferenceName is not null)
            text.Append(", Reference: ").Append(ReferenceName)
                .Append(", Reference weight: ").Append(ReferenceWeight.ToString("0.###", inv));
        if (InitialNoisePath is not null) text.Append(", Initial noise: ").Append(Path.GetFileName(InitialNoisePath));
        if (InitImagePath is not null) text.Append(", Init image: ").Append(Path.GetFileName(InitImagePath));
        if (MaskPath is not null) text.Append(", Mask: ").Append(Path.GetFileName(MaskPath));
        if (Strength is { } strength) text.Append(", Denoising strength: ").Append(strength.ToString("R", inv));
        if (DeepCacheInterval > 1) text.Append(", DeepCache interval: ").Append(DeepCacheInterval.ToString(inv));
        text.Append(", Generator: Mnemosyne");
        return text.ToString();
    }
}

/// <summary>Where a scene is: step i of n, time spent, and the estimate of what is left.</summary>
public sealed record SceneProgress(string Prompt, int Step, int TotalSteps, TimeSpan Elapsed, TimeSpan? Remaining)
{
    /// <summary>The UNet timestep of the step just taken (e.g. 999 first with trailing spacing).</summary>
    public float Timestep { get; init; }

    /// <summary>The live preview file (<see cref="PreviewSettings"/>) once one has been written; null without previews.</summary>
    public string? PreviewPath { get; init; }

    /// <summary>The step whose denoised estimate the preview file shows.</summary>
    public int? PreviewStep { get; init; }
}
