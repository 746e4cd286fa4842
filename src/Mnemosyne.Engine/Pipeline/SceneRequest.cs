using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>Everything that decides a scene. Same request and seed → the same image.</summary>
public sealed record SceneRequest
{
    public const int MaxSide = 4096;
    public const int MaxSteps = 1000;
    /// <summary>PyTorch's generator seeds its Mersenne Twister with the low 32 bits only, so larger seeds would repeat smaller ones.</summary>
    public const long MaxSeed = uint.MaxValue;

    public required string Prompt { get; init; }
    /// <summary>null = not given (SDXL then uses zeros); "" is encoded like any prompt.</summary>
    public string? NegativePrompt { get; init; }
    /// <summary>
    /// How the prompts are read: <see cref="PromptStyle.A1111"/> (emphasis, BREAK, any length) or
    /// <see cref="PromptStyle.Diffusers"/> (plain text cut to 77 tokens, diffusers' own scene).
    /// </summary>
    public PromptStyle PromptStyle { get; init; } = PromptStyle.A1111;
    public CharacterReference? Reference { get; init; }
    /// <summary>IP-Adapter scale: 0 ignores the reference, 1 follows it strongly.</summary>
    public float ReferenceWeight { get; init; } = 0.6f;
    /// <summary>
    /// Several references (characters), each with its weight and an optional region: instead of <see cref="Reference"/>.
    /// Each attends over its own tokens in every cross-attention, and its term is masked and added, as diffusers does for
    /// one adapter's images with <c>ip_adapter_masks</c>.
    /// </summary>
    public IReadOnlyList<SceneReference>? References { get; init; }
    /// <summary>Which cross-attentions the references act in (diffusers' set_ip_adapter_scale): every one, an InstantStyle preset, or a table.</summary>
    public IpAdapterBlockScales ReferenceBlocks { get; init; } = IpAdapterBlockScales.All;
    /// <summary>
    /// The references act in the steps from <see cref="ReferenceStart"/> to <see cref="ReferenceEnd"/> (fractions of the
    /// steps run): step i of n acts unless i/n &lt; start or (i+1)/n &gt; end, diffusers' rule for controlnet_guidance_start/end.
    /// </summary>
    public double ReferenceStart { get; init; }
    public double ReferenceEnd { get; init; } = 1;

    /// <summary>The references the scene uses: <see cref="References"/>, or <see cref="Reference"/> at <see cref="ReferenceWeight"/>.</summary>
    public IReadOnlyList<SceneReference> ReferencesUsed
        => References ?? (Reference is { } reference ? [new SceneReference(reference, ReferenceWeight)] : []);
    public required long Seed { get; init; }
    public int Steps { get; init; } = 20;
    public float GuidanceScale { get; init; } = 5.0f;
    /// <summary>
    /// Where classifier-free guidance stops, as a fraction of the steps: it runs through the step at index
    /// ⌊Steps × GuidanceCutoff⌋ (counted from 0), and the steps after it run the conditional branch alone, half
    /// the UNet work each, as diffusers' SDXLCFGCutoffCallback(cutoff_step_ratio) does. 1 guides every step.
    /// </summary>
    public double GuidanceCutoff { get; init; } = 1;
    public SchedulerKind Scheduler { get; init; } = SchedulerKind.Euler;
    /// <summary>Overrides the scheduler config's timestep_spacing; null keeps it (leading for SDXL base).</summary>
    public TimestepSpacing? Spacing { get; init; }
    public int Width { get; init; } = 1024;
    public int Height { get; init; } = 1024;
    /// <summary>Explicit initial noise [1, 4, H/8, W/8] (unscaled, as torch.randn gives it) instead of the seed's.</summary>
    public FloatTensor? InitialNoise { get; init; }
    public string? InitialNoisePath { get; init; }
    /// <summary>
    /// The picture to start from (img2img, or inpainting with <see cref="Mask"/>): exactly <see cref="Width"/> ×
    /// <see cref="Height"/> (diffusers would resize it; Mnemosyne refuses another size rather than stretch it).
    /// </summary>
    public RgbImage? InitImage { get; init; }
    public string? InitImagePath { get; init; }
    /// <summary>
    /// Latents to start from instead of a picture (img2img without the VAE encoder, as diffusers' img2img pipeline takes
    /// a 4-channel image): [1, 4, Height/8, Width/8], scaled as the sampler leaves them. <see cref="HiresFix"/>'s Latent
    /// upscale starts its second pass from these.
    /// </summary>
    public FloatTensor? InitLatents { get; init; }
    /// <summary>With <see cref="InitImage"/>: where the picture is redrawn (white, grey ≥ 128), the rest kept (black); the picture's size.</summary>
    public RgbImage? Mask { get; init; }
    public string? MaskPath { get; init; }
    /// <summary>
    /// How far from <see cref="InitImage"/> the scene may go, 0 to 1: the last ⌊Steps × Strength⌋ steps run (at least
    /// one), from the picture noised to the first of them's level; 1 starts from noise (keeping only a mask's outside).
    /// </summary>
    public double Strength { get; init; } = DefaultStrength;
    public const double DefaultStrength = 0.75;

