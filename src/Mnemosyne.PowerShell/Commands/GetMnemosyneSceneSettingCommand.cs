using System.Management.Automation;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Reads the settings a PNG's 'parameters' text records (Mnemosyne's or AUTOMATIC1111's) into an object whose
/// properties bind to New-MnemosyneScene's parameters by name, so that piping it there makes the scene again.
/// Needs no engine. Files are read within the image limits, as untrusted.
/// </summary>
[Cmdlet(VerbsCommon.Get, "MnemosyneSceneSetting", DefaultParameterSetName = PathSet, HelpUri = HelpUris.Readme + "get-mnemosynescenesetting")]
[OutputType(typeof(SceneSettings))]
public sealed class GetMnemosyneSceneSettingCommand : MnemosyneCmdlet
{
    private const string PathSet = "Path";
    private const string TextSet = "Parameters";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = PathSet)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    /// <summary>A parameters text itself, e.g. copied from a model page or from A1111's PNG Info tab.</summary>
    [Parameter(Mandatory = true, ParameterSetName = TextSet)]
    [ValidateNotNullOrEmpty]
    public string Parameters { get; set; } = null!;

    /// <summary>
    /// The folder of LoRA files the recorded LoRAs are found in (&lt;folder&gt;/&lt;name&gt;.safetensors, each checked against
    /// its recorded short hash); $env:MNEMOSYNE_LORA_PATH when not given.
    /// </summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? LoraFolder { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == TextSet)
        {
            Read(() => SceneSettings.Parse(Parameters), Parameters);
            return;
        }
        foreach (var path in Path)
        {
            foreach (var file in ResolveInputFiles(path)) Read(() => SceneSettings.Read(file), file);
        }
    }

    private void Read(Func<SceneSettings> read, string target)
    {
        SceneSettings settings;
        try
        {
            settings = read();
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            WriteError(ErrorRecords.From(e, "SceneSettingsUnreadable", target));
            return;
        }
        var source = settings.Path ?? "The parameters";
        if (settings.Sampler is { } sampler && settings.Scheduler is null)
        {
            WriteWarning($"{source}: the sampler '{sampler}'{(settings.ScheduleType is { } type ? $" with the schedule type '{type}'" : "")} has no like in Mnemosyne, " +
                $"so Scheduler is left unset (New-MnemosyneScene then uses its default). Mnemosyne has {string.Join(", ", SamplerNames.Known)}.");
        }
        if (settings.LoraHashes.Count > 0)
        {
            var folder = LoraFolder ?? Environment.GetEnvironmentVariable(LoraFolderVariable);
            if (string.IsNullOrWhiteSpace(folder))
            {
                WriteWarning($"{source}: the scene was made with the LoRAs {string.Join(", ", settings.LoraHashes.Keys)}; give -LoraFolder (or " +
                    $"$env:{LoraFolderVariable}) with the folder of their files, or a scene made from these settings lacks them.");
            }
            else
            {
                try
                {
                    settings = settings.WithLorasFrom(FileSystemPath(folder));
                }
                catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or CheckpointException)
                {
                    var id = e switch { FileNotFoundException => "LoraNotFound", CheckpointException => "InvalidLora", InvalidDataException => "LoraHashMismatch", _ => "InvalidLora" };
                    WriteError(ErrorRecords.From(e, id, target));
                    return;
                }
            }
        }
        if (settings.InitialNoise is { } noise)
        {
            WriteWarning($"{source}: the scene was made from the initial noise in '{noise}' rather than its seed's; give New-MnemosyneScene " +
                "-InitialNoisePath with that file to make it again.");
        }
        if (settings.ReferenceMaskPictures.Count > 0)
        {
            WriteWarning($"{source}: the references' masks {string.Join(", ", settings.ReferenceMaskPictures.Select(p => $"'{p}'"))} were pictures, which the text " +
                "names but does not hold; New-MnemosyneScene looks for them in the current folder, or give it -ReferenceMask with the masks to make the scene again.");
        }
        if (settings.ReferenceName is { } reference)
            WriteVerbose($"{source}: made with the reference '{reference}'; give New-MnemosyneScene -Reference with it to make the scene again.");
        WriteObject(settings);
    }
}
