using System.Globalization;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// A finished scene: the picture and every setting that made it. Its JSON holds its pixels' and
/// latents' sizes, not their values (see <see cref="RgbImage.Rgb"/>); <see cref="ToPng"/> gives the
/// picture when it is wanted.
/// </summary>
public sealed record Scene
{
    public required RgbImage Image { get; init; }
    public required string Prompt { get; init; }
    public string? NegativePrompt { get; init; }
    /// <summary>How the prompts were read (<see cref="SceneRequest.PromptStyle"/>).</summary>
    public PromptStyle PromptStyle { get; init; }
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
    /// <summary>
    /// What else decided the references, when anything did: each reference's weight and mask (several references), the
    /// blocks they act in, the steps they act in; null for one reference everywhere and always.
    /// </summary>
    public string? ReferenceControls { get; init; }
    public required string Model { get; init; }
    /// <summary>The LoRAs applied, in order, with their short hashes and weights.</summary>
    public IReadOnlyList<AppliedLora> Loras { get; init; } = [];

    /// <summary>A1111's short hash of the model's weights file (<see cref="SceneEngine.ModelHash"/>); null when it could not be read.</summary>
    public string? ModelHash { get; init; }
    /// <summary>The engine's weight precision: an Int8 picture differs slightly from the Float32 one of the same settings.</summary>
    public WeightPrecision Precision { get; init; }
    public string? InitialNoisePath { get; init; }
    /// <summary>The starting picture of an img2img or inpainting scene; null for text-to-image.</summary>
    public string? InitImagePath { get; init; }
    /// <summary>The inpainting mask; null otherwise.</summary>
    public string? MaskPath { get; init; }
    /// <summary>How far the scene went from its starting picture (<see cref="SceneRequest.Strength"/>); null for text-to-image.</summary>
    public double? Strength { get; init; }
    /// <summary>The hires fix that made the scene (its Width and Height are the refined size); null otherwise.</summary>
    public HiresFix? Hires { get; init; }
    /// <summary>With <see cref="Hires"/>: the base scene's size, which A1111's text calls Size.</summary>
    public int? BaseWidth { get; init; }
    public int? BaseHeight { get; init; }
    /// <summary>DeepCache's interval (1 = off): pictures made with it differ from the whole UNet's.</summary>
    public int DeepCacheInterval { get; init; } = 1;
    /// <summary>Which network decoded the picture: a Tiny one differs a little from the Full (VAE) one of the same latents.</summary>
    public SceneDecoder Decoder { get; init; }
    public TimeSpan Elapsed { get; init; }
    /// <summary>The latents before the VAE (still scaled), for research and tests.</summary>
    public required FloatTensor FinalLatents { get; init; }
    /// <summary>What the user should know, e.g. how many prompt tokens were cut off.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    /// <summary>The PNG file the scene was saved to (Save-MnemosyneImage -PassThru); null for one not saved.</summary>
    public string? Path { get; init; }

    /// <summary>The picture as the PNG file Save-MnemosyneImage writes: its pixels and the settings text.</summary>
    public byte[] ToPng() => PngFile.Encode(Image, PngText());

    /// <summary>The text chunks a saved scene carries.</summary>
    public IReadOnlyList<PngTextEntry> PngText() => [PngTextEntry.Parameters(ParametersText())];

    /// <summary>
    /// The settings as one text, in AUTOMATIC1111's layout (<see cref="Infotext"/>) and with its names (sampler, schedule
    /// type, model hash), so that the tools that read A1111's PNGs read these; Mnemosyne's own settings follow A1111's as
    /// more "Key: value" pairs. <see cref="SceneSettings.Parse"/> reads it back.
    /// </summary>
    public string ParametersText()
    {
        var inv = CultureInfo.InvariantCulture;
        var (sampler, scheduleType) = SamplerNames.ToA1111(Scheduler);
        var settings = new List<KeyValuePair<string, string>>();
        void Add(string key, string value) => settings.Add(KeyValuePair.Create(key, value));
        Add("Steps", Steps.ToString(inv));
        Add("Sampler", sampler);
        Add("Schedule type", scheduleType);
        // Shortest round-trip forms: a rounded value could make another picture.
        Add("CFG scale", GuidanceScale.ToString(inv));
        Add("Seed", Seed.ToString(inv));
        // A1111's Size is the first pass's; the hires settings say how it was enlarged.
        Add("Size", (BaseWidth ?? Width).ToString(inv) + "x" + (BaseHeight ?? Height).ToString(inv));
        if (ModelHash is not null) Add("Model hash", ModelHash);
        Add("Model", Model);
        if (PromptStyle != PromptStyle.A1111) Add("Prompt style", PromptStyle.ToString());
        if (Spacing is { } spacing) Add("Timestep spacing", spacing.ToString().ToLowerInvariant());
        if (GuidanceCutoff < 1) Add("CFG cutoff", GuidanceCutoff.ToString("R", inv));
        if (Precision != WeightPrecision.Float32) Add("Precision", Precision.ToString());
        if (Decoder != SceneDecoder.Full) Add("Decoder", Decoder.ToString());
        if (ReferenceName is not null)
        {
            Add("Reference", ReferenceName);
            Add("Reference weight", ReferenceWeight.ToString(inv));
            if (ReferenceControls is not null) Add("Reference controls", ReferenceControls);
        }
        if (InitialNoisePath is not null) Add("Initial noise", System.IO.Path.GetFileName(InitialNoisePath));
        if (InitImagePath is not null) Add("Init image", System.IO.Path.GetFileName(InitImagePath));
        if (MaskPath is not null) Add("Mask", System.IO.Path.GetFileName(MaskPath));
        if (Strength is { } strength) Add("Denoising strength", strength.ToString("R", inv));
        if (Hires is { } hires)
        {
            Add("Hires upscale", hires.Scale.ToString("R", inv));
            Add("Hires upscaler", hires.Upscale == HiresUpscale.Latent ? "Latent" : "Lanczos");
        }
        if (DeepCacheInterval > 1) Add("DeepCache interval", DeepCacheInterval.ToString(inv));
        // A1111 writes the hashes (its weights live in the prompt's <lora:name:weight>); the weights are written beside them.
        if (Loras.Count > 0)
        {
            Add("Lora hashes", string.Join(", ", Loras.Select(l => $"{l.Name}: {l.Hash}")));
            Add("Lora weights", string.Join(", ", Loras.Select(l => $"{l.Name}: {l.Weight.ToString(inv)}")));
        }
        Add("Generator", "Mnemosyne");
        return Infotext.Format(Prompt, NegativePrompt, settings);
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