    /// <summary>Full (the VAE) or Tiny (the engine's tiny decoder, which it must have been opened with).</summary>
    public SceneDecoder Decoder { get; init; }

    /// <summary>LoRAs applied to the UNet and the text encoders, each at its own weight; switching them keeps the engine open.</summary>
    public IReadOnlyList<LoraRequest> Loras { get; init; } = [];

    public const int MaxDeepCacheInterval = 10;

    /// <summary>
    /// DeepCache: the whole UNet runs every this many steps and a shallow part of it on the steps between
    /// (<see cref="DeepCache"/>); 1 runs the whole UNet every step.
    /// </summary>
    public int DeepCacheInterval { get; init; } = 1;

    /// <summary>
    /// How many of the steps are guided (0 when GuidanceScale ≤ 1). In double precision, as Python computes
    /// int(num_timesteps * cutoff_step_ratio): 10 steps at a cutoff of 0.7 guide 8 (0.7f widened to double would give 7).
    /// </summary>
    public int GuidedSteps => GuidedStepsOf(Steps);

    /// <summary>How many of <paramref name="steps"/> steps run are guided (<see cref="GuidedSteps"/> for another count).</summary>
    public int GuidedStepsOf(int steps) => GuidanceScale > 1 ? Math.Min(steps, (int)(steps * GuidanceCutoff) + 1) : 0;

    /// <summary>Steps an SDXL-Lightning-class 4-step UNet is distilled for.</summary>
    public const int FewStepUnetSteps = 4;

    /// <summary>
    /// This request with the settings a few-step UNet (SDXL-Lightning's, loaded with
    /// <see cref="EngineOptions.UnetWeightsPath"/>) was distilled for: <paramref name="sampling"/>, its manifest's
    /// (<see cref="EngineOptions.UnetSampling"/>), or when that is unknown the 4-step UNet's: Euler with trailing
    /// timesteps (999, 749, 499, 249) and no classifier-free guidance. The reference still applies.
    /// </summary>
    public SceneRequest ForFewStepUnet(SchedulerSettings? sampling = null) => sampling is null
        ? this with { Steps = FewStepUnetSteps, Scheduler = SchedulerKind.Euler, Spacing = TimestepSpacing.Trailing, GuidanceScale = 0 }
        : this with { Steps = sampling.Steps, Scheduler = sampling.Kind, Spacing = sampling.Spacing, GuidanceScale = sampling.GuidanceScale };

