using System.Globalization;
using System.Management.Automation;
using System.Reflection;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Makes one scene per input: a prompt given or piped as a string, or an object whose properties
/// name the parameters (Import-Csv rows, earlier scenes). A reference can be given or piped in.
/// Settings left out take the engine's defaults; a missing seed is drawn and recorded.
/// </summary>
[Cmdlet(VerbsCommon.New, "MnemosyneScene")]
[OutputType(typeof(Scene))]
public sealed class NewMnemosyneSceneCommand : MnemosyneCmdlet
{
    /// <summary>Seeds drawn for scenes without one stay below 2^32, so that other tools can take them too.</summary>
    private const long DrawnSeedLimit = 1L << 32;

    /// <summary>An empty or blank prompt is refused in ProcessRecord, as an error that names the value, not at binding.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Prompt { get; set; } = null!;

    /// <summary>Left out: SDXL's zero negative conditioning. An empty string is encoded like any prompt.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string? NegativePrompt { get; set; }

    /// <summary>Bound from the pipeline by type, so a piped reference and a positional prompt work together.</summary>
    [Parameter(ValueFromPipeline = true)]
    public CharacterReference? Reference { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public float? ReferenceWeight { get; set; }

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

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
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

    /// <summary>DeepCache: the whole UNet every this many steps, a shallow part of it between (1 = off).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    public int? DeepCacheInterval { get; set; }

    /// <summary>Full (the VAE, the default) or Tiny (the engine's tiny decoder: much faster, a little softer).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [EmptyAsNull]
    [ArgumentCompleter(typeof(DecoderCompleter))]
    public SceneDecoder? Decoder { get; set; }

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

    /// <summary>The parameters a piped object's properties bind to, by name (as PowerShell matches them: ignoring case).</summary>
    private static readonly Dictionary<string, PropertyInfo> ByPropertyName = typeof(NewMnemosyneSceneCommand).GetProperties()
        .Where(p => p.GetCustomAttributes<ParameterAttribute>().Any(a => a.ValueFromPipelineByPropertyName))
        .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

    private bool warnedOfBaseUnet;
    private PreviewSettings? preview;
    private HashSet<string> givenOnCommandLine = null!;
    private readonly HashSet<string> warnedColumns = new(StringComparer.OrdinalIgnoreCase);
    private int inputCount;

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
        if (Quality == SceneQuality.Fast) request = request.ForFewStepUnet(engine.Options.UnetSampling);
        if (Quality == SceneQuality.Fast && engine.Options.UnetWeightsPath is null && !warnedOfBaseUnet)
        {
            warnedOfBaseUnet = true;
            WriteWarning(
                $"-Quality Fast is meant for a few-step UNet, but the open engine ({engine.ModelName}) has its checkpoint's own UNet, which gives " +
                "blurred, unfinished pictures at 4 steps without guidance. Open one with Open-MnemosyneEngine -Model " +
                $"{ModelResolver.BaseModel} -UnetModel {ModelResolver.FewStepUnetModel} (Install-MnemosyneModel {ModelResolver.FewStepUnetModel} fetches it), or use -Quality Draft.");
        }
        if (request.Reference is not null && !engine.SupportsReferences)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"The open engine ({engine.ModelName}) has no IP-Adapter, so it cannot use the reference '{request.Reference.Name}'. " + NoIPAdapterAdvice,
                "NoIPAdapter", ErrorCategory.InvalidOperation, request.Reference));
        }

        if ((request.Decoder == SceneDecoder.Tiny || preview is not null) && !engine.SupportsTinyDecoder)
        {
            bool tiny = request.Decoder == SceneDecoder.Tiny;
            ThrowTerminatingError(ErrorRecords.Create(
                $"The open engine ({engine.ModelName}) has no tiny decoder, so it cannot {(tiny ? "decode scenes with -Decoder Tiny" : "draw live previews (-PreviewPath)")}. " + NoTinyDecoderAdvice,
                "NoTinyDecoder", ErrorCategory.InvalidOperation, tiny ? SceneDecoder.Tiny : preview!.Path));
        }

        var activity = $"New-MnemosyneScene (seed {request.Seed.ToString(CultureInfo.InvariantCulture)})";
        ReportProgress(ProgressActivityIds.Scene, activity, "Encoding the prompt", currentOperation: request.Prompt);
        Scene scene;
        try
        {
            scene = RunOnWorker<Scene, SceneProgress>(
                (progress, token) => engine.Generate(request, progress, token, preview),
                step => WriteStep(activity, step));
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            ReportProgress(ProgressActivityIds.Scene, activity, "Failed", completed: true);
            WriteError(ErrorRecords.From(e, "SceneFailed", TargetFor(e, request)));
            return;
        }
        ReportProgress(ProgressActivityIds.Scene, activity, "Done", completed: true);
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
                if (piped is PSCustomObject && warnedColumns.Add(property.Name))
                {
                    WriteWarning($"The column '{property.Name}' names no parameter of New-MnemosyneScene, so it is ignored. " +
                        $"The columns it takes: {string.Join(", ", ByPropertyName.Keys)}.");
                }
                continue;
            }
            if (parameter.Name == nameof(Prompt) || givenOnCommandLine.Contains(parameter.Name)) continue;
            var value = property.Value is PSObject wrapped ? wrapped.BaseObject : property.Value;
            if (value is null || value is string text && string.IsNullOrWhiteSpace(text)) continue;
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
        if (bad.Count == 0) return true;
        WriteError(ErrorRecords.Create(
            $"{row}: {string.Join("; ", bad)}. Correct {(bad.Count == 1 ? "that value" : "those values")}, or leave {(bad.Count == 1 ? "it" : "them")} empty for the default; no scene was made from it.",
            "InvalidPipedValue", ErrorCategory.InvalidArgument, InputObject));
        return false;
    }

    /// <summary>What a value of a parameter's type looks like, for an error about one that is not.</summary>
    private static string Expected(Type type) => type switch
    {
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
                "-Quality Fast sets what the open few-step UNet was distilled for (its steps, Euler at trailing timesteps, no guidance), so it takes no " +
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

        RgbImage? initImage = null, mask = null;
        string? initImagePath = null, maskPath = null;
        if (InitImagePath is not null && !TryReadPicture(InitImagePath, "InitImageUnreadable", out initImage, out initImagePath)) return null;
        if (MaskPath is not null && !TryReadPicture(MaskPath, "MaskUnreadable", out mask, out maskPath)) return null;

        var seed = Seed ?? Random.Shared.NextInt64(DrawnSeedLimit);
        if (Seed is null) WriteVerbose($"Seed {seed} (drawn at random) for '{Prompt}'.");
        var defaults = new SceneRequest { Prompt = Prompt, Seed = seed };
        var request = defaults with
        {
            NegativePrompt = NegativePrompt,
            Reference = Reference,
            ReferenceWeight = ReferenceWeight ?? defaults.ReferenceWeight,
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
        };
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
        if (string.Equals(setting, nameof(SceneRequest.NegativePrompt), StringComparison.Ordinal) && request.NegativePrompt is not null)
            return request.NegativePrompt;
        return request.Prompt;
    }

    private void WriteStep(string activity, SceneProgress step) => ReportProgress(
        ProgressActivityIds.Scene,
        activity,
        string.Create(CultureInfo.InvariantCulture, $"Step {step.Step} of {step.TotalSteps}, {step.Elapsed:hh\\:mm\\:ss} elapsed"),
        step.TotalSteps > 0 ? Math.Clamp(100 * step.Step / step.TotalSteps, 0, 100) : -1,
        step.Remaining is { } remaining ? (int)Math.Ceiling(remaining.TotalSeconds) : -1,
        step.PreviewPath is { } previewPath
            ? string.Create(CultureInfo.InvariantCulture, $"Preview of step {step.PreviewStep}: {previewPath}")
            : step.Prompt);
}
