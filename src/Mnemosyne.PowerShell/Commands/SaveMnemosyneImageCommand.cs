using System.Management.Automation;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Saves scenes as PNG files with every setting in a 'parameters' text chunk. The file is written
/// under a temporary name and renamed, so it appears whole or not at all; an existing file is
/// replaced only with -Force, and never one this run wrote: a name from -NameTemplate that this
/// run has already used gets a counter ('9-dog-2.png'), and a -Path written twice is an error.
/// A missing -Directory is created; {index} in the template goes on from the highest number already there.
/// With -PassThru each scene comes out again with the file it was saved to as its Path.
/// </summary>
[Cmdlet(VerbsData.Save, "MnemosyneImage", DefaultParameterSetName = PathSet, SupportsShouldProcess = true, HelpUri = HelpUris.Readme + "save-mnemosyneimage")]
[OutputType(typeof(Scene))]
public sealed class SaveMnemosyneImageCommand : MnemosyneCmdlet
{
    private const string PathSet = "Path";
    private const string DirectorySet = "Directory";

    private FileNameTemplate? template;
    private string? folder;
    private long index;

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
        try
        {
            template = FileNameTemplate.Parse(NameTemplate);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorRecords.From(e, "InvalidNameTemplate", NameTemplate));
        }
        if (File.Exists(folder))
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"{folder} is a file, not a folder. Give -Directory a folder (a missing one is created), or save one scene to a file with -Path.",
                "DirectoryIsFile", ErrorCategory.InvalidArgument, folder));
        }
        if (!System.IO.Directory.Exists(folder)) CreateFolder(folder);
        // {index} goes on from the highest number already there, as A1111's '00001-' names do, so a second run adds to the folder.
        if (template!.HasIndex && System.IO.Directory.Exists(folder))
            index = template.HighestIndex(System.IO.Directory.EnumerateFiles(folder, "*.png").Select(System.IO.Path.GetFileName)!);
    }

    /// <summary>A missing -Directory is created (with its parents); -WhatIf reports it instead.</summary>
    private void CreateFolder(string path)
    {
        for (var parent = System.IO.Path.GetDirectoryName(path); parent is not null; parent = System.IO.Path.GetDirectoryName(parent))
        {
            if (System.IO.Directory.Exists(parent)) break;
            if (File.Exists(parent))
            {
                ThrowTerminatingError(ErrorRecords.Create(
                    $"{parent} is a file, so the folder {path} cannot be made under it. Give -Directory a folder path.",
                    "FolderIsFile", ErrorCategory.InvalidArgument, path));
            }
        }
        if (!ShouldProcess(path, "Create folder")) return;
        try
        {
            System.IO.Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ThrowTerminatingError(ErrorRecords.From(e, "FolderNotCreated", path, ErrorCategory.WriteError));
        }
        WriteVerbose($"Created the folder {path}.");
    }

    protected override void ProcessRecord()
    {
        index++;
        var path = template is not null && folder is not null
            ? UnusedName(System.IO.Path.Combine(folder, template.Format(Scene, index, DateTime.Now)))
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
