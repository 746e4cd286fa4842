using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Reflection;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Text;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Makes one scene per input: a prompt given or piped as a string, or an object whose properties
/// name the parameters (Import-Csv rows, earlier scenes). A reference can be given or piped in.
/// Settings left out take the engine's defaults; a missing seed is drawn and recorded.
/// </summary>
[Cmdlet(VerbsCommon.New, "MnemosyneScene", HelpUri = HelpUris.Readme + "new-mnemosynescene")]
[OutputType(typeof(Scene))]
public sealed class NewMnemosyneSceneCommand : MnemosyneCmdlet
{
    /// <summary>Seeds drawn for scenes without one stay below 2^32, so that other tools can take them too.</summary>
    internal const long DrawnSeedLimit = 1L << 32;

    /// <summary>An empty or blank prompt is refused in ProcessRecord, as an error that names the value, not at binding.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Prompt { get; set; } = null!;

    /// <summary>Left out: SDXL's zero negative conditioning. An empty string is encoded like any prompt.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string? NegativePrompt { get; set; }

    /// <summary>A1111 (the default: emphasis, BREAK, long prompts in 75-token chunks) or Diffusers (plain text cut to 77 tokens).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    [ArgumentCompleter(typeof(PromptStyleCompleter))]
    public PromptStyle? PromptStyle { get; set; }

    /// <summary>
    /// Bound from the pipeline by type, so a piped reference and a positional prompt work together. Several (-Reference $kira, $ren)
    /// put several characters in one scene, each attending over its own tokens.
    /// </summary>
    [Parameter(ValueFromPipeline = true)]
    public CharacterReference[]? Reference { get; set; }

    /// <summary>One weight for every reference, or one per reference in -Reference's order (a CSV cell separates them with ';').</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public float[]? ReferenceWeight { get; set; }

    /// <summary>
    /// Where each reference acts, one per reference: a black-and-white picture of the scene's size (white inside), Left, Right,
    /// Top or Bottom (that half of the scene), or @{ X = …; Y = …; Width = …; Height = … } in pixels. A CSV cell separates them with ';'.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public object[]? ReferenceMask { get; set; }

    /// <summary>
    /// Which cross-attentions the references act in: All (the default), Style, Layout or StyleAndLayout (InstantStyle's blocks),
    /// or a table as diffusers' set_ip_adapter_scale takes it: @{ up = @{ block_0 = 0, 1, 0 } }.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public object? ReferenceBlocks { get; set; }

    /// <summary>The fraction of the steps after which the references begin to act (0, the default: from the first).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public double? ReferenceStart { get; set; }

