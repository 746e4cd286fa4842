using System.Management.Automation;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Saves scenes as PNG files with every setting in a 'parameters' text chunk. The file is written
/// under a temporary name and renamed, so it appears whole or not at all; an existing file is
/// replaced only with -Force.
/// </summary>
[Cmdlet(VerbsData.Save, "MnemosyneImage", DefaultParameterSetName = PathSet, SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
public sealed class SaveMnemosyneImageCommand : MnemosyneCmdlet
{
    private const string PathSet = "Path";
    private const string DirectorySet = "Directory";

    private FileNameTemplate? template;
    private string? folder;
    private int index;

    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    [ValidateNotNull]
    public Scene Scene { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = DirectorySet)]
    [ValidateNotNullOrEmpty]
    public string Directory { get; set; } = null!;

    /// <summary>The file name for each scene, from its settings: {seed}, {prompt}, {steps}, … (see FileNameTemplate).</summary>
    [Parameter(ParameterSetName = DirectorySet)]
    [ValidateNotNullOrEmpty]
    public string NameTemplate { get; set; } = FileNameTemplate.Default;

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void BeginProcessing()
    {
        if (ParameterSetName != DirectorySet) return;
        folder = FileSystemPath(Directory);
        if (!System.IO.Directory.Exists(folder))
        {
            ThrowTerminatingError(new ErrorRecord(
                new DirectoryNotFoundException($"The folder {folder} does not exist. Create it first (New-Item -ItemType Directory)."),
                "FolderNotFound", ErrorCategory.ObjectNotFound, folder));
        }
        try
        {
            template = FileNameTemplate.Parse(NameTemplate);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorRecords.From(e, "InvalidNameTemplate", NameTemplate));
        }
    }

    protected override void ProcessRecord()
    {
        index++;
        var path = template is not null && folder is not null
            ? System.IO.Path.Combine(folder, template.Format(Scene, index))
            : FileSystemPath(Path);
        if (!ShouldProcess(path, $"Save scene image (seed {Scene.Seed})")) return;
        if (OutputFiles.CheckWritable(path, Force, InvokeProvider) is { } problem)
        {
            WriteError(problem);
            return;
        }
        try
        {
            PngFile.Save(path, Scene.Image, [PngTextEntry.Parameters(Scene.ParametersText())], Force);
        }
        catch (Exception e)
        {
            WriteError(OutputFiles.WriteFailure(e, path, Force));
            return;
        }
        WriteVerbose($"Saved {path}.");
        // Through the provider, so that the FileInfo carries PSPath and formats as Get-Item's does.
        if (PassThru) WriteObject(InvokeProvider.Item.Get([path], force: true, literalPath: true), enumerateCollection: true);
    }
}