    /// <summary>Checks the request; the message says what is wrong and what is allowed.</summary>
    public void Validate()
    {
        if (Prompt is null) throw new ArgumentNullException(nameof(Prompt), "A prompt is required.");
        CheckText(Prompt, nameof(Prompt), "prompt");
        if (NegativePrompt is not null) CheckText(NegativePrompt, nameof(NegativePrompt), "negative prompt");
        if (!Enum.IsDefined(PromptStyle))
            throw new ArgumentOutOfRangeException(nameof(PromptStyle), PromptStyle, $"PromptStyle must be one of {string.Join(", ", Enum.GetNames<PromptStyle>())}.");
        CheckSide(Width, nameof(Width));
        CheckSide(Height, nameof(Height));
        if (Steps is < 1 or > MaxSteps)
            throw new ArgumentOutOfRangeException(nameof(Steps), Steps, $"Steps must be between 1 and {MaxSteps}.");
        if (DeepCacheInterval is < 1 or > MaxDeepCacheInterval)
            throw new ArgumentOutOfRangeException(nameof(DeepCacheInterval), DeepCacheInterval,
                $"DeepCacheInterval must be from 1 (off: the whole UNet every step) to {MaxDeepCacheInterval}.");
        if (Spacing is { } spacing && !Enum.IsDefined(spacing))
            throw new ArgumentOutOfRangeException(nameof(Spacing), spacing, $"Spacing must be one of {string.Join(", ", Enum.GetNames<TimestepSpacing>())}, or null for the scheduler config's.");
        if (!float.IsFinite(GuidanceScale) || GuidanceScale < 0 || GuidanceScale > 100)
            throw new ArgumentOutOfRangeException(nameof(GuidanceScale), GuidanceScale, "GuidanceScale must be a number from 0 to 100 (values up to 1 turn guidance off).");
        if (!double.IsFinite(GuidanceCutoff) || GuidanceCutoff < 0 || GuidanceCutoff > 1)
            throw new ArgumentOutOfRangeException(nameof(GuidanceCutoff), GuidanceCutoff,
                "GuidanceCutoff must be from 0 to 1: the fraction of the steps after which guidance stops (1 guides every step).");
        if (!double.IsFinite(ReferenceStart) || !double.IsFinite(ReferenceEnd) || ReferenceStart < 0 || ReferenceEnd > 1 || ReferenceStart >= ReferenceEnd)
            throw new ArgumentOutOfRangeException(nameof(ReferenceStart), new[] { ReferenceStart, ReferenceEnd },
                "ReferenceStart and ReferenceEnd are fractions of the steps, 0 ≤ start < end ≤ 1: the references act from the one to the other.");
        if (!float.IsFinite(ReferenceWeight) || ReferenceWeight < 0 || ReferenceWeight > 2)
            throw new ArgumentOutOfRangeException(nameof(ReferenceWeight), ReferenceWeight, "ReferenceWeight must be from 0 to 2 (0 ignores the reference).");
        CheckReferences();
        foreach (var lora in Loras ?? throw new ArgumentNullException(nameof(Loras))) lora.Validate();
        if (!Enum.IsDefined(Decoder))
            throw new ArgumentOutOfRangeException(nameof(Decoder), Decoder, $"Decoder must be one of {string.Join(", ", Enum.GetNames<SceneDecoder>())}.");
        if (Seed is < 0 or > MaxSeed)
            throw new ArgumentOutOfRangeException(nameof(Seed), Seed,
                $"Seed must be from 0 to {MaxSeed}: PyTorch's generator keeps only the low 32 bits, so a larger seed would repeat a smaller one's picture.");
        if (InitialNoise is { } noise && !noise.Shape.SequenceEqual([1, 4, Height / 8, Width / 8]))
            throw new ArgumentException(
                $"The initial noise has shape [{string.Join(", ", noise.Shape)}] but a {Width}×{Height} scene needs [1, 4, {Height / 8}, {Width / 8}].",
                nameof(InitialNoise));
        CheckPicture();
        // Caught here rather than as a NaN picture after the whole scene.
        if (InitialNoise is { } values && FloatTensorOps.FirstNonFinite(values.Data) is { } bad)
            throw new ArgumentException(
                $"The initial noise holds {values.Data[bad]} at value {bad} of {values.Data.Length}; noise must be finite numbers. Make the file again.",
                nameof(InitialNoise));
    }

    private void CheckReferences()
    {
        if (References is not { } references) return;
        if (Reference is not null)
            throw new ArgumentException("Give one Reference or several References, not both.", nameof(References));
        if (references.Count == 0)
            throw new ArgumentException("References is empty: give at least one, or leave it out.", nameof(References));
        ArgumentNullException.ThrowIfNull(ReferenceBlocks, nameof(ReferenceBlocks));
        foreach (var (use, i) in references.Select((r, i) => (r, i + 1)))
        {
            // The parameter names the reference ("References[0]"), so that a caller can point at it.
            var which = $"{nameof(References)}[{i - 1}]";
            if (use?.Reference is null) throw new ArgumentNullException(which, $"Reference {i} is missing.");
            if (!float.IsFinite(use.Weight) || use.Weight < 0 || use.Weight > 2)
                throw new ArgumentOutOfRangeException(which, use.Weight, $"The weight of reference {i} ('{use.Reference.Name}') must be from 0 to 2 (0 ignores it).");
            if (use.Mask is not { } mask) continue;
            if (mask.Width != Width || mask.Height != Height)
                throw new ArgumentException(
                    $"The mask of reference {i} ('{use.Reference.Name}', {mask.Source}) is {mask.Width}×{mask.Height} but the scene is {Width}×{Height}: " +
                    "give a mask of the scene's size.", which);
            if (mask.IsEmpty)
                throw new ArgumentException(
                    $"The mask of reference {i} ('{use.Reference.Name}', {mask.Source}) is all black, so the reference would act nowhere: white marks where it acts.", which);
        }
    }