    /// <summary>The fraction of the steps after which the references stop acting (1, the default: to the last).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public double? ReferenceEnd { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public long? Seed { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public int? Steps { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    [ArgumentCompleter(typeof(QualityCompleter))]
    public SceneQuality? Quality { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public float? GuidanceScale { get; set; }

    /// <summary>
    /// The fraction of the steps after which classifier-free guidance stops (diffusers' cutoff_step_ratio); the later
    /// steps run the UNet on the conditional branch alone. Double, as Python's float: the step count it gives must be Python's.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public double? GuidanceCutoff { get; set; }

    /// <summary>A SchedulerKind name, or AUTOMATIC1111's sampler name ('Euler a', 'DPM++ 2M Karras').</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    [SchedulerName]
    [ArgumentCompleter(typeof(SchedulerCompleter))]
    public SchedulerKind? Scheduler { get; set; }

    /// <summary>Overrides the scheduler config's timestep spacing; a scene's Spacing, so that a few-step scene piped back in is made again.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    [ArgumentCompleter(typeof(SpacingCompleter))]
    public TimestepSpacing? Spacing { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public int? Width { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public int? Height { get; set; }

    /// <summary>A .npy file of float32 noise [1, 4, Height/8, Width/8] used instead of the seed's.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public string? InitialNoisePath { get; set; }

    /// <summary>
    /// A picture to start from (img2img; inpainting with -MaskPath), decoded as an untrusted file. Without -Width and
    /// -Height the scene takes its size; a picture of another size than the scene's is refused, not stretched.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public string? InitImagePath { get; set; }

    /// <summary>With -InitImagePath: the region to redraw, white (grey ≥ 128) on black, the picture's size.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public string? MaskPath { get; set; }

    /// <summary>How far the scene may go from -InitImagePath, 0 to 1 (the last ⌊Steps × Strength⌋ steps run). Double, as Python's float.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public double? Strength { get; set; }

    /// <summary>
    /// The hires fix: the scene is made at its size, enlarged this many times (more than 1, at most 4; both sides must
    /// come out multiples of 8) and refined by img2img at the larger size with the same seed and reference.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public double? HiresScale { get; set; }

    /// <summary>With -HiresScale: the refine pass's strength, 0 to 1 (0.5 when left out).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public double? HiresStrength { get; set; }

    /// <summary>With -HiresScale: Latent (the final latents resized bilinearly, the default) or Pixel (the picture resized with Lanczos, then encoded).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public HiresUpscale? HiresUpscale { get; set; }

    /// <summary>DeepCache: the whole UNet every this many steps, a shallow part of it between (1 = off).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public int? DeepCacheInterval { get; set; }

    /// <summary>Full (the VAE, the default) or Tiny (the engine's tiny decoder: much faster, a little softer).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    [ArgumentCompleter(typeof(DecoderCompleter))]
    public SceneDecoder? Decoder { get; set; }

    /// <summary>
    /// LoRAs for the scene, each 'path' or 'path:weight' (weight 1 when left out), or an object with Path and Weight
    /// properties (a scene's Loras, piped back in); a CSV cell holds several separated by ';'.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("Loras")]
    [EmptyAsNull]
    public object[]? Lora { get; set; }

    /// <summary>
    /// The folder that A1111's &lt;lora:name:weight&gt; tags in -Prompt name files in: &lt;folder&gt;/&lt;name&gt;.safetensors
    /// (name may hold subfolders, never leave the folder); $env:MNEMOSYNE_LORA_PATH when not given.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public string? LoraFolder { get; set; }

    /// <summary>A .png file that shows each scene as it forms: the tiny decoder's picture of the current estimate, rewritten as the steps go.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? PreviewPath { get; set; }

    /// <summary>Draw the preview after every this many steps (and after the last).</summary>
    [Parameter]
    [ValidateRange(1, SceneRequest.MaxSteps)]
    public int PreviewEvery { get; set; } = 1;

    /// <summary>
    /// The piped object itself, beside what PowerShell binds from it: binding by property name silently skips a value
    /// it cannot convert (Seed=abc) and binds a row without a Prompt column as its text, so each row is checked here.
    /// </summary>
    [Parameter(ValueFromPipeline = true, DontShow = true)]
    public PSObject? InputObject { get; set; }

    /// <summary>The parameters a piped object's properties bind to, by name or alias (as PowerShell matches them: ignoring case).</summary>
    internal static readonly Dictionary<string, PropertyInfo> ByPropertyName = typeof(NewMnemosyneSceneCommand).GetProperties()
        .Where(p => p.GetCustomAttributes<ParameterAttribute>().Any(a => a.ValueFromPipelineByPropertyName))
        .SelectMany(p => p.GetCustomAttributes<AliasAttribute>().SelectMany(a => a.AliasNames).Prepend(p.Name).Select(name => (Name: name, Property: p)))
        .ToDictionary(e => e.Name, e => e.Property, StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// AUTOMATIC1111's names for settings (its PNG parameters' keys), taken from a piped object that lacks the
    /// parameter's own name: Sampler (with Schedule type) for -Scheduler, CFG scale, Size as WIDTHxHEIGHT, Negative prompt.
    /// </summary>
    private static readonly string[] A1111Columns = ["Sampler", "Schedule type", "CFG scale", "Size", "Negative prompt"];

    /// <summary>The speed LoRA the base-UNet warning names.</summary>
    private const string SpeedLoraModel = "sdxl-lightning-4step-lora";

    private bool warnedOfBaseUnet;
    private ModelResolver? models;
    private PreviewSettings? preview;
    private HashSet<string> givenOnCommandLine = null!;
    private readonly HashSet<string> warnedColumns = new(StringComparer.OrdinalIgnoreCase);
    private int inputCount;
    private int sceneCount;
    /// <summary>How many scenes a stream will make, when it is known (the prompt lines of the file Get-Content reads); 0 when not.</summary>
    private int sceneTotal;
    private string? totalFromFile;

    /// <summary>A preview that cannot be written is refused before any scene is made.</summary>
    protected override void BeginProcessing()
    {
        givenOnCommandLine = new HashSet<string>(MyInvocation.BoundParameters.Keys, StringComparer.OrdinalIgnoreCase);
        if (PreviewPath is null)
        {
            if (MyInvocation.BoundParameters.ContainsKey(nameof(PreviewEvery)))
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"-PreviewEvery {PreviewEvery} says how often to draw the live preview, but no -PreviewPath says where: give both, or neither.",
                    "PreviewEveryWithoutPath", ErrorCategory.InvalidArgument, PreviewEvery));
            }
            return;
        }
        var path = FileSystemPath(PreviewPath);
        if (Directory.Exists(path))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"{path} is a folder: give -PreviewPath a .png file name in it, for example {Path.Combine(path, "preview.png")}.",
                "PathIsFolder", ErrorCategory.InvalidArgument, path));
        }
        if (!path.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"The live preview is a PNG picture: give -PreviewPath a .png file name, not {path}.",
                "PreviewNotPng", ErrorCategory.InvalidArgument, path));
        }
        // Each preview replaces the one before, so an existing file is no obstacle.
        if (OutputFiles.CheckWritable(path, force: true, InvokeProvider) is { } problem) ThrowTerminatingError(problem);
        preview = new PreviewSettings { Path = path, Every = PreviewEvery };
    }

    protected override void ProcessRecord()
    {
        if (InputObject is not null) inputCount++;
        if (!CheckPipedObject()) return;
        var request = BuildRequest();
        if (request is null) return;

        using var lease = AcquireEngine();
        var engine = lease.Engine;
        SpeedLora? speedLora = null;
        if (Quality == SceneQuality.Fast && request.Loras.Count > 0)
        {
            try
            {
                speedLora = SpeedLoras.Find(Models.Catalog, request.Loras);
            }
            catch (ArgumentException e)
            {
                WriteError(ErrorRecords.From(e, "SpeedLoraConflict", request.Loras));
                return;
            }
            if (speedLora is not null)
                WriteVerbose($"-Quality Fast: the sampling of the speed LoRA {speedLora.ModelName} ({SpeedLoras.Describe(speedLora.Sampling)}).");
        }
        if (Quality == SceneQuality.Fast) request = request.ForFewStepUnet(speedLora?.Sampling ?? engine.Options.UnetSampling);
        if (Quality == SceneQuality.Fast && speedLora is null && engine.Options.UnetWeightsPath is null && !warnedOfBaseUnet)
        {
            warnedOfBaseUnet = true;
            WriteWarning(
                $"-Quality Fast is meant for a few-step UNet, but the open engine ({engine.ModelName}) has its checkpoint's own UNet, which gives " +
                "blurred, unfinished pictures at 4 steps without guidance. Open one with Open-MnemosyneEngine -Model " +
                $"{ModelResolver.BaseModel} -UnetModel {ModelResolver.FewStepUnetModel} (Install-MnemosyneModel {ModelResolver.FewStepUnetModel} fetches it), " +
                $"add a speed LoRA (-Lora {SpeedLoraModel}), or use -Quality Draft.");
        }
        var hires = HiresFor(request);
        if (hires is { Failed: true }) return;
        if (request.ReferencesUsed.Count > 0 && !engine.SupportsReferences)
        {
            var first = request.ReferencesUsed[0].Reference;
            ThrowTerminatingError(ErrorRecords.Create(
                $"The open engine ({engine.ModelName}) has no IP-Adapter, so it cannot use the reference '{first.Name}'. " + NoIPAdapterAdvice,
                "NoIPAdapter", ErrorCategory.InvalidOperation, first));
        }

        if ((request.Decoder == SceneDecoder.Tiny || preview is not null) && !engine.SupportsTinyDecoder)
        {
            bool tiny = request.Decoder == SceneDecoder.Tiny;
            ThrowTerminatingError(ErrorRecords.Create(
                $"The open engine ({engine.ModelName}) has no tiny decoder, so it cannot {(tiny ? "decode scenes with -Decoder Tiny" : "draw live previews (-PreviewPath)")}. " + NoTinyDecoderAdvice,
                "NoTinyDecoder", ErrorCategory.InvalidOperation, tiny ? SceneDecoder.Tiny : preview!.Path));
        }

        var activity = $"New-MnemosyneScene (seed {request.Seed.ToString(CultureInfo.InvariantCulture)})";
        var parent = ReportBatch(request);
        ReportProgress(ProgressActivityIds.Scene, activity, "Encoding the prompt", currentOperation: request.Prompt, parentActivityId: parent);
        Scene scene;
        try
        {
            scene = RunOnWorker<Scene, object>(
                (reports, token) => hires?.Fix is { } fix
                    ? fix.Generate(engine, request, new ReportAs<SceneProgress>(reports), token, preview, new ReportAs<ScenePhaseReport>(reports))
                    : engine.Generate(request, new ReportAs<SceneProgress>(reports), token, preview, new ReportAs<ScenePhaseReport>(reports)),
                report =>
                {
                    if (report is SceneProgress step) WriteStep(activity, step, parent);
                    else WritePhase(activity, (ScenePhaseReport)report, request, parent);
                });
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            ReportProgress(ProgressActivityIds.Scene, activity, "Failed", completed: true, parentActivityId: parent);
            WriteError(ErrorRecords.From(e, "SceneFailed", TargetFor(e, request)));
            return;
        }
        ReportProgress(ProgressActivityIds.Scene, activity, "Done", completed: true, parentActivityId: parent);
        WriteVerbose(string.Create(CultureInfo.InvariantCulture, $"Scene (seed {scene.Seed}) made in {scene.Elapsed.TotalSeconds:0.00} s."));
        foreach (var warning in scene.Warnings) WriteWarning(warning);
        // Outside the try: what the next command in the pipeline throws is not this scene's failure.
        WriteObject(scene);
    }

    /// <summary>
    /// Whether the piped object (if any) can make a scene: a string or a reference passes; an object needs a Prompt
    /// property (unless -Prompt is given) and properties that convert to the parameters they name, or it is one error
    /// naming it and its bad properties. Columns that name no parameter are warned of once.
    /// </summary>
    private bool CheckPipedObject()
    {
        if (InputObject?.BaseObject is not { } piped) return true;
        // PowerShell binds the values that convert and skips the rest without a word (and may keep an earlier row's
        // value), so the settings are taken from each row here, each converted as PowerShell converts it.
        foreach (var parameter in ByPropertyName.Values)
        {
            if (parameter.Name != nameof(Prompt) && !givenOnCommandLine.Contains(parameter.Name)) parameter.SetValue(this, null);
        }
        if (piped is string or CharacterReference || piped.GetType().IsPrimitive) return true;

        var properties = InputObject.Properties.Where(p => p.IsGettable).ToList();
        var row = string.Create(CultureInfo.InvariantCulture, $"Piped object {inputCount}");
        if (!givenOnCommandLine.Contains(nameof(Prompt)) && !properties.Any(p => p.Name.Equals(nameof(Prompt), StringComparison.OrdinalIgnoreCase)))
        {
            var names = properties.Select(p => p.Name).ToList();
            var has = names.Count == 0 ? "no properties" : "only " + string.Join(", ", names.Take(12).Select(n => $"'{n}'")) + (names.Count > 12 ? ", …" : "");
            var delimiter = names.Count == 1 && names[0].IndexOfAny([';', '\t', '|']) >= 0
                ? " Its one column name holds separators: if the file is not comma-separated, give Import-Csv its -Delimiter (for example -Delimiter ';')."
                : "";
            WriteError(ErrorRecords.Create(
                $"{row} has no Prompt property (it has {has}), so it cannot make a scene. Give each row a Prompt column, or give -Prompt.{delimiter}",
                "NoPromptProperty", ErrorCategory.InvalidArgument, InputObject));
            return false;
        }

        var bad = new List<string>();
        foreach (var property in properties)
        {
            if (!ByPropertyName.TryGetValue(property.Name, out var parameter))
            {
                if (piped is PSCustomObject && !A1111Columns.Contains(property.Name, StringComparer.OrdinalIgnoreCase) && warnedColumns.Add(property.Name))
                {
                    WriteWarning($"The column '{property.Name}' names no parameter of New-MnemosyneScene, so it is ignored. " +
                        $"The columns it takes: {string.Join(", ", ByPropertyName.Keys)}, and A1111's {string.Join(", ", A1111Columns)}.");
                }
                continue;
            }
            if (parameter.Name == nameof(Prompt) || givenOnCommandLine.Contains(parameter.Name)) continue;
            var value = property.Value is PSObject wrapped ? wrapped.BaseObject : property.Value;
            if (value is null || value is string text && string.IsNullOrWhiteSpace(text)) continue;
            // A CSV cell holds a list's items separated by ';' (ReferenceWeight 0.7;0.6).
            if (parameter.PropertyType.IsArray && value is string cell) value = cell.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            // A sampler name is read with the row's Schedule type, below.
            if (parameter.Name == nameof(Scheduler) && value is string) continue;
            var type = Nullable.GetUnderlyingType(parameter.PropertyType) ?? parameter.PropertyType;
            try
            {
                parameter.SetValue(this, LanguagePrimitives.ConvertTo(value, type, CultureInfo.InvariantCulture));
            }
            catch (PSInvalidCastException)
            {
                bad.Add($"{property.Name} is '{value}', which is not {Expected(type)}");
            }
        }
        TakeA1111Columns(properties, bad);
        if (bad.Count == 0) return true;
        WriteError(ErrorRecords.Create(
            $"{row}: {string.Join("; ", bad)}. Correct {(bad.Count == 1 ? "that value" : "those values")}, or leave {(bad.Count == 1 ? "it" : "them")} empty for the default; no scene was made from it.",
            "InvalidPipedValue", ErrorCategory.InvalidArgument, InputObject));
        return false;
    }

    /// <summary>
    /// Sets what the piped object's A1111-named properties say (<see cref="A1111Columns"/>) and its Scheduler named as
    /// A1111 names samplers, adding a description of each value that does not convert to <paramref name="bad"/>.
    /// </summary>
    private void TakeA1111Columns(List<PSPropertyInfo> properties, List<string> bad)
    {
        PSPropertyInfo? Column(string name) => properties.FirstOrDefault(p => p.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
        string? Cell(PSPropertyInfo? column) =>
            (column?.Value is PSObject wrapped ? wrapped.BaseObject : column?.Value) is { } value && value.ToString() is { } text && !string.IsNullOrWhiteSpace(text) ? text.Trim() : null;
        bool Takes(string parameter, params string[] ownNames) => !givenOnCommandLine.Contains(parameter) && ownNames.All(name => Column(name) is null);

        var schedulerColumn = Column(nameof(Scheduler)) is { } own ? own : Column("Sampler");
        if (!givenOnCommandLine.Contains(nameof(Scheduler)) && Cell(schedulerColumn) is { } sampler
            && (schedulerColumn!.Value is PSObject { BaseObject: string } or string))
        {
            var schedule = Cell(Column("Schedule type"));
            if (SamplerNames.FromA1111(sampler, schedule) is { } kind) Scheduler = kind;
            else bad.Add($"{schedulerColumn.Name} is '{sampler}'{(schedule is null ? "" : $" with Schedule type '{schedule}'")}, which is not {Expected(typeof(SchedulerKind))}");
        }
        if (Takes(nameof(GuidanceScale), nameof(GuidanceScale)) && Cell(Column("CFG scale")) is { } cfg)
        {
            if (float.TryParse(cfg, NumberStyles.Float, CultureInfo.InvariantCulture, out var scale)) GuidanceScale = scale;
            else bad.Add($"CFG scale is '{cfg}', which is not a number");
        }
        bool sizeGiven = givenOnCommandLine.Contains(nameof(Width)) && givenOnCommandLine.Contains(nameof(Height));
        if (!sizeGiven && Column(nameof(Width)) is null && Column(nameof(Height)) is null && Cell(Column("Size")) is { } size)
        {
            var parts = size.Split('x', 'X', '×');
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.AllowLeadingWhite | NumberStyles.AllowTrailingWhite, CultureInfo.InvariantCulture, out var width)
                && int.TryParse(parts[1], NumberStyles.AllowLeadingWhite | NumberStyles.AllowTrailingWhite, CultureInfo.InvariantCulture, out var height))
            {
                if (!givenOnCommandLine.Contains(nameof(Width))) Width = width;
                if (!givenOnCommandLine.Contains(nameof(Height))) Height = height;
            }
            else bad.Add($"Size is '{size}', which is not WIDTHxHEIGHT (for example 1024x768)");
        }
        if (Takes(nameof(NegativePrompt), nameof(NegativePrompt)) && Cell(Column("Negative prompt")) is not null)
            NegativePrompt = (string)LanguagePrimitives.ConvertTo(Column("Negative prompt")!.Value, typeof(string), CultureInfo.InvariantCulture);
    }

    /// <summary>What a value of a parameter's type looks like, for an error about one that is not.</summary>
    private static string Expected(Type type) => type switch
    {
        _ when type == typeof(SchedulerKind) => $"one of {string.Join(", ", Enum.GetNames<SchedulerKind>())} or A1111's {string.Join(", ", SamplerNames.Known)}",
        _ when type.IsEnum => "one of " + string.Join(", ", Enum.GetNames(type)),
        _ when type == typeof(int) || type == typeof(long) => "a whole number",
        _ when type == typeof(float) || type == typeof(double) => "a number",
        _ => $"a {type.Name}",
    };

    /// <summary>Where a piped prompt came from, when Get-Content says (its line and file), for an error about it.</summary>
    private string PromptSource()
    {
        if (InputObject?.BaseObject is not string || InputObject.Properties["ReadCount"]?.Value is not { } line) return "";
        var file = InputObject.Properties["PSPath"]?.Value is string psPath ? " of " + SessionState.Path.GetUnresolvedProviderPathFromPSPath(psPath) : "";
        return string.Create(CultureInfo.InvariantCulture, $" (line {line}{file})");
    }

    /// <summary>The request for this input, or null (after writing a non-terminating error) when the input is unusable.</summary>
    private SceneRequest? BuildRequest()
    {
        if (string.IsNullOrWhiteSpace(Prompt))
        {
            WriteError(ErrorRecords.Create(
                $"The prompt{PromptSource()} is {(Prompt.Length == 0 ? "empty" : "only white space")}; describe the scene (for example New-MnemosyneScene 'a knight in the rain'). " +
                "To skip the blank lines of a prompt file, filter them out: Get-Content prompts.txt | Where-Object { $_.Trim() } | New-MnemosyneScene.",
                "EmptyPrompt", ErrorCategory.InvalidArgument, Prompt));
            return null;
        }
        if (Quality == SceneQuality.Fast && FastConflicts() is { Count: > 0 } conflicts)
        {
            WriteError(ErrorRecords.Create(
                "-Quality Fast sets what the scene's speed LoRA or the open few-step UNet was distilled for (its steps, scheduler, timesteps and guidance), so it takes no " +
                $"{string.Join(", ", conflicts)}. Leave {(conflicts.Count == 1 ? "it" : "them")} out, or leave out -Quality.",
                "FastQualityConflict", ErrorCategory.InvalidArgument, Prompt));
            return null;
        }
        if (Steps is not null && Quality is not null)
        {
            WriteError(ErrorRecords.Create($"Give -Steps ({Steps}) or -Quality ({Quality}), not both.",
                "StepsAndQuality", ErrorCategory.InvalidArgument, Prompt));
            return null;
        }

        FloatTensor? noise = null;
        string? noisePath = null;
        if (InitialNoisePath is not null)
        {
            noisePath = FileSystemPath(InitialNoisePath);
            if (Directory.Exists(noisePath))
            {
                WriteError(ErrorRecords.Create($"{noisePath} is a folder; give the .npy file of initial noise (float32 [1, 4, Height/8, Width/8]).",
                    "InitialNoiseUnreadable", ErrorCategory.InvalidArgument, noisePath));
                return null;
            }
            if (!IsRegularFile(noisePath)) return null;
            try
            {
                noise = NpyFile.Read(noisePath);
            }
            catch (Exception e)
            {
                WriteError(ErrorRecords.From(e, "InitialNoiseUnreadable", noisePath));
                return null;
            }
        }

        var loras = LoraRequests();
        if (loras is null) return null;
        var prompt = PromptWithoutLoraTags(loras);
        if (prompt is null) return null;
        RgbImage? initImage = null, mask = null;
        string? initImagePath = null, maskPath = null;
        if (InitImagePath is not null && !TryReadPicture(InitImagePath, "InitImageUnreadable", out initImage, out initImagePath)) return null;
        if (MaskPath is not null && !TryReadPicture(MaskPath, "MaskUnreadable", out mask, out maskPath)) return null;

        var seed = Seed ?? Random.Shared.NextInt64(DrawnSeedLimit);
        if (Seed is null) WriteVerbose($"Seed {seed} (drawn at random) for '{prompt}'.");
        var defaults = new SceneRequest { Prompt = prompt, Seed = seed };
        var request = defaults with
        {
            NegativePrompt = NegativePrompt,
            PromptStyle = PromptStyle ?? defaults.PromptStyle,
            Steps = Steps ?? (int?)Quality ?? defaults.Steps,
            GuidanceScale = GuidanceScale ?? defaults.GuidanceScale,
            GuidanceCutoff = GuidanceCutoff ?? defaults.GuidanceCutoff,
            Scheduler = Scheduler ?? defaults.Scheduler,
            Spacing = Spacing,
            Width = Width ?? initImage?.Width ?? defaults.Width,
            Height = Height ?? initImage?.Height ?? defaults.Height,
            InitImage = initImage,
            InitImagePath = initImagePath,
            Mask = mask,
            MaskPath = maskPath,
            Strength = Strength ?? defaults.Strength,
            InitialNoise = noise,
            InitialNoisePath = noisePath,
            DeepCacheInterval = DeepCacheInterval ?? defaults.DeepCacheInterval,
            Decoder = Decoder ?? defaults.Decoder,
            Loras = loras,
        };
        request = WithReferences(request);
        if (request is null) return null;
        try
        {
            request.Validate();
            return request;
        }
        catch (ArgumentException e)
        {
            WriteError(ErrorRecords.From(e, "InvalidSceneSetting", TargetFor(e, request)));
            return null;
        }
    }

    /// <summary>
    /// The request with -Reference's references, their weights and masks, -ReferenceBlocks, -ReferenceStart and -ReferenceEnd;
    /// null after writing the one error of a list of the wrong length, a mask that cannot be read or a bad block table.
    /// </summary>
    private SceneRequest? WithReferences(SceneRequest request)
    {
        var references = Reference ?? [];
        var weights = ReferenceWeight ?? [request.ReferenceWeight];
        if (references.Length == 0 && ReferenceMask is not null)
            return Refuse($"-ReferenceMask says where references act, but no -Reference was given: give one reference per mask.", "ReferenceMaskWithoutReference", ReferenceMask);
        if (weights.Length != 1 && weights.Length != Math.Max(references.Length, 1))
            return Refuse($"-ReferenceWeight has {weights.Length} weights for {references.Length} reference{(references.Length == 1 ? "" : "s")}: give one weight for all, or one per reference.",
                "ReferenceWeightCount", ReferenceWeight!);
        if (ReferenceMask is { } masks && masks.Length != references.Length)
            return Refuse($"-ReferenceMask has {masks.Length} mask{(masks.Length == 1 ? "" : "s")} for {references.Length} reference{(references.Length == 1 ? "" : "s")}: give one mask per reference, in -Reference's order.",
                "ReferenceMaskCount", masks);

        IpAdapterBlockScales blocks = request.ReferenceBlocks;
        switch (ReferenceBlocks is PSObject wrapped ? wrapped.BaseObject : ReferenceBlocks)
        {
            case null:
                break;
            case IpAdapterBlockScales read:
                blocks = read;
                break;
            case System.Collections.IDictionary table:
                try
                {
                    blocks = IpAdapterBlockScales.FromTable(PlainTable(table));
                }
                catch (ArgumentException e)
                {
                    WriteError(ErrorRecords.From(e, "InvalidReferenceBlocks", ReferenceBlocks));
                    return null;
                }
                break;
            case var name when IpAdapterBlockScales.Preset(name.ToString() ?? "") is { } preset:
                blocks = preset;
                break;
            default:
                return Refuse($"-ReferenceBlocks is '{ReferenceBlocks}', which is neither All, Style, Layout nor StyleAndLayout, nor a table such as @{{ up = @{{ block_0 = 0, 1, 0 }} }}.",
                    "InvalidReferenceBlocks", ReferenceBlocks!);
        }
        request = request with { ReferenceBlocks = blocks, ReferenceStart = ReferenceStart ?? request.ReferenceStart, ReferenceEnd = ReferenceEnd ?? request.ReferenceEnd };
        if (references.Length == 0) return request with { ReferenceWeight = weights[0] };
        if (references.Length == 1 && ReferenceMask is null) return request with { Reference = references[0], ReferenceWeight = weights[0] };

        var uses = new List<SceneReference>();
        for (int i = 0; i < references.Length; i++)
        {
            ReferenceMask? mask = null;
            if (ReferenceMask is { } given && !TryReadReferenceMask(given[i], request.Width, request.Height, out mask)) return null;
            uses.Add(new SceneReference(references[i], weights.Length == 1 ? weights[0] : weights[i], mask));
        }
        return request with { References = uses };

        SceneRequest? Refuse(string message, string errorId, object target)
        {
            WriteError(ErrorRecords.Create(message, errorId, ErrorCategory.InvalidArgument, target));
            return null;
        }
    }

    /// <summary>A hashtable as the engine reads it: nested tables and lists with PowerShell's wrappers taken off.</summary>
    private static Dictionary<string, object?> PlainTable(System.Collections.IDictionary table)
    {
        static object? Plain(object? value) => (value is PSObject wrapped ? wrapped.BaseObject : value) switch
        {
            System.Collections.IDictionary inner => PlainTable(inner),
            string text => text,
            System.Collections.IEnumerable list => list.Cast<object?>().Select(Plain).ToArray(),
            var other => other,
        };
        var plain = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        foreach (System.Collections.DictionaryEntry entry in table) plain[entry.Key?.ToString() ?? ""] = Plain(entry.Value);
        return plain;
    }

    /// <summary>
    /// One -ReferenceMask entry as a mask of the scene's size: a half's name, a rectangle @{ X; Y; Width; Height }, or a picture
    /// file (decoded within SafeImageDecoder's limits); false after writing the error of one that cannot be read.
    /// </summary>
    private bool TryReadReferenceMask(object? entry, int width, int height, out ReferenceMask? mask)
    {
        mask = null;
        switch (entry is PSObject wrapped ? wrapped.BaseObject : entry)
        {
            case string half when ReferenceMaskHalves.TryGetValue(half, out var box):
                var (x, y, w, h) = box(width, height);
                mask = Engine.Pipeline.ReferenceMask.Rectangle(width, height, x, y, w, h);
                return true;
            case System.Collections.IDictionary rectangle:
                var values = new int[4];
                string[] keys = ["X", "Y", "Width", "Height"];
                for (int i = 0; i < keys.Length; i++)
                {
                    var key = rectangle.Keys.Cast<object>().FirstOrDefault(k => string.Equals(k?.ToString(), keys[i], StringComparison.OrdinalIgnoreCase));
                    try
                    {
                        values[i] = key is null ? throw new PSInvalidCastException("missing") : LanguagePrimitives.ConvertTo<int>(rectangle[key]);
                    }
                    catch (PSInvalidCastException)
                    {
                        WriteError(ErrorRecords.Create(
                            $"The -ReferenceMask rectangle needs whole numbers X, Y, Width and Height (pixels of the scene); its {keys[i]} is {(key is null ? "missing" : $"'{rectangle[key]}'")}.",
                            "InvalidReferenceMask", ErrorCategory.InvalidArgument, entry));
                        return false;
                    }
                }
                mask = Engine.Pipeline.ReferenceMask.Rectangle(width, height, values[0], values[1], values[2], values[3]);
                return true;
            case string path:
                if (!TryReadPicture(path, "ReferenceMaskUnreadable", out var picture, out var fullPath)) return false;
                mask = Engine.Pipeline.ReferenceMask.FromPicture(picture!, fullPath!);
                return true;
            default:
                WriteError(ErrorRecords.Create(
                    $"-ReferenceMask takes a picture file, Left, Right, Top, Bottom or @{{ X = …; Y = …; Width = …; Height = … }}; '{entry}' is none of them.",
                    "InvalidReferenceMask", ErrorCategory.InvalidArgument, entry));
                return false;
        }
    }

    /// <summary>The halves -ReferenceMask names: (x, y, width, height) of a scene of the given size.</summary>
    private static readonly Dictionary<string, Func<int, int, (int, int, int, int)>> ReferenceMaskHalves = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Left"] = (w, h) => (0, 0, w / 2, h),
        ["Right"] = (w, h) => (w / 2, 0, w - w / 2, h),
        ["Top"] = (w, h) => (0, 0, w, h / 2),
        ["Bottom"] = (w, h) => (0, h / 2, w, h - h / 2),
    };

    /// <summary>
    /// The hires fix of -HiresScale, -HiresStrength and -HiresUpscale checked against the request (after -Quality's
    /// settings); null without -HiresScale; Failed after writing the one error of a bad setting.
    /// </summary>
    private (HiresFix? Fix, bool Failed)? HiresFor(SceneRequest request)
    {
        if (HiresScale is not { } scale)
        {
            if (HiresStrength is null && HiresUpscale is null) return null;
            WriteError(ErrorRecords.Create(
                $"-{(HiresStrength is null ? nameof(HiresUpscale) : nameof(HiresStrength))} sets up the hires fix, which -HiresScale turns on: give -HiresScale too (for example -HiresScale 1.5).",
                "InvalidSceneSetting", ErrorCategory.InvalidArgument, (object?)HiresStrength ?? HiresUpscale));
            return (null, true);
        }
        var fix = new HiresFix { Scale = scale, Strength = HiresStrength ?? HiresFix.DefaultStrength, Upscale = HiresUpscale ?? default };
        try
        {
            fix.Validate(request);
            return (fix, false);
        }
        catch (ArgumentException e)
        {
            object target = e.ParamName switch
            {
                nameof(HiresFix.Scale) => scale,
                nameof(HiresFix.Strength) => fix.Strength,
                _ => request.InitImagePath ?? (object)request.Prompt,
            };
            WriteError(ErrorRecords.From(e, "InvalidSceneSetting", target));
            return (null, true);
        }
    }

    /// <summary>The LoRAs of -Lora, their paths resolved as PowerShell's; null (after writing an error) for an entry that names none.</summary>
    private List<LoraRequest>? LoraRequests()
    {
        var requests = new List<LoraRequest>();
        foreach (var entry in Lora ?? [])
        {
            var item = entry is PSObject wrapped ? wrapped.BaseObject : entry;
            if (item is string text)
            {
                foreach (var part in text.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    // The weight follows the last ':' when it is a number, so that C:\loras\kira.safetensors stays a path.
                    int colon = part.LastIndexOf(':');
                    bool weighted = colon > 0 && float.TryParse(part[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out _);
                    if (LoraPath(weighted ? part[..colon] : part) is not { } loraFile) return null;
                    requests.Add(new LoraRequest(loraFile, weighted ? float.Parse(part[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture) : 1));
                }
                continue;
            }
            var (path, weight) = item is IDictionary table
                ? (table["Path"], table["Weight"])
                : ((entry as PSObject ?? PSObject.AsPSObject(item)).Properties["Path"]?.Value, (entry as PSObject ?? PSObject.AsPSObject(item)).Properties["Weight"]?.Value);
            float? value = null;
            try
            {
                value = weight is null ? 1 : (float)LanguagePrimitives.ConvertTo(weight, typeof(float), CultureInfo.InvariantCulture);
            }
            catch (PSInvalidCastException)
            {
            }
            if ((path is PSObject wrappedPath ? wrappedPath.BaseObject : path) is not string file || string.IsNullOrWhiteSpace(file) || value is null)
            {
                WriteError(ErrorRecords.Create(
                    $"-Lora takes 'path' or 'path:weight' (e.g. 'kira.safetensors:0.8'), or objects with a Path and a numeric Weight; '{entry}' is neither.",
                    "InvalidLora", ErrorCategory.InvalidArgument, entry));
                return null;
            }
            if (LoraPath(file) is not { } resolved) return null;
            requests.Add(new LoraRequest(resolved, value.Value));
        }
        return requests;
    }

    /// <summary>
    /// A -Lora entry's file: the path as PowerShell's, or where no such file is, the installed file of the known LoRA model
    /// of that name (lcm-lora-sdxl); null after writing the error of a model name that is not a LoRA or not installed.
    /// </summary>
    private string? LoraPath(string given)
    {
        var path = FileSystemPath(given);
        if (File.Exists(path) || given.IndexOfAny(['/', '\\']) >= 0 || given.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return path;
        try
        {
            return Models.LoraFile(given) ?? path;
        }
        catch (Exception e) when (e is ArgumentException or ModelNotInstalledException)
        {
            WriteError(ErrorRecords.From(e, "InvalidLora", given));
            return null;
        }
    }

    /// <summary>The known models, for LoRAs named by model and speed LoRAs; read when first needed.</summary>
    private ModelResolver Models => models ??= OpenModelResolver(cachePath: null);

    /// <summary>
    /// -Prompt with its &lt;lora:name:weight&gt; tags taken out (the text the scene encodes and records), each tag's LoRA
    /// of -LoraFolder added to <paramref name="loras"/>; null after writing the error of a bad or unresolved tag.
    /// </summary>
    private string? PromptWithoutLoraTags(List<LoraRequest> loras)
    {
        (string Prompt, IReadOnlyList<LoraTag> Tags) found;
        try
        {
            found = LoraTags.Extract(Prompt);
        }
        catch (LoraTagException e)
        {
            WriteError(ErrorRecords.From(e, "InvalidLora", e.Tag));
            return null;
        }
        if (found.Tags.Count == 0) return Prompt;
        var given = LoraFolder ?? Environment.GetEnvironmentVariable(LoraFolderVariable);
        if (string.IsNullOrWhiteSpace(given))
        {
            WriteError(ErrorRecords.Create(
                $"{found.Tags[0].Text} names a LoRA by name: give the folder of LoRA files with -LoraFolder (or $env:{LoraFolderVariable}), or the file with -Lora 'path:weight'.",
                "LoraFolderMissing", ErrorCategory.InvalidArgument, found.Tags[0].Text));
            return null;
        }
        var folder = Path.TrimEndingDirectorySeparator(Path.GetFullPath(FileSystemPath(given)));
        foreach (var tag in found.Tags)
        {
            if (LoraTags.FileIn(folder, tag.Name) is not { } file)
            {
                WriteError(ErrorRecords.Create($"{tag.Text} names a file outside the LoRA folder {folder}; name one in it (subfolders are fine).",
                    "InvalidLora", ErrorCategory.InvalidArgument, tag.Text));
                return null;
            }
            if (!File.Exists(file))
            {
                WriteError(ErrorRecords.Create($"{tag.Text}: there is no LoRA {file} (the LoRA folder is {folder}).",
                    "LoraNotFound", ErrorCategory.ObjectNotFound, tag.Text));
                return null;
            }
            loras.Add(new LoraRequest(file, tag.Weight));
        }
        return found.Prompt;
    }

    /// <summary>A starting picture or mask, decoded within the engine's limits for untrusted files; false after writing the error.</summary>
    private bool TryReadPicture(string given, string errorId, out RgbImage? image, out string? path)
    {
        image = null;
        path = FileSystemPath(given);
        if (Directory.Exists(path))
        {
            WriteError(ErrorRecords.Create($"{path} is a folder; give a picture file (PNG, JPEG or WebP).", errorId, ErrorCategory.InvalidArgument, path));
            return false;
        }
        if (!IsRegularFile(path)) return false;
        try
        {
            image = SafeImageDecoder.Default.Decode(path);
            return true;
        }
        catch (Exception e)
        {
            WriteError(ErrorRecords.From(e, errorId, path));
            return false;
        }
    }

    /// <summary>The settings given that -Quality Fast decides itself, as they were given.</summary>
    private List<string> FastConflicts()
    {
        var given = new List<string>();
        if (Steps is { } steps) given.Add(FormattableString.Invariant($"-Steps {steps}"));
        if (GuidanceScale is { } guidance) given.Add(FormattableString.Invariant($"-GuidanceScale {guidance}"));
        if (GuidanceCutoff is { } cutoff) given.Add(FormattableString.Invariant($"-GuidanceCutoff {cutoff}"));
        if (Scheduler is { } scheduler) given.Add($"-Scheduler {scheduler}");
        if (Spacing is { } spacing) given.Add($"-Spacing {spacing}");
        return given;
    }

    /// <summary>The value an error is about: the setting an argument exception names, else the prompt.</summary>
    private static object TargetFor(Exception exception, SceneRequest request)
    {
        var setting = (exception as ArgumentException)?.ParamName;
        if (string.Equals(setting, nameof(SceneRequest.InitialNoise), StringComparison.OrdinalIgnoreCase) && request.InitialNoisePath is not null)
            return request.InitialNoisePath;
        if (string.Equals(setting, nameof(SceneRequest.InitImage), StringComparison.Ordinal) && request.InitImagePath is not null)
            return request.InitImagePath;
        if (string.Equals(setting, nameof(SceneRequest.Mask), StringComparison.Ordinal) && request.MaskPath is not null)
            return request.MaskPath;
        if (string.Equals(setting, nameof(SceneRequest.Reference), StringComparison.OrdinalIgnoreCase) && request.Reference is not null)
            return request.Reference;
        // "References[i]": that reference's mask, or the reference.
        if (setting?.StartsWith(nameof(SceneRequest.References) + "[", StringComparison.Ordinal) == true && request.References is { } references
            && int.TryParse(setting.AsSpan(nameof(SceneRequest.References).Length + 1).TrimEnd(']'), CultureInfo.InvariantCulture, out var index) && index < references.Count)
            return (object?)references[index].Mask?.Source ?? references[index].Reference;
        if (string.Equals(setting, nameof(SceneRequest.ReferenceBlocks), StringComparison.Ordinal))
            return request.ReferenceBlocks.ToString();
        if (string.Equals(setting, nameof(SceneRequest.ReferenceStart), StringComparison.Ordinal))
            return new[] { request.ReferenceStart, request.ReferenceEnd };
        if (string.Equals(setting, nameof(SceneRequest.NegativePrompt), StringComparison.Ordinal) && request.NegativePrompt is not null)
            return request.NegativePrompt;
        if (string.Equals(setting, nameof(Lora), StringComparison.Ordinal) && request.Loras.Count > 0)
            return request.Loras;
        return request.Prompt;
    }

    private void WriteStep(string activity, SceneProgress step, int parent) => ReportProgress(
        ProgressActivityIds.Scene,
        activity,
        string.Create(CultureInfo.InvariantCulture, $"Step {step.Step} of {step.TotalSteps}, {step.Elapsed:hh\\:mm\\:ss} elapsed"),
        step.TotalSteps > 0 ? Math.Clamp(100 * step.Step / step.TotalSteps, 0, 100) : -1,
        step.Remaining is { } remaining ? (int)Math.Ceiling(remaining.TotalSeconds) : -1,
        step.PreviewPath is { } previewPath
            ? string.Create(CultureInfo.InvariantCulture, $"Preview of step {step.PreviewStep}: {previewPath}")
            : step.Prompt,
        parentActivityId: parent);

    /// <summary>A phase begun is the scene bar's status; one finished is a verbose line with its time, or the cache that answered it.</summary>
    private void WritePhase(string activity, ScenePhaseReport phase, SceneRequest request, int parent)
    {
        if (!phase.Finished)
        {
            var status = phase.Phase switch
            {
                ScenePhase.TextEncoding => request.NegativePrompt is null ? "Encoding the prompt" : "Encoding the prompt and the negative prompt",
                ScenePhase.ReferenceEncoding => $"Encoding the reference '{phase.Subject}' for the IP-Adapter",
                ScenePhase.Denoising => string.Create(CultureInfo.InvariantCulture, $"Denoising: {request.Steps} steps"),
                _ => $"Decoding the picture with the {phase.Subject}",
            };
            ReportProgress(ProgressActivityIds.Scene, activity, status, phase.Phase == ScenePhase.Decoding ? 100 : -1,
                currentOperation: request.Prompt, parentActivityId: parent);
            return;
        }
        var seconds = phase.Elapsed.TotalSeconds;
        WriteVerbose(phase.Phase switch
        {
            ScenePhase.TextEncoding when phase.Cached => $"Text encoding: '{phase.Subject}' from the prompt cache.",
            ScenePhase.TextEncoding => string.Create(CultureInfo.InvariantCulture,
                $"Text encoding: '{phase.Subject}'{(request.NegativePrompt is null ? "" : " and its negative prompt")} encoded in {seconds:0.00} s."),
            ScenePhase.ReferenceEncoding when phase.Cached => $"Reference '{phase.Subject}': the IP-Adapter's keys and values from the reference cache.",
            ScenePhase.ReferenceEncoding => string.Create(CultureInfo.InvariantCulture, $"Reference '{phase.Subject}': the IP-Adapter's keys and values made in {seconds:0.00} s."),
            ScenePhase.Denoising => string.Create(CultureInfo.InvariantCulture,
                $"Denoising: {request.Steps} steps in {seconds:0.00} s ({seconds / Math.Max(request.Steps, 1):0.00} s a step)."),
            _ => string.Create(CultureInfo.InvariantCulture, $"Decoding with the {phase.Subject}: {seconds:0.00} s."),
        });
    }

    /// <summary>
    /// The parent bar of a stream of scenes (scene k, of n when known, and its prompt); its id, or -1 for a scene that is
    /// not part of a stream. PowerShell does not tell a command how many objects are coming; for the lines of a file that
    /// Get-Content reads, n is the file's prompt lines.
    /// </summary>
    private int ReportBatch(SceneRequest request)
    {
        if (!MyInvocation.ExpectingInput) return -1;
        sceneCount++;
        if (totalFromFile is null && InputObject?.BaseObject is string && InputObject.Properties["PSPath"]?.Value is string psPath)
        {
            totalFromFile = SessionState.Path.GetUnresolvedProviderPathFromPSPath(psPath);
            try
            {
                sceneTotal = File.ReadLines(totalFromFile).Count(line => !string.IsNullOrWhiteSpace(line));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                sceneTotal = 0;
            }
        }
        var known = sceneTotal >= sceneCount;
        ReportProgress(ProgressActivityIds.Batch, "New-MnemosyneScene",
            known ? string.Create(CultureInfo.InvariantCulture, $"Scene {sceneCount} of {sceneTotal}") : string.Create(CultureInfo.InvariantCulture, $"Scene {sceneCount}"),
            known ? 100 * (sceneCount - 1) / sceneTotal : -1, currentOperation: request.Prompt);
        return ProgressActivityIds.Batch;
    }

    protected override void EndProcessing()
    {
        if (sceneCount > 0) ReportProgress(ProgressActivityIds.Batch, "New-MnemosyneScene", "Done", completed: true);
    }
}
