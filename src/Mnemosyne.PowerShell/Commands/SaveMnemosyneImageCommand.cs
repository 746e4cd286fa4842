using System.Management.Automation;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Saves scenes as PNG files with every setting in a 'parameters' text chunk. The file is written
/// under a temporary name and renamed, so it appears whole or not at all; an existing file is
/// replaced only with -Force, and never one this run wrote: a name from -NameTemplate that this
/// run has already used gets a counter ('9-dog-2.png'), and a -Path written twice is an error.
/// With -PassThru each scene comes out again with the file it was saved to as its Path.
/// </summary>
[Cmdlet(VerbsData.Save, "MnemosyneImage", DefaultParameterSetName = PathSet, SupportsShouldProcess = true)]
[OutputType(typeof(Scene))]
public sealed class SaveMnemosyneImageCommand : MnemosyneCmdlet
{
    private const string PathSet = "Path";
    private const string DirectorySet = "Directory";

    private FileNameTemplate? template;
    private string? folder;
    private int index;

    /// <summary>The files this run wrote, so that two scenes of one run never share one.</summary>
    private readonly HashSet<string> written = new(StringComparer.OrdinalIgnoreCase);

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
        if (File.Exists(folder))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"{folder} is a file, not a folder. Give -Directory a folder (New-Item -ItemType Directory makes one), or save one scene to a file with -Path.",
                "DirectoryIsFile", ErrorCategory.InvalidArgument, folder));
        }
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
            ? UnusedName(System.IO.Path.Combine(folder, template.Format(Scene, index)))
            : FileSystemPath(Path);
        if (!ShouldProcess(path, $"Save scene image (seed {Scene.Seed})")) return;
        if (written.Contains(path))
        {
            WriteError(ErrorRecords.Create(
                $"{path} was already written by this command, for an earlier scene; it is not replaced, even with -Force. " +
                "Save each scene to its own file (-Directory names them from a template).",
                "FileWrittenThisRun", ErrorCategory.ResourceExists, path));
            return;
        }
        if (OutputFiles.CheckWritable(path, Force, InvokeProvider) is { } problem)
        {
            WriteError(problem);
            return;
        }
        try
        {
            PngFile.Save(path, Scene.Image, Scene.PngText(), Force);
        }
        catch (Exception e)
        {
            WriteError(OutputFiles.WriteFailure(e, path, Force));
            return;
        }
        written.Add(path);
        if (ParameterSetName == PathSet && !System.IO.Path.GetExtension(path).Equals(".png", StringComparison.OrdinalIgnoreCase))
            WriteWarning($"{path} holds a PNG picture, whatever its name says; programs that go by the name may not open it. Name it .png.");
        WriteVerbose($"Saved {path}.");
        if (PassThru) WriteObject(Scene with { Path = path });
    }

    /// <summary>The template's name, or, when this run already wrote a file of that name, the first 'name-N.png' (N from 2) it did not.</summary>
    private string UnusedName(string path)
    {
        if (!written.Contains(path)) return path;
        var stem = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, System.IO.Path.GetFileNameWithoutExtension(path));
        var extension = System.IO.Path.GetExtension(path);
        for (int n = 2; ; n++)
        {
            var numbered = $"{stem}-{n}{extension}";
            if (!written.Contains(numbered)) return numbered;
        }
    }
}