    private void CheckPicture()
    {
        if (!double.IsFinite(Strength) || Strength < 0 || Strength > 1)
            throw new ArgumentOutOfRangeException(nameof(Strength), Strength, "Strength must be from 0 to 1: how far the scene may go from the starting picture (1 redraws it from noise).");
        if (InitLatents is { } start)
        {
            if (InitImage is not null || Mask is not null)
                throw new ArgumentException("A scene starts from a picture or from latents, not both: give InitImage or InitLatents.", nameof(InitLatents));
            if (!start.Shape.SequenceEqual([1, 4, Height / 8, Width / 8]))
                throw new ArgumentException(
                    $"The starting latents have shape [{string.Join(", ", start.Shape)}] but a {Width}×{Height} scene needs [1, 4, {Height / 8}, {Width / 8}].", nameof(InitLatents));
            if (FloatTensorOps.FirstNonFinite(start.Data) is not null)
                throw new ArgumentException("The starting latents hold a value that is not a finite number.", nameof(InitLatents));
        }
        else if (InitImage is not { } picture)
        {
            if (Mask is not null)
                throw new ArgumentException("A mask says which part of a starting picture to redraw: give the picture (InitImage) too.", nameof(Mask));
            return;
        }
        else
        {
            if (picture.Width != Width || picture.Height != Height)
                throw new ArgumentException(
                    $"The starting picture is {picture.Width}×{picture.Height} but the scene is {Width}×{Height}: give a picture of the scene's size " +
                    "(or leave out Width and Height to take the picture's), or resize it first.", nameof(InitImage));
            if (Mask is { } mask && (mask.Width != picture.Width || mask.Height != picture.Height))
                throw new ArgumentException(
                    $"The mask is {mask.Width}×{mask.Height} but the starting picture is {picture.Width}×{picture.Height}: the mask must be the picture's size.", nameof(Mask));
        }
        if (ImageToImage.StepsRun(Steps, Strength) < 1)
            throw new ArgumentOutOfRangeException(nameof(Strength), Strength,
                $"Strength {Strength.ToString(System.Globalization.CultureInfo.InvariantCulture)} of {Steps} steps runs none (⌊Steps × Strength⌋ = 0): raise Strength or Steps.");
        if (InitialNoise is not null)
            throw new ArgumentException("Initial noise replaces the seed's noise of a scene made from text alone; a scene from a starting picture draws its noise from the seed. Give one or the other.", nameof(InitialNoise));
    }

    /// <summary>
    /// Text that is not valid Unicode, or holds control characters other than tab and line breaks or
    /// noncharacters (U+FFFE, U+FDD0…), comes from a binary file or a wrong encoding; a NUL could not even be
    /// saved in the PNG's text chunk, and Unicode normalization refuses a noncharacter.
    /// </summary>
    /// <param name="name">The setting, for the exception's ParamName.</param>
    /// <param name="what">The text as the user knows it ("prompt", "reference name").</param>
    /// <exception cref="ArgumentException">The text is one of those.</exception>
    public static void CheckText(string text, string name, string what)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                CheckNoncharacter(char.ConvertToUtf32(c, text[i + 1]), i, name, what);
                i++;
                continue;
            }
            CheckNoncharacter(c, i, name, what);
            if (char.IsSurrogate(c))
                throw new ArgumentException(
                    $"The {what} has an unpaired UTF-16 surrogate at position {i + 1}, so it is not valid Unicode text; type it again, or read its file with the right encoding.", name);
            if (char.IsControl(c) && c is not ('\t' or '\n' or '\r'))
                throw new ArgumentException(
                    $"The {what} has the control character U+{(int)c:X4} at position {i + 1}; remove it (was a binary file, or a file in another encoding, read as text?).", name);
        }
    }

    private static void CheckNoncharacter(int codePoint, int index, string name, string what)
    {
        if ((codePoint & 0xFFFE) == 0xFFFE || codePoint is >= 0xFDD0 and <= 0xFDEF)
            throw new ArgumentException(
                $"The {what} has the noncharacter U+{codePoint:X4} at position {index + 1}, which Unicode reserves and never uses as text; " +
                "remove it (was a file in another encoding, or with a reversed byte-order mark, read as text?).", name);
    }

    private static void CheckSide(int value, string name)
    {
        if (value < 64 || value > MaxSide || value % 8 != 0)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a multiple of 8 from 64 to {MaxSide}.");
    }
}

/// <summary>One reference of a scene: the character, its weight (IP-Adapter scale) and where it acts (null: everywhere).</summary>
public sealed record SceneReference(CharacterReference Reference, float Weight = 0.6f, ReferenceMask? Mask = null);
